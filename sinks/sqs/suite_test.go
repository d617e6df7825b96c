package sqssink

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/sqstest"
)

// queueReader reads a queue's messages (structured: the body is the event,
// there are no message attributes) as events, deleting them and keeping
// those it took.
type queueReader struct {
	c      *sqs.Client
	q      string
	mu     sync.Mutex
	events []event.Event
}

// Receive takes what is visible on the queue and returns every event read
// so far.
func (r *queueReader) Receive(t testing.TB) []event.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		out, err := r.c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(r.q), MaxNumberOfMessages: 10, VisibilityTimeout: 30, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			return append([]event.Event(nil), r.events...)
		}
		for _, m := range out.Messages {
			if len(m.MessageAttributes) != 0 {
				t.Errorf("a structured message has attributes %v, want none", m.MessageAttributes)
			}
			e, err := plugintest.StructuredEvent([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatalf("message %s: %v", aws.ToString(m.MessageId), err)
			}
			r.events = append(r.events, e)
			r.c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(r.q), ReceiptHandle: m.ReceiptHandle})
		}
	}
}

// closedPort returns a loopback address that refuses connections.
func closedPort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSuite runs the sink conformance suite against the SQS server, on a
// FIFO queue (one message group: ordered). Binary format is left to the
// tests of its own: SQS takes at most 10 message attributes and a body of
// text, which the suite's events exceed.
func TestSuite(t *testing.T) {
	c := sqstest.Client(t)
	region := "region: us-east-1\n"
	plugintest.RunSinkSuite(t, plugintest.SinkHarness{
		Type: "sqs",
		New: func(t testing.TB) plugintest.SinkTarget {
			r := &queueReader{c: c, q: sqstest.Queue(t, c, "suite.fifo", nil)}
			return plugintest.SinkTarget{
				Config:  "queueUrl: " + r.q + "\nendpoint: " + sqstest.Endpoint() + "\n" + region + "messageGroupId: '\"g\"'\n",
				Receive: r.Receive,
			}
		},
		Fail: func(t testing.TB, f plugintest.SinkFailure) string {
			switch f {
			case plugintest.FailRetryable: // the endpoint refuses connections
				return "queueUrl: http://127.0.0.1:4566/000000000000/q\nendpoint: http://" + closedPort(t) + "\n" + region
			case plugintest.FailPermanent: // no such queue
				return "queueUrl: " + sqstest.Endpoint() + "/000000000000/does-not-exist-" + sqstest.Suffix() + "\nendpoint: " + sqstest.Endpoint() + "\n" + region
			default:
				return "queueUrl: http://127.0.0.1:4566/000000000000/q\nendpoint: http://" + plugintest.StallServer(t) + "\n" + region
			}
		},
		Caps: plugintest.SinkCaps{Batch: true, Ordered: true},
	})
}
