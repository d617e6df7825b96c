// Package sqstest holds helpers for tests against a real SQS-compatible
// server (fauxqs, started by scripts/services.sh): its endpoint with the CI
// rule, a client, unique queues deleted at the end of the test, and queue
// depths. Only tests import it.
package sqstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// DefaultEndpoint is the server the tests use when
// JUNCTION_TEST_SQS_ENDPOINT is not set.
const DefaultEndpoint = "http://127.0.0.1:4566"

// Endpoint returns the test server's endpoint (JUNCTION_TEST_SQS_ENDPOINT,
// default DefaultEndpoint).
func Endpoint() string {
	if v := os.Getenv("JUNCTION_TEST_SQS_ENDPOINT"); v != "" {
		return v
	}
	return DefaultEndpoint
}

// Client returns a client of the test server (region us-east-1, test
// credentials). It puts the test credentials in the environment too, for
// the clients that the code under test (or a junction process the test
// starts) loads from the AWS default chain. When the server cannot be
// reached the test is skipped, or fails when CI=true.
func Client(t testing.TB) *sqs.Client {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	u, _ := url.Parse(Endpoint())
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("SQS server %s unreachable (run scripts/services.sh): %v", Endpoint(), err)
		}
		t.Skipf("SQS server %s unreachable (run scripts/services.sh, or set JUNCTION_TEST_SQS_ENDPOINT): %v", Endpoint(), err)
	}
	conn.Close()
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(Endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// Suffix returns 8 random hex digits, to make a name unique.
func Suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Queue creates a queue named name-<Suffix> with attrs and deletes it when
// the test ends. A name ending in .fifo makes a FIFO queue
// (name-<Suffix>.fifo). It returns the queue URL.
func Queue(t testing.TB, c *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	full := name + "-" + Suffix()
	if base, ok := strings.CutSuffix(name, ".fifo"); ok && base != "" {
		full = base + "-" + Suffix() + ".fifo"
		if attrs == nil {
			attrs = map[string]string{}
		}
		attrs["FifoQueue"] = "true"
	}
	out, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(full), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	t.Cleanup(func() { c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })
	return *out.QueueUrl
}

// ARN returns the ARN of the queue at URL q.
func ARN(t testing.TB, c *sqs.Client, q string) string {
	t.Helper()
	a, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return a.Attributes["QueueArn"]
}

// Depth is the number of messages on q, visible or in flight.
func Depth(t testing.TB, c *sqs.Client, q string) int {
	t.Helper()
	return count(t, c, q, types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)
}

// DepthAll is the number of messages on q, visible, in flight or delayed.
func DepthAll(t testing.TB, c *sqs.Client, q string) int {
	t.Helper()
	return count(t, c, q, types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed)
}

// count sums the queue attributes names.
func count(t testing.TB, c *sqs.Client, q string, names ...types.QueueAttributeName) int {
	t.Helper()
	a, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: names})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range a.Attributes {
		x, _ := strconv.Atoi(v)
		n += x
	}
	return n
}

// Receive reads up to n messages from q, deleting each, waiting up to
// within in all; system names the system attributes to ask for.
func Receive(t testing.TB, c *sqs.Client, q string, n int, within time.Duration, system ...types.MessageSystemAttributeName) []types.Message {
	t.Helper()
	var out []types.Message
	deadline := time.Now().Add(within)
	for len(out) < n && time.Now().Before(deadline) {
		r, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(q), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 5,
			MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: system,
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range r.Messages {
			out = append(out, m)
			c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(q), ReceiptHandle: m.ReceiptHandle})
		}
	}
	return out
}
