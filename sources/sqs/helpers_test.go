package sqssource

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/sqstest"
	"github.com/junctionhq/junction/sources"
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

// eventually polls ok until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is an Ingester that records events; fail decides per call
// whether Ingest fails, and block how long it takes.
type recorder struct {
	mu       sync.Mutex
	events   []*event.Event
	calls    int
	rejected map[string]int
	fail     func(call int, events []*event.Event) error
	block    func(call int) time.Duration
}

func (r *recorder) Ingest(ctx context.Context, events []*event.Event) error {
	r.mu.Lock()
	r.calls++
	call := r.calls
	r.mu.Unlock()
	if r.block != nil {
		if d := r.block(call); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if r.fail != nil {
		if err := r.fail(call, events); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.events = append(r.events, events...)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Rejected(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rejected == nil {
		r.rejected = map[string]int{}
	}
	r.rejected[reason]++
}

func (r *recorder) got() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) rejects(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected[reason]
}

var _ sources.Ingester = (*recorder)(nil)

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start builds a source on queue q with the config tweaked by set, runs it
// and stops it when the test ends.
func start(t testing.TB, q string, in sources.Ingester, logs *logBuffer, set func(*Config)) *Source {
	t.Helper()
	c := NewConfig()
	c.QueueURL = q
	c.Endpoint = endpoint()
	c.Region = "us-east-1"
	c.WaitTime = time.Second
	if set != nil {
		set(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if logs == nil {
		logs = &logBuffer{}
	}
	s, err := New(context.Background(), c, sources.Deps{Name: "orders", Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, in) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return within 15s of its context ending")
		}
	})
	return s
}
