package natssource

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/sources"
)

// recorder is an Ingester that records what it is given. fail, when it
// returns an error, refuses the call; block delays it.
type recorder struct {
	mu       sync.Mutex
	fail     func(call int, e *event.Event) error
	block    time.Duration
	calls    int
	events   []*event.Event
	rejected map[string]int
}

func (r *recorder) Ingest(ctx context.Context, events []*event.Event) error {
	r.mu.Lock()
	r.calls++
	call, fail, block := r.calls, r.fail, r.block
	r.mu.Unlock()
	if block > 0 {
		select {
		case <-time.After(block):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(call, events[0]); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, events...)
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

func (r *recorder) snapshot() (calls int, events []*event.Event, rejected map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rej := map[string]int{}
	for k, v := range r.rejected {
		rej[k] = v
	}
	return r.calls, append([]*event.Event(nil), r.events...), rej
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

var _ sources.Ingester = (*recorder)(nil)

// run builds c and runs it with in until the test ends; Run must return
// nil.
func run(t testing.TB, c *Config, in sources.Ingester) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	built, err := c.Build(context.Background(), sources.Deps{Name: "natstest", Logger: log})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- built.(*Source).Run(ctx, in) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return within 15s of cancel")
		}
	})
}

// jsConfig is a JetStream source config on stream.
func jsConfig(stream string) *Config {
	c := NewConfig()
	c.URL = natstest.URL()
	c.Stream = stream
	c.Durable = "d_" + natstest.Suffix()
	return c
}

// publish publishes a message with headers kv (name, value, ...) to the
// stream and waits for its PubAck.
func publish(t testing.TB, js jetstream.JetStream, subject, data string, kv ...string) {
	t.Helper()
	m := nats.NewMsg(subject)
	for i := 0; i+1 < len(kv); i += 2 {
		m.Header.Set(kv[i], kv[i+1])
	}
	m.Data = []byte(data)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}
