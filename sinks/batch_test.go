package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// recordingBatchSink is a BatchSink in memory: it records every batch and
// fails the events whose id is in fail, or blocks on gate when set.
type recordingBatchSink struct {
	mu      sync.Mutex
	batches [][]string
	fail    map[string]error
	// poison fails every batch that holds it, whole and permanently (as
	// an HTTP endpoint answering 400).
	poison  string
	gate    chan struct{}
	entered atomic.Int32
	closed  atomic.Bool
}

func (r *recordingBatchSink) Deliver(ctx context.Context, e *event.Event) error {
	return r.DeliverBatch(ctx, []*event.Event{e})[0]
}

func (r *recordingBatchSink) DeliverBatch(ctx context.Context, events []*event.Event) []error {
	r.entered.Add(1)
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			errs := make([]error, len(events))
			for i := range errs {
				errs[i] = Retryable(ctx.Err(), 0)
			}
			return errs
		}
	}
	ids := make([]string, len(events))
	errs := make([]error, len(events))
	r.mu.Lock()
	defer r.mu.Unlock()
	poisoned := false
	for i, e := range events {
		ids[i] = e.ID()
		errs[i] = r.fail[e.ID()]
		poisoned = poisoned || e.ID() == r.poison
	}
	if poisoned {
		for i := range errs {
			errs[i] = Permanent(errors.New("HTTP 400"))
		}
		return errs
	}
	r.batches = append(r.batches, ids)
	return errs
}

func (r *recordingBatchSink) Close() error { r.closed.Store(true); return nil }

func (r *recordingBatchSink) got() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.batches...)
}

func testEvent(id string) *event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("test")
	e.SetType("t")
	return &e
}

// deliverAll calls Deliver for n events at once and returns their errors
// by id.
func deliverAll(ctx context.Context, s Sink, ids []string) map[string]error {
	var mu sync.Mutex
	out := map[string]error{}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			err := s.Deliver(ctx, testEvent(id))
			mu.Lock()
			out[id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestBatchingSizeTrigger(t *testing.T) {
	rec := &recordingBatchSink{}
	var sizes []int
	var mu sync.Mutex
	// A long wait: only the size can send these batches in time.
	s := Batching(rec, BatchOptions{MaxEvents: 10, MaxWait: time.Minute, OnBatch: func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }})
	start := time.Now()
	res := deliverAll(context.Background(), s, ids("e", 30))
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v: batches waited for maxWait", d)
	}
	for id, err := range res {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	b := rec.got()
	if len(b) != 3 {
		t.Fatalf("got %d batches, want 3: %v", len(b), b)
	}
	seen := map[string]int{}
	for _, batch := range b {
		if len(batch) != 10 {
			t.Errorf("batch of %d events, want 10", len(batch))
		}
		for _, id := range batch {
			seen[id]++
		}
	}
	for _, id := range ids("e", 30) {
		if seen[id] != 1 {
			t.Errorf("%s sent %d times", id, seen[id])
		}
	}
	mu.Lock()
	if len(sizes) != 3 || sizes[0] != 10 {
		t.Errorf("OnBatch sizes %v, want [10 10 10]", sizes)
	}
	mu.Unlock()
	if err := s.Close(); err != nil || !rec.closed.Load() {
		t.Errorf("Close: %v, inner closed %v", err, rec.closed.Load())
	}
}

func TestBatchingTimeTrigger(t *testing.T) {
	rec := &recordingBatchSink{}
	s := Batching(rec, BatchOptions{MaxEvents: 100, MaxWait: 50 * time.Millisecond})
	defer s.Close()
	start := time.Now()
	res := deliverAll(context.Background(), s, ids("e", 3))
	d := time.Since(start)
	for id, err := range res {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if d < 45*time.Millisecond || d > 5*time.Second {
		t.Errorf("a partial batch was sent after %v, want about maxWait (50ms)", d)
	}
	if b := rec.got(); len(b) != 1 || len(b[0]) != 3 {
		t.Errorf("batches %v, want one of 3", b)
	}
	// A lone event after that waits maxWait too, in a batch of its own.
	if err := s.Deliver(context.Background(), testEvent("late")); err != nil {
		t.Fatal(err)
	}
	if b := rec.got(); len(b) != 2 || len(b[1]) != 1 || b[1][0] != "late" {
		t.Errorf("batches %v, want a second of [late]", b)
	}
}

func TestBatchingPerEventErrors(t *testing.T) {
	perm := Permanent(errors.New("refused"))
	rec := &recordingBatchSink{fail: map[string]error{"e3": perm, "e7": Retryable(errors.New("busy"), time.Second)}}
	s := Batching(rec, BatchOptions{MaxEvents: 10, MaxWait: time.Minute})
	defer s.Close()
	res := deliverAll(context.Background(), s, ids("e", 10))
	for id, err := range res {
		switch id {
		case "e3":
			if p, _ := Classify(err); err == nil || !p {
				t.Errorf("e3: %v, want the permanent error", err)
			}
		case "e7":
			if p, after := Classify(err); err == nil || p || after != time.Second {
				t.Errorf("e7: %v, want the retryable error with its delay", err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v, want nil", id, err)
			}
		}
	}
}

func TestBatchingCancelBeforeSend(t *testing.T) {
	rec := &recordingBatchSink{}
	s := Batching(rec, BatchOptions{MaxEvents: 100, MaxWait: 300 * time.Millisecond})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var keptErr error
	wg.Go(func() { keptErr = s.Deliver(context.Background(), testEvent("kept")) })
	err := s.Deliver(ctx, testEvent("gone"))
	if p, _ := Classify(err); err == nil || p || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled caller: %v, want a retryable deadline error", err)
	}
	wg.Wait()
	if keptErr != nil {
		t.Errorf("kept: %v", keptErr)
	}
	if b := rec.got(); len(b) != 1 || len(b[0]) != 1 || b[0][0] != "kept" {
		t.Errorf("batches %v, want [[kept]]: the cancelled event leaves its batch", b)
	}

	// A batch left empty by its only caller is not sent.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := s.Deliver(ctx2, testEvent("alone")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled alone: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if b := rec.got(); len(b) != 1 {
		t.Errorf("batches %v: an empty batch was sent", b)
	}
}

func TestBatchingCancelWhileSending(t *testing.T) {
	rec := &recordingBatchSink{gate: make(chan struct{})}
	s := Batching(rec, BatchOptions{MaxEvents: 2, MaxWait: time.Minute})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var otherErr error
	wg.Go(func() { otherErr = s.Deliver(context.Background(), testEvent("other")) })
	done := make(chan error, 1)
	go func() { done <- s.Deliver(ctx, testEvent("impatient")) }()
	// Both are in a batch being sent (the gate holds it).
	deadline := time.Now().Add(5 * time.Second)
	for rec.entered.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("impatient: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled caller waited for its batch")
	}
	close(rec.gate) // the batch goes on for the other caller
	wg.Wait()
	if otherErr != nil {
		t.Errorf("other: %v", otherErr)
	}
	if b := rec.got(); len(b) != 1 || len(b[0]) != 2 {
		t.Errorf("batches %v, want one of both events", b)
	}
}

func TestBatchingClose(t *testing.T) {
	rec := &recordingBatchSink{}
	s := Batching(rec, BatchOptions{MaxEvents: 100, MaxWait: time.Minute})
	done := make(chan error, 1)
	go func() { done <- s.Deliver(context.Background(), testEvent("pending")) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.(*batcher).mu.Lock()
		waiting := s.(*batcher).cur != nil
		s.(*batcher).mu.Unlock()
		if waiting || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if p, _ := Classify(err); !errors.Is(err, ErrBatcherClosed) || p {
		t.Errorf("pending at Close: %v, want retryable ErrBatcherClosed", err)
	}
	if b := rec.got(); len(b) != 0 {
		t.Errorf("Close sent %v", b)
	}
	if err := s.Deliver(context.Background(), testEvent("after")); !errors.Is(err, ErrBatcherClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestBatchingRace runs many callers with mixed deadlines and failures;
// with -race it checks the locking, and that every caller gets exactly one
// answer and every event delivered is delivered once.
func TestBatchingRace(t *testing.T) {
	rec := &recordingBatchSink{fail: map[string]error{}}
	for i := 0; i < 1000; i += 7 {
		rec.fail[fmt.Sprintf("e%d", i)] = Retryable(errors.New("busy"), 0)
	}
	s := Batching(rec, BatchOptions{MaxEvents: 16, MaxWait: 2 * time.Millisecond})
	var wg sync.WaitGroup
	var ok, failed, cancelled atomic.Int64
	for i := range 1000 {
		wg.Go(func() {
			ctx := context.Background()
			if i%5 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(i%3)*time.Millisecond)
				defer cancel()
			}
			err := s.Deliver(ctx, testEvent(fmt.Sprintf("e%d", i)))
			switch {
			case err == nil:
				ok.Add(1)
			case ctx.Err() != nil:
				cancelled.Add(1)
			default:
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := ok.Load() + failed.Load() + cancelled.Load(); n != 1000 {
		t.Fatalf("%d answers for 1000 calls", n)
	}
	seen := map[string]int{}
	for _, b := range rec.got() {
		if len(b) > 16 {
			t.Errorf("batch of %d > maxEvents", len(b))
		}
		for _, id := range b {
			seen[id]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", id, n)
		}
	}
	if int64(len(seen)) < ok.Load()+failed.Load() {
		t.Errorf("%d events sent, but %d callers were answered by the sink", len(seen), ok.Load()+failed.Load())
	}
}

// TestBatchingSplitsPermanentFailures: a batch refused whole and for good
// is split until the event at fault fails alone; the others are delivered
// once.
func TestBatchingSplitsPermanentFailures(t *testing.T) {
	rec := &recordingBatchSink{poison: "e5"}
	var calls atomic.Int32
	s := Batching(rec, BatchOptions{MaxEvents: 16, MaxWait: time.Minute, OnBatch: func(int) { calls.Add(1) }})
	defer s.Close()
	res := deliverAll(context.Background(), s, ids("e", 16))
	for id, err := range res {
		if id == "e5" {
			if p, _ := Classify(err); err == nil || !p {
				t.Errorf("e5: %v, want permanent", err)
			}
		} else if err != nil {
			t.Errorf("%s: %v, want nil", id, err)
		}
	}
	seen := map[string]int{}
	for _, b := range rec.got() {
		for _, id := range b {
			seen[id]++
		}
	}
	for _, id := range ids("e", 16) {
		if want := map[bool]int{true: 0, false: 1}[id == "e5"]; seen[id] != want {
			t.Errorf("%s accepted %d times, want %d", id, seen[id], want)
		}
	}
	// 16 → 8+8 → 4+4 → 2+2 → 1+1: 1 + 2*4 sends.
	if n := calls.Load(); n != 9 {
		t.Errorf("%d sends, want 9", n)
	}
}

// BenchmarkBatching measures the decorator's own cost per event: 64
// callers at once into batches of 64, with a sink that does nothing.
func BenchmarkBatching(b *testing.B) {
	s := Batching(nopBatchSink{}, BatchOptions{MaxEvents: 64, MaxWait: time.Millisecond})
	defer s.Close()
	e := testEvent("bench")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.SetParallelism(64)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Deliver(ctx, e); err != nil {
				b.Error(err)
			}
		}
	})
}

type nopBatchSink struct{}

func (nopBatchSink) Deliver(context.Context, *event.Event) error { return nil }
func (nopBatchSink) DeliverBatch(_ context.Context, events []*event.Event) []error {
	return make([]error, len(events))
}
func (nopBatchSink) Close() error { return nil }

// TestBatchingCloseCancelsSending: a batch still being sent when the sink
// is closed (its caller gave up) is cancelled, so Close does not wait for
// its deadline.
func TestBatchingCloseCancelsSending(t *testing.T) {
	rec := &recordingBatchSink{gate: make(chan struct{})}
	s := Batching(rec, BatchOptions{MaxEvents: 1, MaxWait: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	done := make(chan error, 1)
	go func() { done <- s.Deliver(ctx, testEvent("stuck")) }()
	deadline := time.Now().Add(5 * time.Second)
	for rec.entered.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close waited %v for a batch whose caller had gone", d)
	}
}
