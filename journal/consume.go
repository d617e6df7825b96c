package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	// entry is the entry as stored.
	entry Entry
	// keyed is set for an entry of the keyed lane: its outcome is
	// recorded, and the keyed runner answers the journal (see keyed.go).
	keyed   bool
	outcome outcome
	// parkSeq is the stream sequence of a parked entry read back (see
	// park.go), 0 otherwise.
	parkSeq uint64
	// Route, DeadLetter, Key, Priority, Data, TraceParent and TraceState
	// are the entry's fields.
	Route                   string
	DeadLetter              bool
	Key                     string
	Priority                int
	Data                    []byte
	TraceParent, TraceState string
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
	// OrderSeq is, for an entry with a Key, its sequence number: it
	// strictly increases from one entry of a route and key to the next, in
	// the order they were stored, and stays the same across attempts,
	// restarts and replicas (the stream sequence of the message that first
	// held it). 0 without a key.
	OrderSeq uint64
}

// outcome is how a keyed delivery was answered.
type outcome struct {
	set   bool
	retry bool
	// release: the attempt was not made (Release), it does not count.
	release bool
	delay   time.Duration
	drop    string
}

// batchMsg is a journal message of several entries: it is acknowledged
// once every entry is resolved.
type batchMsg struct {
	held *held
	mu   sync.Mutex
	left int
	// failed is set when an entry to retry could not be stored again: the
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
	d.c.j.finished.Add(1)
	if d.keyed {
		d.outcome = outcome{set: true}
		return nil
	}
	return d.ack()
}

func (d *Delivery) ack() error {
	if d.batch != nil {
		return d.batch.resolve(false, 0)
	}
	d.held.answered()
	return d.held.msg.Ack()
}

// Retry hands the entry out again after delay. An entry without a key is
// stored again, due after delay, in the delay stream, so that while it
// waits it takes no place in the sink's window (if that fails, its journal
// message is handed out again after delay). An entry with a key is
// attempted again in place: the entries of its key wait behind it.
func (d *Delivery) Retry(delay time.Duration) error {
	if d.keyed {
		d.outcome = outcome{set: true, retry: true, delay: delay}
		return nil
	}
	return d.again(delay, d.Attempt)
}

// Release hands the entry back, to be handed out again after delay, as an
// attempt that was not made: its next hand-out has the same Attempt (a
// sink that takes nothing now, its circuit open or its rate limit
// reached). It is stored again as Retry does (if that fails, its journal
// message is handed out again after delay, which counts an attempt).
func (d *Delivery) Release(delay time.Duration) error {
	if d.keyed {
		d.outcome = outcome{set: true, retry: true, delay: delay, release: true}
		return nil
	}
	return d.again(delay, d.Attempt-1)
}

// again stores the entry again with attempts made, due after delay, and
// acknowledges its journal message.
func (d *Delivery) again(delay time.Duration, attempts int) error {
	e := d.entry
	e.Sink = d.c.sink
	e.Attempts = attempts
	e.Accepted = d.Accepted
	e.NotBefore = time.Now().Add(delay)
	ctx, cancel := context.WithTimeout(context.Background(), d.c.j.writeTimeout())
	err := d.c.j.append(ctx, []Entry{e}, true)
	cancel()
	if err != nil {
		d.c.j.log.Warn("journal: storing an entry to retry failed; its journal message will be handed out again",
			"sink", d.c.sink, "seq", d.Seq, "err", err)
		if d.batch != nil {
			d.batch.resolve(true, delay)
			return err
		}
		d.held.answered()
		d.held.msg.NakWithDelay(delay)
		return err
	}
	return d.ack()
}

// Drop removes the entry without delivery (it cannot ever be delivered).
func (d *Delivery) Drop(reason string) error {
	d.c.j.finished.Add(1)
	if d.keyed {
		d.outcome = outcome{set: true, drop: reason}
		return nil
	}
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
	// MaxPending bounds the journal messages handed out and not yet
	// acknowledged, per lane. Default 1000 or 16 × Concurrency.
	MaxPending int
	// Priorities are the priorities (1..MaxPriority) that entries for the
	// sink may have: each has a lane. Lanes that hold entries get one too.
	Priorities []int
	// Keyed says that entries for the sink may have keys (the keyed lane
	// is read also when it holds entries).
	Keyed bool
	// Paused, if set, is asked before each fetch of the lanes without
	// keys: while it returns more than 0 (how long the sink will take
	// nothing more, its circuit being open) nothing is fetched. The keyed
	// lane keeps fetching, to stay pinned to this process; its entries
	// wait in its window.
	Paused func() time.Duration
}

// Consumer feeds one sink's entries, from all its lanes, to a handler.
type Consumer struct {
	j    *Journal
	sink string
	opts ConsumeOptions
	// base is the lane of priority 0; prio the lanes of other
	// priorities, highest first; keyed the keyed lane, or nil.
	base  jetstream.Consumer
	prio  []jetstream.Consumer
	keyed jetstream.Consumer
}

// pinGroup is the priority group of the keyed lane's consumer: it is
// pinned to one client (one replica) at a time, so that one process only
// hands out the entries of a key.
const pinGroup = "junction"

// Consumer creates or updates the durable consumers of sink's lanes.
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
	c := &Consumer{j: j, sink: sink, opts: o}
	var err error
	// The lane of priority 0 first: the consumer of an earlier version
	// took all of the sink's subjects, and consumers of a work queue must
	// not overlap.
	if c.base, err = j.laneConsumer(ctx, lane{sink: sink, kind: laneUnordered}, o); err != nil {
		return nil, err
	}
	levels := map[int]bool{}
	for _, p := range o.Priorities {
		if p > 0 && p <= MaxPriority {
			levels[p] = true
		}
	}
	keyed := o.Keyed
	lanesHeld, err := j.pendingLanes(ctx, sink)
	if err != nil {
		return nil, fmt.Errorf("read the lanes of sink %s: %w", sink, err)
	}
	for ln := range lanesHeld {
		switch ln.kind {
		case lanePriority:
			levels[ln.priority] = true
		case laneKeyed:
			keyed = true
		}
	}
	for p := MaxPriority; p > 0; p-- {
		if !levels[p] {
			continue
		}
		lc, err := j.laneConsumer(ctx, lane{sink: sink, kind: lanePriority, priority: p}, o)
		if err != nil {
			return nil, err
		}
		c.prio = append(c.prio, lc)
	}
	if keyed {
		if c.keyed, err = j.laneConsumer(ctx, lane{sink: sink, kind: laneKeyed}, o); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// laneConsumer creates or updates the durable consumer of one lane.
func (j *Journal) laneConsumer(ctx context.Context, ln lane, o ConsumeOptions) (jetstream.Consumer, error) {
	name := j.lanes.consumer(ln)
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "Junction deliveries to sink " + ln.sink + laneDescription(ln),
		FilterSubject: j.lanes.filter(ln),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: o.MaxPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      0,
	}
	if ln.kind == laneKeyed {
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
		cfg.PriorityGroups = []string{pinGroup}
		// A replica that stops pulling (it died) loses the lane once the
		// entries it held have come back (its last progress report was
		// at most a third of the ack wait before it died), so that the
		// next one is handed them before anything newer: keys stay in
		// order across a takeover.
		cfg.PinnedTTL = pinnedTTL(o.AckWait)
	}
	if old, err := setup(ctx, j, "consumer info "+name, func(ctx context.Context) (jetstream.Consumer, error) {
		return j.stream.Consumer(ctx, name)
	}); err == nil {
		if info := old.CachedInfo(); info != nil {
			j.warnChanged("consumer of sink "+ln.sink, consumerSettings(info.Config), consumerSettings(cfg))
		}
	}
	c, err := setup(ctx, j, "create consumer "+name, func(ctx context.Context) (jetstream.Consumer, error) {
		return j.stream.CreateOrUpdateConsumer(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer for sink %s: %w", ln.sink, err)
	}
	return c, nil
}

// pinnedTTL is how long the keyed lane stays pinned to a process that
// stopped pulling: past the ack wait after its last progress report, with
// a margin for the server's redelivery timer.
func pinnedTTL(ackWait time.Duration) time.Duration {
	return ackWait + ackWait/3 + 2*time.Second
}

func laneDescription(ln lane) string {
	switch ln.kind {
	case lanePriority:
		return " (priority " + strconv.Itoa(ln.priority) + ")"
	case laneKeyed:
		return " (ordered by key)"
	}
	return ""
}

func consumerSettings(c jetstream.ConsumerConfig) []setting {
	return []setting{
		{"journal.ackWait", c.AckWait.String()},
		{"maxPending", strconv.Itoa(c.MaxAckPending)},
	}
}

// Pending returns how many entries wait for the sink: not yet handed out,
// plus handed out and not yet acknowledged (an entry of a batch counts until
// its whole batch is). Entries not due yet (in the delay stream) are not
// counted.
func (c *Consumer) Pending(ctx context.Context) (uint64, error) {
	p, err := c.j.pending(ctx, c.j.lanes.sink(c.sink))
	return p[c.sink], err
}

// Pending returns, for every sink with entries in the journal, how many
// wait for it, as Consumer.Pending counts them; with one request to the
// journal, whatever the number of sinks.
func (j *Journal) Pending(ctx context.Context) (map[string]uint64, error) {
	return j.pending(ctx, j.lanes.all())
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
		if ln, n, ok := j.lanes.parse(subject); ok {
			out[ln.sink] += uint64(n) * msgs
		}
	}
	return out, nil
}

// pendingLanes returns the lanes of sink that hold entries.
func (j *Journal) pendingLanes(ctx context.Context, sink string) (map[lane]bool, error) {
	info, err := j.stream.Info(ctx, jetstream.WithSubjectFilter(j.lanes.sink(sink)))
	if err != nil {
		return nil, err
	}
	out := map[lane]bool{}
	for subject := range info.State.Subjects {
		if ln, _, ok := j.lanes.parse(subject); ok {
			out[ln] = true
		}
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
	// release frees the message's slot in its lane's fetcher.
	release chan<- struct{}

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

// keeper keeps the messages held by a consumer alive in the journal.
type keeper struct {
	mu      sync.Mutex
	holding map[*held]struct{}
}

func (k *keeper) add(h *held) {
	k.mu.Lock()
	k.holding[h] = struct{}{}
	k.mu.Unlock()
}

func (k *keeper) remove(h *held) {
	k.mu.Lock()
	delete(k.holding, h)
	k.mu.Unlock()
}

// run reports progress on every held message every period until ctx ends.
func (k *keeper) run(ctx context.Context, period time.Duration) {
	beat := time.NewTicker(period)
	defer beat.Stop()
	for {
		select {
		case <-beat.C:
		case <-ctx.Done():
			return
		}
		k.mu.Lock()
		hs := make([]*held, 0, len(k.holding))
		for h := range k.holding {
			hs = append(hs, h)
		}
		k.mu.Unlock()
		for _, h := range hs {
			h.progress()
		}
	}
}

// Run hands entries to handle until ctx ends, at most Concurrency at once
// over all the lanes, then waits for the handlers running (their own
// context is drainCtx, which the caller cancels when draining must stop).
func (c *Consumer) Run(ctx, drainCtx context.Context, handle func(context.Context, *Delivery)) error {
	sem := make(chan struct{}, c.opts.Concurrency)
	guarded := func(ctx context.Context, d *Delivery) {
		sem <- struct{}{}
		defer func() { <-sem }()
		handle(ctx, d)
	}
	keep := &keeper{holding: map[*held]struct{}{}}
	beatCtx, stopBeat := context.WithCancel(context.Background())
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		keep.run(beatCtx, max(c.opts.AckWait/3, 100*time.Millisecond))
	}()
	var wg sync.WaitGroup
	if c.keyed != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.runKeyed(ctx, drainCtx, guarded, keep)
		}()
	}
	c.runUnordered(ctx, drainCtx, guarded, keep)
	wg.Wait()
	stopBeat()
	<-beatDone
	return nil
}

// runUnordered hands out the entries of the lanes without keys.
//
// Each lane has a fetcher that pulls explicitly: each request asks for as
// many journal messages as the lane has free slots (a slot per worker and a
// buffer of as many again) and lasts at most FetchWait, so that a lost pull
// or a missed heartbeat never stalls a sink for longer than that. A message
// of several entries takes one slot until all of them have been handled.
// The workers take the entry of the highest priority waiting, so that an
// entry of a higher priority waits only for the attempts in progress.
func (c *Consumer) runUnordered(ctx, drainCtx context.Context, handle func(context.Context, *Delivery), keep *keeper) {
	q := newReadyQueue()
	var wg sync.WaitGroup
	for range c.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d := q.pop()
				if d == nil {
					return
				}
				h := d.held
				handle(drainCtx, d)
				if h.left.Add(-1) == 0 {
					keep.remove(h)
					h.release <- struct{}{}
				}
			}
		}()
	}
	var fetchers sync.WaitGroup
	lanes := append([]jetstream.Consumer{c.base}, c.prio...)
	for _, lc := range lanes {
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			c.fetchLane(ctx, lc, q, keep)
		}()
	}
	fetchers.Wait()
	// Hand what was fetched to the workers (they drain with drainCtx).
	q.close()
	wg.Wait()
}

// fetchLane pulls one lane's messages into q until ctx ends.
func (c *Consumer) fetchLane(ctx context.Context, lc jetstream.Consumer, q *readyQueue, keep *keeper) {
	slots := 2 * c.opts.Concurrency
	idle := make(chan struct{}, slots)
	for range slots {
		idle <- struct{}{}
	}
	failures := 0
	for {
		// Wait for one free slot, then count the others.
		select {
		case <-idle:
		case <-ctx.Done():
			return
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
		// Slots come free as deliveries are answered; while the sink takes
		// nothing, they stay free.
		if !c.waitUnpaused(ctx) {
			return
		}
		batch, err := lc.Fetch(n, jetstream.FetchMaxWait(FetchWait))
		got := 0
		if err == nil {
			for msg := range batch.Messages() {
				got++
				c.dispatch(msg, q, keep, idle)
			}
			err = fetchError(batch)
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
		c.j.log.Warn("journal fetch failed", "sink", c.sink, "consumer", lc.CachedInfo().Name, "err", err, "failures", failures)
		if !pause(ctx, failures) {
			return
		}
	}
}

// waitUnpaused waits while the sink takes nothing (ConsumeOptions.Paused);
// false when ctx ends first.
func (c *Consumer) waitUnpaused(ctx context.Context) bool {
	if c.opts.Paused == nil {
		return true
	}
	for {
		wait := c.opts.Paused()
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(min(wait, FetchWait))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// fetchError is the error of a fetch once its messages are read: nil when
// it only ended without filling up.
func fetchError(batch jetstream.MessageBatch) error {
	err := batch.Error()
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// pause waits after the failures-th failed fetch in a row (100ms more each
// time, at most 2s); false when ctx ends first.
func pause(ctx context.Context, failures int) bool {
	select {
	case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
		return true
	case <-ctx.Done():
		return false
	}
}

// dispatch queues a fetched message's entries for the workers, or answers
// the journal itself for a message that is unreadable or not due yet. It
// frees the message's slot in the second case.
func (c *Consumer) dispatch(msg jetstream.Msg, q *readyQueue, keep *keeper, idle chan struct{}) {
	h := &held{msg: msg, release: idle}
	ds, wait, err := c.decode(msg, h)
	switch {
	case err != nil:
		c.j.log.Error("drop unreadable journal entry", "sink", c.sink, "subject", msg.Subject(), "err", err)
		msg.TermWithReason("unreadable entry")
		idle <- struct{}{}
		return
	case ds == nil:
		// An entry of an earlier version retried alone, fetched before
		// it is due.
		msg.NakWithDelay(wait)
		idle <- struct{}{}
		return
	}
	h.left.Store(int32(len(ds)))
	keep.add(h)
	q.push(ds)
}

// readyQueue holds the entries fetched and not yet attempted, by priority
// and in the order fetched.
type readyQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	closed bool
	byPrio [MaxPriority + 1][]*Delivery
	n      int
}

func newReadyQueue() *readyQueue {
	q := &readyQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *readyQueue) push(ds []*Delivery) {
	q.mu.Lock()
	for _, d := range ds {
		p := min(max(d.Priority, 0), MaxPriority)
		q.byPrio[p] = append(q.byPrio[p], d)
	}
	q.n += len(ds)
	q.mu.Unlock()
	if len(ds) == 1 {
		q.cond.Signal()
	} else {
		q.cond.Broadcast()
	}
}

// pop returns the next entry to attempt, waiting for one; nil once the
// queue is closed and empty.
func (q *readyQueue) pop() *Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n == 0 {
		if q.closed {
			return nil
		}
		q.cond.Wait()
	}
	for p := MaxPriority; p >= 0; p-- {
		if l := q.byPrio[p]; len(l) > 0 {
			d := l[0]
			l[0] = nil
			q.byPrio[p] = l[1:]
			q.n--
			return d
		}
	}
	return nil
}

func (q *readyQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// decode reads a journal message. It returns no deliveries and the time
// left to wait for an entry of an earlier version retried alone, whose
// first hand-out is the wait for its due time.
func (c *Consumer) decode(msg jetstream.Msg, h *held) ([]*Delivery, time.Duration, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, 0, err
	}
	ln, n, ok := c.j.lanes.parse(msg.Subject())
	if !ok {
		return nil, 0, fmt.Errorf("not a journal subject")
	}
	var entries []Entry
	if hdr := msg.Headers(); isLegacy(hdr, msg.Data()) {
		entries, err = decodeLegacy(hdr, msg.Data(), n)
	} else {
		entries, err = decodeEnvelope(msg.Data())
	}
	if err != nil {
		return nil, 0, err
	}
	attempt := int(meta.NumDelivered)
	if len(entries) == 1 && !entries[0].NotBefore.IsZero() {
		// Earlier versions: the first hand-out is the wait; attempts
		// follow.
		if meta.NumDelivered == 1 {
			return nil, max(time.Until(entries[0].NotBefore), 0), nil
		}
		attempt--
	}
	var b *batchMsg
	if len(entries) > 1 {
		b = &batchMsg{held: h, left: len(entries)}
	}
	ds := make([]*Delivery, len(entries))
	for i, e := range entries {
		e.Sink = ln.sink
		d := &Delivery{
			held: h, batch: b, c: c, entry: e, keyed: ln.kind == laneKeyed,
			Route: e.Route, DeadLetter: e.DeadLetter, Key: e.Key, Priority: e.Priority, Data: e.Data,
			TraceParent: e.TraceParent, TraceState: e.TraceState,
			Attempt:  e.Attempts + attempt,
			Accepted: e.Accepted,
			Index:    i,
			Seq:      meta.Sequence.Stream,
		}
		if d.Accepted.IsZero() {
			d.Accepted = meta.Timestamp
		}
		if e.Key != "" {
			d.OrderSeq = e.Seq
			if d.OrderSeq == 0 {
				d.OrderSeq = meta.Sequence.Stream
			}
		}
		ds[i] = d
	}
	return ds, 0, nil
}
