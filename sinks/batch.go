package sinks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// BatchSink is a Sink that can also send several events in one request or
// one broker batch (a sink's `batch` key; see Batching).
type BatchSink interface {
	Sink
	// DeliverBatch sends events together and returns one error per event,
	// in order: nil once the destination accepted that event, else a
	// failure classified as for Deliver (Permanent, Retryable). Whether one
	// event's failure fails the others depends on the destination (one
	// HTTP request succeeds or fails whole; a broker batch answers per
	// message). ctx bounds the whole batch.
	DeliverBatch(ctx context.Context, events []*event.Event) []error
}

// BatchConfig is implemented by the Config of a sink type whose sinks are
// BatchSinks, so that `batch` can be checked without building the sink.
type BatchConfig interface {
	Config
	// BatchSupported is nil when the configured sink can batch, else why
	// not (for instance a mode of the sink that has no batch form).
	BatchSupported() error
}

// BatchOptions configure Batching.
type BatchOptions struct {
	// MaxEvents sends a batch once it has this many events. At least 1.
	MaxEvents int
	// MaxWait sends a batch this long after its first event came, however
	// few events it has. More than 0.
	MaxWait time.Duration
	// OnBatch, if set, is called with the number of events of every batch
	// sent (for a batch size metric).
	OnBatch func(n int)
}

// ErrBatcherClosed is the error of a delivery still waiting for its batch
// when the batching sink was closed; it is retryable.
var ErrBatcherClosed = errors.New("batching sink closed before the batch was sent")

// Batching returns a Sink whose Deliver puts its event in the batch being
// filled and blocks until that batch has been sent with s.DeliverBatch,
// then returns that event's own error. A batch is sent when it has
// o.MaxEvents events or o.MaxWait after its first event, whichever comes
// first. Every event keeps its own result, so the router's per-delivery
// retries and dead-lettering stay as they are: a failed event is retried
// alone and may join a later batch, and events delivered with it are not
// sent again. Events that fail permanently together are split up first
// (see sendBatch), so that one bad event does not dead-letter its batch.
//
// When a caller's ctx ends before its batch is sent, its event leaves the
// batch and Deliver returns the ctx's error; when it ends while the batch is
// being sent, Deliver returns at once and the batch goes on (the event may
// have been delivered: at least once). A batch is bounded by the latest
// deadline of its callers, and carries the values of its first caller's ctx.
//
// Deliver blocks, so batches fill only when many Deliver calls run at once:
// the router runs a batching sink with a concurrency of at least MaxEvents.
// Close fails what is waiting for a batch (retryable, ErrBatcherClosed),
// cancels and waits for the batches being sent, and closes s.
func Batching(s BatchSink, o BatchOptions) Sink {
	quit, cancel := context.WithCancel(context.Background())
	return &batcher{s: s, o: o, quit: quit, cancelQuit: cancel}
}

type batcher struct {
	s  BatchSink
	o  BatchOptions
	mu sync.Mutex
	// cur is the batch being filled, nil when none.
	cur    *pendingBatch
	closed bool
	// sending counts batches being sent, for Close.
	sending sync.WaitGroup
	// quit ends with Close: it cuts short the batches still being sent
	// (their callers have given up already).
	quit       context.Context
	cancelQuit context.CancelFunc
}

// pendingBatch is a batch being filled; once taken (by its size, its timer
// or Close) it is no longer b.cur and its items are fixed.
type pendingBatch struct {
	items []*batchItem
	timer *time.Timer
	taken bool
}

// batchItem is one Deliver call waiting for its result.
type batchItem struct {
	ctx  context.Context
	e    *event.Event
	done chan error // buffered: answering never blocks
}

// Deliver adds e to the batch being filled and returns e's result once
// that batch has been sent, or ctx's error (see Batching).
func (b *batcher) Deliver(ctx context.Context, e *event.Event) error {
	it := &batchItem{ctx: ctx, e: e, done: make(chan error, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return Retryable(ErrBatcherClosed, 0)
	}
	pb := b.cur
	if pb == nil {
		pb = &pendingBatch{}
		pb.timer = time.AfterFunc(b.o.MaxWait, func() { b.expire(pb) })
		b.cur = pb
	}
	pb.items = append(pb.items, it)
	full := len(pb.items) >= b.o.MaxEvents
	if full {
		b.takeLocked(pb)
	}
	b.mu.Unlock()
	if full {
		b.send(pb.items)
	}

	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !pb.taken {
		// Not sent yet: leave the batch.
		pb.items = slices.DeleteFunc(pb.items, func(x *batchItem) bool { return x == it })
		if len(pb.items) == 0 {
			b.takeLocked(pb)
		}
		b.mu.Unlock()
		return ctxError(ctx)
	}
	b.mu.Unlock()
	// Taken: the answer may be there already.
	select {
	case err := <-it.done:
		return err
	default:
		return ctxError(ctx)
	}
}

func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Retryable(fmt.Errorf("batch not sent before the delivery timeout: %w", ctx.Err()), 0)
	}
	return Retryable(fmt.Errorf("cancelled while waiting for the batch: %w", ctx.Err()), 0)
}

// takeLocked detaches pb from b so that no event joins it; b.mu is held.
func (b *batcher) takeLocked(pb *pendingBatch) {
	pb.taken = true
	pb.timer.Stop()
	if b.cur == pb {
		b.cur = nil
	}
}

// expire sends pb when its MaxWait has passed, unless it was taken.
func (b *batcher) expire(pb *pendingBatch) {
	b.mu.Lock()
	if pb.taken {
		b.mu.Unlock()
		return
	}
	b.takeLocked(pb)
	items := pb.items
	b.mu.Unlock()
	b.send(items)
}

// send sends the items of a taken batch in a goroutine of its own and
// answers each.
func (b *batcher) send(items []*batchItem) {
	if len(items) == 0 {
		return
	}
	b.sending.Add(1)
	go func() {
		defer b.sending.Done()
		b.deliver(items)
	}()
}

func (b *batcher) deliver(items []*batchItem) {
	live := items[:0:0]
	for _, it := range items {
		if err := it.ctx.Err(); err != nil {
			it.done <- ctxError(it.ctx) // its Deliver has returned or is returning
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(live)
	defer cancel()
	defer context.AfterFunc(b.quit, cancel)()
	events := make([]*event.Event, len(live))
	for i, it := range live {
		events[i] = it.e
	}
	errs := b.sendBatch(ctx, events)
	for i, it := range live {
		it.done <- errs[i]
	}
}

// sendBatch sends events with DeliverBatch. When several of them fail
// permanently (a destination that answers for the whole batch, like an
// HTTP endpoint refusing it with 400 or 413), they are sent again in two
// halves, and so on, so that a permanent failure is only ever given to an
// event that failed alone or failed while others of its batch did not;
// the events accepted are not sent again. A retryable failure is not split:
// it is usually the destination's (down, overloaded), and each event is
// retried by its own delivery policy.
func (b *batcher) sendBatch(ctx context.Context, events []*event.Event) []error {
	if b.o.OnBatch != nil {
		b.o.OnBatch(len(events))
	}
	errs := b.s.DeliverBatch(ctx, events)
	if len(errs) != len(events) {
		miss := Retryable(fmt.Errorf("the sink returned %d results for a batch of %d events", len(errs), len(events)), 0)
		errs = make([]error, len(events))
		for i := range errs {
			errs[i] = miss
		}
		return errs
	}
	if len(events) < 2 || ctx.Err() != nil {
		return errs
	}
	var perm []int
	for i, err := range errs {
		if p, _ := Classify(err); err != nil && p {
			perm = append(perm, i)
		}
	}
	if len(perm) < 2 {
		return errs
	}
	half := len(perm) / 2
	for _, part := range [][]int{perm[:half], perm[half:]} {
		sub := make([]*event.Event, len(part))
		for j, i := range part {
			sub[j] = events[i]
		}
		for j, err := range b.sendBatch(ctx, sub) {
			errs[part[j]] = err
		}
	}
	return errs
}

// batchContext is the context of one batch: the values of its first
// caller's ctx (the attempt timeout, for error texts), and the latest
// deadline of its callers, so that no caller's attempt is cut short by
// another's. Without any deadline it has none.
func batchContext(items []*batchItem) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(items[0].ctx)
	var latest time.Time
	for _, it := range items {
		dl, ok := it.ctx.Deadline()
		if !ok {
			return context.WithCancel(base)
		}
		if dl.After(latest) {
			latest = dl
		}
	}
	return context.WithDeadline(base, latest)
}

// Close fails the deliveries waiting for a batch, cancels the batches
// still being sent (only after a shutdown's drain deadline are there any:
// their callers have returned) and waits for them, and closes the sink.
func (b *batcher) Close() error {
	b.mu.Lock()
	b.closed = true
	if pb := b.cur; pb != nil {
		b.takeLocked(pb)
		for _, it := range pb.items {
			it.done <- Retryable(ErrBatcherClosed, 0)
		}
	}
	b.mu.Unlock()
	b.cancelQuit()
	b.sending.Wait()
	return b.s.Close()
}
