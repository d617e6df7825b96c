package sqssource

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

func TestConsumeWrapsAndDeletes(t *testing.T) {
	c := broker(t)
	q, arn := queue(t, c, "wrap", nil)
	ids := map[string]bool{}
	for i := range 15 {
		ids[send(t, c, q, fmt.Sprintf(`{"n":%d}`, i), map[string]types.MessageAttributeValue{"tenant": str("acme"), "n": num(fmt.Sprint(i))})] = true
	}
	rec := &sourcetest.Recorder{}
	start(t, sqsConfig(q)+"waitTime: 1s\neventType: com.example.order\n", rec, nil)
	plugintest.Eventually(t, 10*time.Second, "15 events", func() bool { return rec.Count() >= 15 })
	for _, e := range rec.Events() {
		if !ids[e.ID()] {
			t.Errorf("unexpected id %s", e.ID())
		}
		if e.Source() != arn || e.Type() != "com.example.order" || e.DataContentType() != "application/json" ||
			e.Extensions()["tenant"] != "acme" || e.Time().IsZero() || !strings.HasPrefix(string(e.Data()), `{"n":`) {
			t.Errorf("event: %s", e)
		}
	}
	plugintest.Eventually(t, 10*time.Second, "the queue to be empty", func() bool { return depth(t, c, q) == 0 })
	if n := rec.Count(); n != 15 {
		t.Errorf("%d events ingested, want 15 (no duplicates)", n)
	}
}

func TestStructuredAndBinaryMessages(t *testing.T) {
	c := broker(t)
	q, _ := queue(t, c, "modes", nil)
	send(t, c, q, `{"specversion":"1.0","id":"s-1","source":"/orders","type":"com.example.order.created","data":{"a":1}}`, nil)
	send(t, c, q, "hello", map[string]types.MessageAttributeValue{
		"ce-specversion": str("1.0"), "ce-id": str("b-1"), "ce-source": str("/orders"), "ce-type": str("com.example.order.paid"),
		"content-type": str("text/plain"), "ce-attempt": num("2"),
	})
	rec := &sourcetest.Recorder{}
	start(t, sqsConfig(q)+"waitTime: 1s\n", rec, nil)
	plugintest.Eventually(t, 10*time.Second, "2 events", func() bool { return rec.Count() >= 2 })
	byID := map[string]*event.Event{}
	for _, e := range rec.Events() {
		byID[e.ID()] = e
	}
	if e := byID["s-1"]; e == nil || e.Type() != "com.example.order.created" || string(e.Data()) != `{"a":1}` {
		t.Errorf("structured: %v", e)
	}
	if e := byID["b-1"]; e == nil || e.Type() != "com.example.order.paid" || string(e.Data()) != "hello" || e.Extensions()["attempt"] != int32(2) {
		t.Errorf("binary: %v", e)
	}
}

func TestIngestFailureComesBack(t *testing.T) {
	c := broker(t)
	q, _ := queue(t, c, "fail", nil)
	for i := range 5 {
		send(t, c, q, fmt.Sprintf("m%d", i), nil)
	}
	rec := &sourcetest.Recorder{Fail: func(call int, _ []*event.Event) error {
		if call <= 2 {
			return fmt.Errorf("journal append failed: %w", sources.ErrUnavailable)
		}
		return nil
	}}
	logs := &plugintest.LogBuffer{}
	start(t, sqsConfig(q)+"waitTime: 1s\npollers: 1\nvisibilityTimeout: 30s\n", rec, logs)
	// The visibility timeout is 30s: the messages come back within the nak
	// backoff (1s, 2s), not after it.
	plugintest.Eventually(t, 15*time.Second, "5 events after two failed ingests", func() bool { return rec.Count() >= 5 })
	plugintest.Eventually(t, 10*time.Second, "the queue to be empty", func() bool { return depth(t, c, q) == 0 })
	if n := rec.Count(); n != 5 {
		t.Errorf("%d events ingested, want 5", n)
	}
	if n := strings.Count(logs.String(), "ingest failed; the messages stay on the queue"); n != 2 {
		t.Errorf("%d ingest failure lines, want 2:\n%s", n, logs)
	}
}

func TestMalformedGoesToDeadLetterQueue(t *testing.T) {
	c := broker(t)
	_, dlqARN := queue(t, c, "dlq", nil)
	dlq := ""
	{
		out, err := c.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(dlqARN[strings.LastIndexByte(dlqARN, ':')+1:])})
		if err != nil {
			t.Fatal(err)
		}
		dlq = *out.QueueUrl
	}
	q, _ := queue(t, c, "malformed", map[string]string{
		"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"2"}`, dlqARN),
	})
	badID := send(t, c, q, `{"specversion":"1.0","id":"bad-1","type":"t"}`, nil)
	send(t, c, q, "good", nil)
	rec := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	start(t, sqsConfig(q)+"waitTime: 1s\nvisibilityTimeout: 1s\npollers: 1\n", rec, logs)
	plugintest.Eventually(t, 10*time.Second, "the good message", func() bool { return rec.Count() >= 1 })
	plugintest.Eventually(t, 20*time.Second, "the malformed message in the DLQ", func() bool { return depth(t, c, dlq) == 1 })
	plugintest.Eventually(t, 5*time.Second, "the queue to be empty", func() bool { return depth(t, c, q) == 0 })
	if rec.Count() != 1 || string(rec.Events()[0].Data()) != "good" {
		t.Errorf("ingested %d events, want only the good one", rec.Count())
	}
	if n := rec.Rejections("malformed"); n != 2 {
		t.Errorf("rejected %d times, want 2 (one per receive)", n)
	}
	lines := strings.Count(logs.String(), "malformed CloudEvent in sqs message")
	if lines != 2 || !strings.Contains(logs.String(), "message_id="+badID) || !strings.Contains(logs.String(), "ce_id=bad-1") ||
		!strings.Contains(logs.String(), `reason="invalid attribute \"source\": REQUIRED"`) {
		t.Errorf("want one line per receive with message id, ce_id and reason; got %d:\n%s", lines, logs)
	}
	if strings.Contains(logs.String(), `"type":"t"`) {
		t.Errorf("the log shows the payload:\n%s", logs)
	}
	out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 1 || *out.Messages[0].MessageId != badID {
		t.Errorf("DLQ holds %v (%v), want message %s", out, err, badID)
	}
}

func TestLongIngestExtendsVisibility(t *testing.T) {
	c := broker(t)
	q, _ := queue(t, c, "slow", nil)
	send(t, c, q, "slow", nil)
	// The first ingest takes 3.5s with a visibility timeout of 2s: without
	// the extension, the other poller would receive the message again.
	rec := &sourcetest.Recorder{Block: func(call int) time.Duration {
		if call == 1 {
			return 3500 * time.Millisecond
		}
		return 0
	}}
	start(t, sqsConfig(q)+"waitTime: 1s\nvisibilityTimeout: 2s\npollers: 2\n", rec, nil)
	plugintest.Eventually(t, 10*time.Second, "the event", func() bool { return rec.Count() >= 1 })
	plugintest.Eventually(t, 5*time.Second, "the queue to be empty", func() bool { return depth(t, c, q) == 0 })
	// Without the extension the message would have reappeared 2s after its
	// receive, during the first ingest (3.5s), and the other poller's ingest
	// would be counted by now: the message was deleted only after it.
	if calls, events, _ := rec.Snapshot(); calls != 1 || len(events) != 1 {
		t.Errorf("%d ingest calls, %d events; want 1 and 1", calls, len(events))
	}
}

func TestTooLargeIsolated(t *testing.T) {
	c := broker(t)
	q, _ := queue(t, c, "large", nil)
	for i := range 4 {
		send(t, c, q, fmt.Sprintf("m%d", i), nil)
	}
	send(t, c, q, "LARGE", nil)
	rec := &sourcetest.Recorder{Fail: func(_ int, events []*event.Event) error {
		for _, e := range events {
			if string(e.Data()) == "LARGE" {
				return fmt.Errorf("journal append: %w", sources.ErrTooLarge)
			}
		}
		return nil
	}}
	start(t, sqsConfig(q)+"waitTime: 2s\npollers: 1\n", rec, nil)
	plugintest.Eventually(t, 10*time.Second, "the 4 small events", func() bool { return rec.Count() >= 4 })
	plugintest.Eventually(t, 5*time.Second, "a too_large rejection", func() bool { return rec.Rejections("too_large") >= 1 })
	plugintest.Eventually(t, 5*time.Second, "only the large message left", func() bool { return depth(t, c, q) == 1 })
}

func TestQueueUnreachable(t *testing.T) {
	broker(t) // credentials in the environment
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rec := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	c := decoded(t, fmt.Sprintf("queueUrl: http://%s/000000000000/nowhere\nendpoint: http://%s\nregion: us-east-1\n", addr, addr))
	s, err := New(context.Background(), c, sources.Deps{Logger: sourcetest.Logger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	// Not config keys: the source's backoff, shortened for the test.
	s.poller.RetryMin, s.poller.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()
	// Each line follows a GetQueueAttributes call of two refused attempts
	// (the SDK retries once) with the SDK's jittered backoff between them,
	// drawn below 2s, then waits out the source's backoff (at most 200ms
	// here): three lines can take 6.6s of waiting alone, and more on a busy
	// machine. The deadline only catches a source that stopped retrying.
	plugintest.Eventually(t, 30*time.Second, "3 retries", func() bool { return strings.Count(logs.String(), "sqs queue unreachable; retrying") >= 3 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second): // a hang, not a speed check
		t.Fatal("Run did not return after its context ended")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "unreachable") && !strings.Contains(line, "connect: connection refused") {
			t.Errorf("line does not say why: %s", line)
		}
		if len(line) > 600 {
			t.Errorf("line too long: %s", line)
		}
	}
}

func TestMissingQueueRetries(t *testing.T) {
	c := broker(t)
	q, _ := queue(t, c, "gone", nil)
	c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(q)})
	logs := &plugintest.LogBuffer{}
	rec := &sourcetest.Recorder{}
	s, err := New(context.Background(), decoded(t, sqsConfig(q)), sources.Deps{Logger: sourcetest.Logger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	// Not config keys: the source's backoff, shortened for the test.
	s.poller.RetryMin, s.poller.RetryMax = 50*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx, rec); err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "NonExistentQueue: The specified queue does not exist.") {
		t.Errorf("log does not name the error:\n%s", logs)
	}
}
