package sqssource

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/sqstest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// The test server's helpers (see sqstest).
var (
	endpoint = sqstest.Endpoint
	broker   = sqstest.Client
	suffix   = sqstest.Suffix
	depth    = sqstest.DepthAll
)

// queue creates a queue with a unique name and deletes it when the test
// ends. It returns the queue URL and ARN.
func queue(t testing.TB, c *sqs.Client, name string, attrs map[string]string) (string, string) {
	t.Helper()
	q := sqstest.Queue(t, c, name, attrs)
	return q, sqstest.ARN(t, c, q)
}

func send(t testing.TB, c *sqs.Client, q, body string, attrs map[string]types.MessageAttributeValue) string {
	t.Helper()
	out, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body), MessageAttributes: attrs})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return *out.MessageId
}

func str(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
}

func num(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(v)}
}

// sqsConfig is the config of a source on queue q of the test server, to
// which tests add more of the source's own keys.
func sqsConfig(q string) string {
	return fmt.Sprintf("queueUrl: %s\nendpoint: %s\nregion: us-east-1\n", q, endpoint())
}

// decoded decodes src, the source's own keys, as the loader does; the test
// fails on any config error.
func decoded(t testing.TB, src string) *Config {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatal(errs)
	}
	return c
}

// start decodes src as decoded does, builds the source, runs it and stops
// it when the test ends.
func start(t testing.TB, src string, in sources.Ingester, logs *plugintest.LogBuffer) *Source {
	t.Helper()
	if logs == nil {
		logs = &plugintest.LogBuffer{}
	}
	s, err := New(context.Background(), decoded(t, src), sources.Deps{Name: "orders", Logger: sourcetest.Logger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.Run(t, s, in, 15*time.Second)
	return s
}
