package s3source

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/sqstest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// The test server's helpers (see sqstest).
var (
	sqsEndpoint = sqstest.Endpoint
	broker      = sqstest.Client
	depth       = sqstest.Depth
)

// newQueueURL creates a queue with a unique name, deleted when the test
// ends.
func newQueueURL(t testing.TB, c *sqs.Client) string {
	t.Helper()
	return sqstest.Queue(t, c, "s3-notifications", nil)
}

func sendBody(t testing.TB, c *sqs.Client, q, body string) {
	t.Helper()
	if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// runQueue builds the sqs transport on q, runs it, and stops it when the
// test ends.
func runQueue(t testing.TB, q string, in sources.Ingester, logs *plugintest.LogBuffer, extra string) *Queue {
	t.Helper()
	c, errs := check(t, "queueUrl: "+q+"\nendpoint: "+sqsEndpoint()+"\nregion: us-east-1\nwaitTime: 1s\n"+extra)
	if errs != "" {
		t.Fatal(errs)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "uploads", Logger: sourcetest.Logger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	src := s.(*Queue)
	src.poller.NakMin, src.poller.NakMax = 200*time.Millisecond, time.Second
	sourcetest.Run(t, src, in, 15*time.Second)
	return src
}

// TestQueue: AWS notifications, SNS-wrapped ones and the test event are
// consumed and deleted; a malformed message is rejected and stays.
func TestQueue(t *testing.T) {
	c := broker(t)
	q := newQueueURL(t, c)
	sendBody(t, c, q, awsTest)
	sendBody(t, c, q, awsPut)
	sendBody(t, c, q, snsEnvelope(strings.Replace(awsPut, "C3D13FE58DE4C810", "D4E24FF69EF5D921", 1)))
	sendBody(t, c, q, snsEnvelope(awsTest))
	sendBody(t, c, q, `{"hello":"world"}`)

	rec := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	runQueue(t, q, rec, logs, "visibilityTimeout: 30s")
	plugintest.Eventually(t, 10*time.Second, "2 events", func() bool { return rec.Count() == 2 })
	plugintest.Eventually(t, 10*time.Second, "the malformed message counted", func() bool { return rec.Rejections(sources.ReasonMalformed) == 1 })
	plugintest.Eventually(t, 10*time.Second, "4 messages deleted", func() bool { return depth(t, c, q) == 1 })

	ids := map[string]*event.Event{}
	for _, e := range rec.Events() {
		ids[e.ID()] = e
		if e.Type() != "com.amazonaws.s3.ObjectCreated:Put" || e.Subject() != "incoming/file name.json" || e.Source() != "aws:s3.us-west-2.uploads" {
			t.Errorf("event %s: type %q subject %q source %q", e.ID(), e.Type(), e.Subject(), e.Source())
		}
	}
	for _, id := range []string{
		"C3D13FE58DE4C810.FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD.0a65d5da",
		"D4E24FF69EF5D921.FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD.0a65d5da",
	} {
		if ids[id] == nil {
			t.Errorf("no event %s", id)
		}
	}
	l := logs.String()
	if strings.Count(l, "s3:TestEvent acknowledged and dropped") != 2 {
		t.Errorf("the test events were not logged twice:\n%s", l)
	}
	if !strings.Contains(l, "malformed S3 notification in sqs message") || !strings.Contains(l, "not an S3 event notification: no Records") {
		t.Errorf("the malformed message was not logged:\n%s", l)
	}
}

// TestQueueTooLarge: messages ingested together are retried one by one
// when the journal refuses the batch's size; the one still too large is
// rejected and stays on the queue.
func TestQueueTooLarge(t *testing.T) {
	c := broker(t)
	q := newQueueURL(t, c)
	big := strings.Replace(awsPut, "C3D13FE58DE4C810", "BIGBIGBIG", 1)
	entries := []types.SendMessageBatchRequestEntry{
		{Id: aws.String("0"), MessageBody: aws.String(awsPut)},
		{Id: aws.String("1"), MessageBody: aws.String(big)},
	}
	if _, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q), Entries: entries}); err != nil {
		t.Fatal(err)
	}
	rec := &sourcetest.Recorder{Fail: func(_ int, events []*event.Event) error {
		for _, e := range events {
			if strings.HasPrefix(e.ID(), "BIGBIGBIG") {
				return sources.ErrTooLarge
			}
		}
		return nil
	}}
	runQueue(t, q, rec, &plugintest.LogBuffer{}, "pollers: 1")
	plugintest.Eventually(t, 10*time.Second, "the small event", func() bool { return rec.Count() == 1 })
	plugintest.Eventually(t, 10*time.Second, "the large one rejected", func() bool { return rec.Rejections(sources.ReasonTooLarge) == 1 })
	plugintest.Eventually(t, 10*time.Second, "one message left", func() bool { return depth(t, c, q) == 1 })
}
