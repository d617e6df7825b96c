package journal

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The keyed lane: entries with an ordering key reach their sink one at a
// time per route and key, in the order they were stored, while other keys
// flow.
//
// Its consumer is pinned to one process at a time (a JetStream priority
// group with the pinned-client policy): only that process is handed the
// lane's entries, in stream order. It queues them by key and hands each
// key's first entry to the workers; the next one of a key is handed out
// when the one before it is acknowledged or dropped (dead-lettered). A
// failed attempt is made again in place, after its delay: the entry keeps
// its place at the head of its key, and its journal message stays held
// (its progress reported), so a crash hands it out again before anything
// behind it. When the process dies, another one is pinned once the
// messages it held can be handed out again (pinnedTTL) and gets them.
//
// A process that starts on the lane (after a crash or a takeover) first
// waits until the deliveries the dead one held have come back (warmUp).
//
// A key whose first delivery keeps failing while its producer keeps
// sending would fill the lane's window (MaxPending journal messages) with
// its entries and hold back every other key: past parkAfter entries
// waiting behind a failing one, the next ones of that key are parked (see
// park.go), so that a failing key holds back only itself.

// keyedBatch resolves a keyed journal message once all its entries are.
type keyedBatch struct {
	held    *held
	left, n int
}

// keyedRun is the state of runKeyed.
type keyedRun struct {
	c      *Consumer
	mu     sync.Mutex
	cond   *sync.Cond
	closed bool
	// queues holds, per route and key, the entries handed out, the head
	// first; ready the heads to attempt now.
	queues map[string][]*Delivery
	ready  []*Delivery
	// msgs are the held messages by stream sequence.
	msgs   map[uint64]*keyedBatch
	timers map[*time.Timer]struct{}
	keep   *keeper
	// warm is set once every delivery of the lane handed out before this
	// run began (held by a process that died) has come back to it: until
	// then nothing is attempted (see warmUp).
	warm bool
	// retrying holds the keys whose first delivery failed and waits for
	// its next attempt; parked the keys with parked entries, by hash (see
	// park.go).
	retrying map[string]bool
	parked   map[string]*parkState
	ctx      context.Context
}

func keyOf(d *Delivery) string { return d.Route + "\x00" + d.Key }

// runKeyed hands out the keyed lane's entries until ctx ends.
func (c *Consumer) runKeyed(ctx, drainCtx context.Context, handle func(context.Context, *Delivery), keep *keeper) {
	k := &keyedRun{c: c, queues: map[string][]*Delivery{}, msgs: map[uint64]*keyedBatch{},
		timers: map[*time.Timer]struct{}{}, keep: keep, retrying: map[string]bool{}, parked: map[string]*parkState{}, ctx: ctx}
	k.cond = sync.NewCond(&k.mu)
	k.findParked(ctx)
	warmCtx, stopWarm := context.WithCancel(ctx)
	defer stopWarm()
	go k.warmUp(warmCtx)
	var wg sync.WaitGroup
	for range c.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d := k.next()
				if d == nil {
					return
				}
				handle(drainCtx, d)
				k.answered(d)
			}
		}()
	}
	k.fetch(ctx)
	k.mu.Lock()
	k.closed = true
	for t := range k.timers {
		t.Stop()
	}
	k.cond.Broadcast()
	k.mu.Unlock()
	wg.Wait()
	// Hand back what was not finished, at once: it goes to the next
	// process pinned (or to this one after a restart), in order.
	k.mu.Lock()
	defer k.mu.Unlock()
	for seq, b := range k.msgs {
		b.held.answered()
		b.held.msg.Nak()
		k.keep.remove(b.held)
		delete(k.msgs, seq)
	}
}

// next waits for an entry to attempt; nil once closed.
func (k *keyedRun) next() *Delivery {
	k.mu.Lock()
	defer k.mu.Unlock()
	for len(k.ready) == 0 && !k.closed {
		k.cond.Wait()
	}
	if k.closed {
		return nil
	}
	d := k.ready[0]
	k.ready[0] = nil
	k.ready = k.ready[1:]
	return d
}

func (k *keyedRun) push(d *Delivery) {
	k.ready = append(k.ready, d)
	k.cond.Signal()
}

// answered acts on the outcome of an attempt.
func (k *keyedRun) answered(d *Delivery) {
	o := d.outcome
	if !o.set {
		// The handler gave no answer: try again shortly.
		o = outcome{set: true, retry: true, delay: time.Second}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if o.retry {
		if k.closed {
			return // handed back with its message when the run ends
		}
		d.outcome = outcome{}
		k.retrying[keyOf(d)] = true
		k.evictLocked(keyOf(d), d)
		var t *time.Timer
		t = time.AfterFunc(o.delay, func() {
			k.mu.Lock()
			defer k.mu.Unlock()
			delete(k.timers, t)
			if k.closed {
				return
			}
			if !o.release {
				d.Attempt++
			}
			k.push(d)
		})
		k.timers[t] = struct{}{}
		return
	}
	id := keyOf(d)
	delete(k.retrying, id)
	q := k.queues[id]
	if len(q) > 0 && q[0] == d {
		q[0] = nil
		q = q[1:]
	}
	if len(q) == 0 {
		delete(k.queues, id)
	} else {
		k.queues[id] = q
		if !k.closed {
			k.push(q[0])
		}
	}
	if d.parkSeq != 0 {
		k.unparkedLocked(d)
	}
	if len(q) == 0 {
		k.nextParkedLocked(hashOf(d.Route, d.Key))
	}
	k.resolveLocked(d, o.drop)
}

// resolveLocked counts d as answered in its journal message, and answers
// the message once all its entries are.
func (k *keyedRun) resolveLocked(d *Delivery, drop string) {
	b := k.msgs[d.Seq]
	if b == nil || d.parkSeq != 0 {
		return
	}
	if b.left--; b.left > 0 {
		return
	}
	delete(k.msgs, d.Seq)
	k.keep.remove(b.held)
	b.held.answered()
	if drop != "" && b.n == 1 {
		b.held.msg.TermWithReason(drop)
		return
	}
	b.held.msg.Ack()
}

// fetch pulls the lane's messages in order until ctx ends, keeping at most
// the lane's window held.
func (k *keyedRun) fetch(ctx context.Context) {
	c := k.c
	failures := 0
	for ctx.Err() == nil {
		k.mu.Lock()
		n := min(max(c.opts.MaxPending-len(k.msgs), 1), 256)
		k.mu.Unlock()
		// With the window full the journal hands out nothing, but the
		// request keeps the lane pinned to this process.
		batch, err := c.keyed.Fetch(n, jetstream.FetchMaxWait(FetchWait), jetstream.FetchPriorityGroup(pinGroup))
		if err == nil {
			for msg := range batch.Messages() {
				k.take(msg)
			}
			err = fetchError(batch)
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		c.j.log.Warn("journal fetch failed", "sink", c.sink, "lane", "keyed", "err", err, "failures", failures)
		if !pause(ctx, failures) {
			return
		}
	}
}

// warmUp holds the run back until the lane's deliveries handed out to
// others (a process that died: a crash before a restart, a replica before
// a takeover) have come back to this one: they come after the ack wait,
// while newer ones are handed out at once, and a key's older delivery must
// go first. It checks, every 100ms, that every message of the lane that
// the consumer has handed out and the stream still holds (not
// acknowledged) is held here (or that a pinned TTL has passed, the longest
// they take), then starts the keys, each in order of sequence.
func (k *keyedRun) warmUp(ctx context.Context) {
	deadline := time.Now().Add(pinnedTTL(k.c.opts.AckWait))
	for time.Now().Before(deadline) {
		others, err := k.othersHold(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && !others {
			break
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.warm = true
	for _, q := range k.queues {
		k.push(q[0])
	}
	for h := range k.parked {
		k.nextParkedLocked(h)
	}
}

// othersHold says whether a message of the lane handed out by its consumer
// and not acknowledged is not held by this run.
func (k *keyedRun) othersHold(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := k.c.keyed.Info(ctx)
	if err != nil {
		return false, err
	}
	filter := k.c.j.lanes.filter(lane{sink: k.c.sink, kind: laneKeyed})
	for seq := info.AckFloor.Stream + 1; seq <= info.Delivered.Stream; {
		m, err := k.c.j.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if m.Sequence > info.Delivered.Stream {
			return false, nil
		}
		k.mu.Lock()
		_, mine := k.msgs[m.Sequence]
		k.mu.Unlock()
		if !mine {
			return true, nil
		}
		seq = m.Sequence + 1
	}
	return false, nil
}

// take queues a fetched message's entries behind those of their keys.
func (k *keyedRun) take(msg jetstream.Msg) {
	c := k.c
	h := &held{msg: msg}
	ds, _, err := c.decode(msg, h)
	if err != nil || len(ds) == 0 {
		c.j.log.Error("drop unreadable journal entry", "sink", c.sink, "subject", msg.Subject(), "err", err)
		msg.TermWithReason("unreadable entry")
		return
	}
	k.mu.Lock()
	seq := ds[0].Seq
	if _, ok := k.msgs[seq]; ok {
		k.mu.Unlock()
		return // handed out again while held here: it is already queued
	}
	k.msgs[seq] = &keyedBatch{held: h, left: len(ds), n: len(ds)}
	k.keep.add(h)
	for _, d := range ds {
		d.batch = nil
		if !k.parkLocked(d) {
			k.queueLocked(d)
		}
	}
	k.mu.Unlock()
}

// queueLocked puts d in its key's queue, in order of sequence: an older
// delivery handed back late (see warmUp) or read back from the parked
// ones goes before newer ones not yet attempted.
func (k *keyedRun) queueLocked(d *Delivery) {
	id := keyOf(d)
	q := k.queues[id]
	i := len(q)
	for i > 0 && q[i-1].OrderSeq > d.OrderSeq && (i > 1 || !k.warm) {
		i--
	}
	q = slices.Insert(q, i, d)
	k.queues[id] = q
	if len(q) == 1 && k.warm && !k.closed {
		k.push(d)
	}
}
