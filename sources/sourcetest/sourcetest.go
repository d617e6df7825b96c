// Package sourcetest holds what the tests of source packages share: an
// Ingester that records what it is given, and a way to run a source until
// the test ends. Only tests import it.
package sourcetest

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sources"
)

// Recorder is a sources.Ingester that records the events it accepts and
// counts rejections. Set Fail and Block before the source runs.
type Recorder struct {
	// Fail, when set, decides whether call (counted from 1) fails: its
	// error is returned and the events are not recorded.
	Fail func(call int, events []*event.Event) error
	// Block, when set, is how long call takes before Fail is asked; Ingest
	// returns ctx's error if ctx ends first.
	Block func(call int) time.Duration

	mu       sync.Mutex
	calls    int
	events   []*event.Event
	rejected map[string]int
}

var _ sources.Ingester = (*Recorder)(nil)

// Ingest records events unless Block or Fail say otherwise.
func (r *Recorder) Ingest(ctx context.Context, events []*event.Event) error {
	r.mu.Lock()
	r.calls++
	call := r.calls
	r.mu.Unlock()
	if r.Block != nil {
		if d := r.Block(call); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if r.Fail != nil {
		if err := r.Fail(call, events); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, events...)
	return nil
}

// Rejected counts a rejection under reason.
func (r *Recorder) Rejected(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rejected == nil {
		r.rejected = map[string]int{}
	}
	r.rejected[reason]++
}

// Events returns the events recorded so far, in order.
func (r *Recorder) Events() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.events...)
}

// Count returns how many events were recorded.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Calls returns how many times Ingest was called, failed calls included.
func (r *Recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// Rejections returns how many rejections were counted under reason.
func (r *Recorder) Rejections(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected[reason]
}

// Reasons returns the rejections counted so far by reason.
func (r *Recorder) Reasons() map[string]int {
	_, _, rejected := r.Snapshot()
	return rejected
}

// Snapshot returns the number of Ingest calls, the recorded events and the
// rejections by reason, all at one instant.
func (r *Recorder) Snapshot() (calls int, events []*event.Event, rejected map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rej := maps.Clone(r.rejected)
	if rej == nil {
		rej = map[string]int{}
	}
	return r.calls, append([]*event.Event(nil), r.events...), rej
}

// IDs returns how many times each event id was recorded.
func (r *Recorder) IDs() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, e := range r.events {
		m[e.ID()]++
	}
	return m
}

// Last returns the last event recorded, or nil.
func (r *Recorder) Last() *event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return nil
	}
	return r.events[len(r.events)-1]
}

// Run runs src with in, in the background, until the test ends or stop is
// called; Run must then return nil within wait.
func Run(t testing.TB, src sources.Source, in sources.Ingester, wait time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, in) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(wait):
				t.Errorf("Run did not return within %v of its context ending", wait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Logger is a logger that writes text at debug level to w, such as a
// plugintest.LogBuffer.
func Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
