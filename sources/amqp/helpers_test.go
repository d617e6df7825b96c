package amqpsource

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// recorder is an Ingester that records events; fail, when set, decides
// whether a call fails.
type recorder struct {
	mu       sync.Mutex
	events   []event.Event
	calls    int
	rejected map[string]int
	fail     func(call int, events []*event.Event) error
}

func (r *recorder) Ingest(ctx context.Context, events []*event.Event) error {
	r.mu.Lock()
	r.calls++
	call := r.calls
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(call, events); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		r.events = append(r.events, *e)
	}
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

func (r *recorder) got() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) rejections(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected[reason]
}

// ids returns how many times each event id was ingested.
func (r *recorder) ids() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, e := range r.events {
		m[e.ID()]++
	}
	return m
}

// build makes a source from YAML-like settings.
func build(t testing.TB, c *Config, logs io.Writer) *Source {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	s, err := c.Build(context.Background(), sourcesDeps("q", logs))
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Source)
}

// run runs s in the background until the test ends and checks that Run
// returned nil.
func run(t testing.TB, s *Source, in *recorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, in) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

var errBoom = errors.New("journal unavailable (test)")

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
