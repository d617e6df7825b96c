package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery is one entry handed to a consumer. Exactly one of Ack, Retry or
// Drop must be called; until then the journal keeps the entry and hands it
// out again after the consumer's ack wait (so a crash loses nothing).
type Delivery struct {
	held *held
	// batch is set when the entry shares its journal message with others.
	batch *batchMsg
	c     *Consumer
	// Route, DeadLetter and Data are the entry's fields.
	Route      string
	DeadLetter bool
	Data       []byte
	// Attempt is the attempt number, 1 for the first delivery.
	Attempt int
	// Accepted is when the entry was first stored: when its event was
	// accepted, for the delivery policy's maxAge.
	Accepted time.Time
	// Index is the entry's place in its journal message (0 when alone).
	Index int
	// Seq is the sequence number in the stream of the entry's journal
	// message (shared by the entries of a batch).
	Seq uint64
}

// batchMsg is a journal message of several entries: it is acknowledged
// once every entry is resolved.
type batchMsg struct {
	held *held
	mu   sync.Mutex
	left int
	// failed is set when an entry to retry could not be stored alone: the
	// whole message is then handed out again after retryDelay.
	failed     bool
	retryDelay time.Duration
}

func (b *batchMsg) resolve(failed bool, delay time.Duration) error {
	b.mu.Lock()
	if failed && (!b.failed || delay < b.retryDelay) {
		b.failed, b.retryDelay = true, delay
	}
	b.left--
	last, fail, wait := b.left == 0, b.failed, b.retryDelay
	b.mu.Unlock()
	if !last {
		return nil
	}
	b.held.answered()
	if fail {
		return b.held.msg.NakWithDelay(wait)
	}
	return b.held.msg.Ack()
}

// Ack removes the entry: it has been handled.
func (d *Delivery) Ack() error {
	if d.batch != nil {
		return d.batch.resolve(false, 0)
	}
	d.held.answered()
	return d.held.msg.Ack()
}

// Retry hands the entry out again after delay.
func (d *Delivery) Retry(delay time.Duration) error {
	if d.batch == nil {
		d.held.answered()
		return d.held.msg.NakWithDelay(delay)
	}
	// The entry leaves its batch: it is stored alone, due after delay, and
	// is retried from there. If that fails, the whole batch comes back.
	e := Entry{Sink: d.c.sink, Route: d.Route, DeadLetter: d.DeadLetter, Data: d.Data}
	if err := d.c.j.retryAlone(e, d.Attempt, d.Accepted, time.Now().Add(delay)); err != nil {
		d.c.j.log.Warn("journal: storing an entry to retry failed; its whole batch will be handed out again",
			"sink", d.c.sink, "seq", d.Seq, "err", err)
		d.batch.resolve(true, delay)
		return err
	}
	return d.batch.resolve(false, 0)
}

// Drop removes the entry without delivery (it cannot ever be delivered).
func (d *Delivery) Drop(reason string) error {
	if d.batch != nil {
		return d.batch.resolve(false, 0)
	}
	d.held.answered()
	return d.held.msg.TermWithReason(reason)
}

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
	if old, err := setup(ctx, j, "consumer info "+sink, func(ctx context.Context) (jetstream.Consumer, error) {
		return j.stream.Consumer(ctx, sink)
	}); err == nil {
		if info := old.CachedInfo(); info != nil {
			j.warnChanged("consumer of sink "+sink, consumerSettings(info.Config), consumerSettings(cfg))
		}
	}
	c, err := setup(ctx, j, "create consumer "+sink, func(ctx context.Context) (jetstream.Consumer, error) {
		return j.stream.CreateOrUpdateConsumer(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer for sink %s: %w", sink, err)
	}
	return &Consumer{j: j, sink: sink, cons: c, opts: o}, nil
}

func consumerSettings(c jetstream.ConsumerConfig) []setting {
	return []setting{
		{"journal.ackWait", c.AckWait.String()},
		{"maxPending", strconv.Itoa(c.MaxAckPending)},
	}
}

// Pending returns how many entries wait for the sink: not yet handed out,
// plus handed out and not yet acknowledged (an entry of a batch counts until
// its whole batch is).
func (c *Consumer) Pending(ctx context.Context) (uint64, error) {
	p, err := c.j.pending(ctx, c.j.Subject(c.sink))
	return p[c.sink], err
}

// Pending returns, for every sink with entries in the journal, how many
// wait for it, as Consumer.Pending counts them; with one request to the
// journal, whatever the number of sinks.
func (j *Journal) Pending(ctx context.Context) (map[string]uint64, error) {
	return j.pending(ctx, j.prefix+".>")
}

// pending counts the entries by sink in the journal messages on subjects
// that match filter.
func (j *Journal) pending(ctx context.Context, filter string) (map[string]uint64, error) {
	info, err := j.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64)
	for subject, msgs := range info.State.Subjects {
		sink, ok := strings.CutPrefix(subject, j.prefix+".")
		if !ok {
			continue
		}
		if i := strings.IndexByte(sink, '.'); i >= 0 {
			sink = sink[:i]
		}
		out[sink] += uint64(entriesIn(subject)) * msgs
	}
	return out, nil
}

// FetchWait bounds one pull request: an open request is filled by the
// journal as entries arrive, and a new one is made at least this often.
const FetchWait = 250 * time.Millisecond

// held is a journal message handed to the workers: the consumer keeps
// telling the journal it is in progress until every entry has been handled,
// so entries that wait behind others are not handed out a second time.
type held struct {
	msg  jetstream.Msg
	left atomic.Int32 // entries whose handler has not returned

	mu   sync.Mutex
	done bool // the message has been answered: no more progress
}

// answered stops the progress reports, before the answer is sent: a report
// sent after a delayed retry would restart the whole ack wait.
func (h *held) answered() {
	h.mu.Lock()
	h.done = true
	h.mu.Unlock()
}

// progress tells the journal the message is still being worked on, unless
// it has been answered.
func (h *held) progress() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.done {
		h.msg.InProgress()
	}
}

// Run hands entries to handle on Concurrency workers until ctx ends, then
// waits for the handlers running (their own context is drainCtx, which the
// caller cancels when draining must stop).
//
// It pulls explicitly: each request asks for as many journal messages as
// there are free slots (idle workers plus a buffer of as many) and lasts at
// most FetchWait, so a lost pull or a missed heartbeat never stalls a sink
// for longer than that. A message of several entries takes one slot until
// all of them have been handled.
func (c *Consumer) Run(ctx, drainCtx context.Context, handle func(context.Context, *Delivery)) error {
	conc := c.opts.Concurrency
	// A token per message that may be handed out: one per worker, and as
	// many again waiting in the buffer, so that workers never wait for a
	// fetch.
	slots := 2 * conc
	idle := make(chan struct{}, slots)
	for range slots {
		idle <- struct{}{}
	}
	var heldMu sync.Mutex
	holding := map[*held]struct{}{}
	release := func(h *held) {
		heldMu.Lock()
		delete(holding, h)
		heldMu.Unlock()
		idle <- struct{}{}
	}
	work := make(chan *Delivery, slots)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				h := d.held
				handle(drainCtx, d)
				if h.left.Add(-1) == 0 {
					release(h)
				}
			}
		}()
	}
	// Keep the messages held alive in the journal.
	beat := time.NewTicker(max(c.opts.AckWait/3, 100*time.Millisecond))
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		for {
			select {
			case <-beat.C:
			case <-ctx.Done():
				return
			}
			heldMu.Lock()
			hs := make([]*held, 0, len(holding))
			for h := range holding {
				hs = append(hs, h)
			}
			heldMu.Unlock()
			for _, h := range hs {
				h.progress()
			}
		}
	}()
	defer func() {
		close(work)
		wg.Wait()
		beat.Stop()
		<-beatDone
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
				c.dispatch(msg, work, &heldMu, holding, idle)
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

// dispatch hands a fetched message's entries to the workers, or answers the
// journal itself for a message that is unreadable or not due yet. It frees
// the message's slot in the second case.
func (c *Consumer) dispatch(msg jetstream.Msg, work chan<- *Delivery, heldMu *sync.Mutex, holding map[*held]struct{}, idle chan<- struct{}) {
	h := &held{msg: msg}
	ds, wait, err := c.decode(msg, h)
	switch {
	case err != nil:
		c.j.log.Error("drop unreadable journal entry", "sink", c.sink, "subject", msg.Subject(), "err", err)
		msg.TermWithReason("unreadable entry")
		idle <- struct{}{}
		return
	case ds == nil:
		// An entry retried alone, fetched before it is due.
		msg.NakWithDelay(wait)
		idle <- struct{}{}
		return
	}
	h.left.Store(int32(len(ds)))
	heldMu.Lock()
	holding[h] = struct{}{}
	heldMu.Unlock()
	for _, d := range ds {
		work <- d
	}
}

// decode reads a journal message. It returns no deliveries and the time
// left to wait for an entry retried alone whose first hand-out is the wait
// for its due time.
func (c *Consumer) decode(msg jetstream.Msg, h *held) ([]*Delivery, time.Duration, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, 0, err
	}
	hdr := msg.Headers()
	attempt := int(meta.NumDelivered)
	if v := hdr.Get(headerAttempts); v != "" {
		prev, err := strconv.Atoi(v)
		if err != nil || prev < 0 {
			return nil, 0, fmt.Errorf("bad %s header %q", headerAttempts, v)
		}
		attempt += prev
		if v := hdr.Get(headerDue); v != "" {
			due, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("bad %s header %q", headerDue, v)
			}
			// The first hand-out is the wait; attempts follow.
			if meta.NumDelivered == 1 {
				return nil, max(time.Until(time.Unix(0, due)), 0), nil
			}
			attempt--
		}
	}
	accepted := meta.Timestamp
	if v := hdr.Get(headerAccepted); v != "" {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("bad %s header %q", headerAccepted, v)
		}
		accepted = time.Unix(0, ns)
	}
	one := &Delivery{
		held:     h,
		c:        c,
		Attempt:  attempt,
		Accepted: accepted,
		Seq:      meta.Sequence.Stream,
	}
	if entriesIn(msg.Subject()) > 1 {
		entries, err := splitBatch(msg.Data())
		if err != nil {
			return nil, 0, err
		}
		b := &batchMsg{held: h, left: len(entries)}
		ds := make([]*Delivery, len(entries))
		for i, e := range entries {
			d := *one
			d.batch, d.Route, d.DeadLetter, d.Data, d.Index = b, e.Route, e.DeadLetter, e.Data, i
			ds[i] = &d
		}
		return ds, 0, nil
	}
	one.Route = hdr.Get(HeaderRoute)
	one.DeadLetter = hdr.Get(HeaderDeadLetter) == "1"
	one.Data = msg.Data()
	return []*Delivery{one}, 0, nil
}
