package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery is one entry handed to a consumer. Exactly one of Ack, Retry or
// Drop must be called; until then the journal keeps the entry and hands it
// out again after the consumer's ack wait (so a crash loses nothing).
type Delivery struct {
	msg jetstream.Msg
	// Route, DeadLetter and Data are the entry's fields.
	Route      string
	DeadLetter bool
	Data       []byte
	// Attempt is the attempt number, 1 for the first delivery.
	Attempt int
	// Stored is when the entry was appended.
	Stored time.Time
	// Seq is the entry's sequence number in the stream.
	Seq uint64
}

// Ack removes the entry: it has been handled.
func (d *Delivery) Ack() error { return d.msg.Ack() }

// Retry hands the entry out again after delay.
func (d *Delivery) Retry(delay time.Duration) error { return d.msg.NakWithDelay(delay) }

// Drop removes the entry without delivery (it cannot ever be delivered).
func (d *Delivery) Drop(reason string) error { return d.msg.TermWithReason(reason) }

// InProgress tells the journal the entry is still being worked on, resetting
// its ack wait.
func (d *Delivery) InProgress() error { return d.msg.InProgress() }

// ConsumeOptions configure one sink's consumer.
type ConsumeOptions struct {
	// Concurrency is the number of entries handled at once. Default 1.
	Concurrency int
	// AckWait is how long an entry handed out may stay unanswered before it
	// is handed out again (a crashed worker's entry comes back after it).
	AckWait time.Duration
	// MaxPending bounds entries handed out and not yet acknowledged,
	// including those waiting for a retry. Default 1000 or 16 × Concurrency.
	MaxPending int
}

// Consumer feeds one sink's entries to a handler.
type Consumer struct {
	j    *Journal
	sink string
	cons jetstream.Consumer
	opts ConsumeOptions
}

// Consumer creates or updates the durable consumer of sink's entries.
func (j *Journal) Consumer(ctx context.Context, sink string, o ConsumeOptions) (*Consumer, error) {
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = max(1000, 16*o.Concurrency)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       sink,
		Description:   "Junction deliveries to sink " + sink,
		FilterSubject: j.Subject(sink),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: o.MaxPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      0,
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := j.stream.CreateOrUpdateConsumer(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer for sink %s: %w", sink, err)
	}
	return &Consumer{j: j, sink: sink, cons: c, opts: o}, nil
}

// Pending returns how many entries wait for the sink: not yet handed out,
// plus handed out and not yet acknowledged.
func (c *Consumer) Pending(ctx context.Context) (uint64, error) {
	info, err := c.cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// FetchWait bounds one pull request: an open request is filled by the
// journal as entries arrive, and a new one is made at least this often.
const FetchWait = 250 * time.Millisecond

// Run hands entries to handle on Concurrency workers until ctx ends, then
// waits for the handlers running (their own context is drainCtx, which the
// caller cancels when draining must stop).
//
// It pulls explicitly: each request asks for as many entries as there are
// free slots (idle workers plus a buffer of as many) and lasts at most FetchWait, so a lost pull or a missed
// heartbeat never stalls a sink for longer than that.
func (c *Consumer) Run(ctx, drainCtx context.Context, handle func(context.Context, *Delivery)) error {
	conc := c.opts.Concurrency
	// A token per entry that may be handed out: one per worker, and as many
	// again waiting in the buffer, so that workers never wait for a fetch.
	slots := 2 * conc
	idle := make(chan struct{}, slots)
	for range slots {
		idle <- struct{}{}
	}
	work := make(chan jetstream.Msg, slots)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range work {
				d, err := decode(msg)
				if err != nil {
					c.j.log.Error("drop unreadable journal entry", "sink", c.sink, "err", err)
					msg.TermWithReason("unreadable entry")
				} else {
					handle(drainCtx, d)
				}
				idle <- struct{}{}
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
	}()
	failures := 0
	for {
		// Wait for one free slot, then count the others.
		select {
		case <-idle:
		case <-ctx.Done():
			return nil
		}
		n := 1
	count:
		for n < slots {
			select {
			case <-idle:
				n++
			default:
				break count
			}
		}
		batch, err := c.cons.Fetch(n, jetstream.FetchMaxWait(FetchWait))
		got := 0
		if err == nil {
			for msg := range batch.Messages() {
				got++
				work <- msg
			}
			err = batch.Error()
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				err = nil
			}
		}
		for range n - got {
			idle <- struct{}{}
		}
		if err == nil {
			failures = 0
			continue
		}
		// The journal is unreachable or the consumer is gone: say so, back
		// off, and try again.
		failures++
		c.j.log.Warn("journal fetch failed", "sink", c.sink, "err", err, "failures", failures)
		select {
		case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
		case <-ctx.Done():
			return nil
		}
	}
}

func decode(msg jetstream.Msg) (*Delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, err
	}
	h := msg.Headers()
	return &Delivery{
		msg:        msg,
		Route:      h.Get(HeaderRoute),
		DeadLetter: h.Get(HeaderDeadLetter) == "1",
		Data:       msg.Data(),
		Attempt:    int(meta.NumDelivered),
		Stored:     meta.Timestamp,
		Seq:        meta.Sequence.Stream,
	}, nil
}
