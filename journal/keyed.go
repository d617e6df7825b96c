package journal

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
// behind it. When the process dies, another one is pinned after the ack
// wait and is handed the held messages again, in order.
//
// A key that keeps failing holds its entries in the lane's window
// (MaxPending journal messages): the other keys flow until its entries
// fill the window.

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
}

func keyOf(d *Delivery) string { return d.Route + "\x00" + d.Key }

// runKeyed hands out the keyed lane's entries until ctx ends.
func (c *Consumer) runKeyed(ctx, drainCtx context.Context, handle func(context.Context, *Delivery), keep *keeper) {
	k := &keyedRun{c: c, queues: map[string][]*Delivery{}, msgs: map[uint64]*keyedBatch{},
		timers: map[*time.Timer]struct{}{}, keep: keep}
	k.cond = sync.NewCond(&k.mu)
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
		var t *time.Timer
		t = time.AfterFunc(o.delay, func() {
			k.mu.Lock()
			defer k.mu.Unlock()
			delete(k.timers, t)
			if k.closed {
				return
			}
			d.Attempt++
			k.push(d)
		})
		k.timers[t] = struct{}{}
		return
	}
	id := keyOf(d)
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
	b := k.msgs[d.Seq]
	if b == nil {
		return
	}
	if b.left--; b.left > 0 {
		return
	}
	delete(k.msgs, d.Seq)
	k.keep.remove(b.held)
	b.held.answered()
	if o.drop != "" && b.n == 1 {
		b.held.msg.TermWithReason(o.drop)
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
			err = batch.Error()
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				err = nil
			}
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		c.j.log.Warn("journal fetch failed", "sink", c.sink, "lane", "keyed", "err", err, "failures", failures)
		select {
		case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
		case <-ctx.Done():
			return
		}
	}
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
	defer k.mu.Unlock()
	seq := ds[0].Seq
	if _, ok := k.msgs[seq]; ok {
		return // handed out again while held here: it is already queued
	}
	k.msgs[seq] = &keyedBatch{held: h, left: len(ds), n: len(ds)}
	k.keep.add(h)
	for _, d := range ds {
		d.batch = nil
		id := keyOf(d)
		q := k.queues[id]
		k.queues[id] = append(q, d)
		if len(q) == 0 {
			k.push(d)
		}
	}
}
