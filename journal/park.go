package journal

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Parking: the entries of a key whose first delivery keeps failing are
// moved out of the keyed lane's window, so that the other keys keep
// flowing however long that key fails and however many events its
// producer sends meanwhile.
//
// Once parkAfter entries wait behind a key's first one and that one is
// being retried, each further entry of the key is stored again, alone, on
// <prefix>.<sink>.kp<hash>.1 (the hash of its route and key; no consumer
// reads it), keeping its sequence number (junctionseq), and its place in
// the window is given up. While a key has parked entries, every newer
// entry of it is parked too, behind them. When the key's queue is empty,
// the parked entries are read back one at a time, in order (a direct get
// of the next message on the subject), attempted, and removed from the
// stream once answered. The parked entries are found again by the process
// that takes the lane over after a crash, and go after the older entries
// that the dead one held.

// parkState is what a run knows of a key's parked entries.
type parkState struct {
	// first is the sequence number (OrderSeq) of the oldest parked entry
	// when found at start: older entries handed back go before it.
	first uint64
	// next is the stream sequence to read the next parked entry from.
	next uint64
	// toWrite are the entries to park, in order, written one after the
	// other by one writer (writer is set while it runs); writing counts
	// them until stored. loading says that a parked entry is being read
	// back or attempted.
	toWrite []*Delivery
	writer  bool
	writing int
	loading bool
}

// parkAfter is how many entries may wait behind a failing one of their key
// before the next ones are parked.
func (k *keyedRun) parkAfter() int { return max(1, min(64, k.c.opts.MaxPending/8)) }

// hashOf names a route and key in park subjects.
func hashOf(route, key string) string {
	h := fnv.New64a()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return strconv.FormatUint(h.Sum64(), 16)
}

// parkLocked parks d when its key has parked entries older than it, or
// when its key's first delivery is being retried and enough wait behind
// it; it says whether it did.
func (k *keyedRun) parkLocked(d *Delivery) bool {
	h := hashOf(d.Route, d.Key)
	if ps := k.parked[h]; ps != nil {
		if d.OrderSeq < ps.first {
			return false // handed back by a dead holder: older than the parked ones
		}
		k.toParkLocked(h, ps, d)
		return true
	}
	id := keyOf(d)
	if !k.warm || !k.retrying[id] || len(k.queues[id]) < k.parkAfter() {
		return false
	}
	ps := &parkState{first: d.OrderSeq}
	k.parked[h] = ps
	k.toParkLocked(h, ps, d)
	return true
}

// evictLocked parks the entries waiting behind the first one of key id,
// which is being retried, when enough wait and the key has none parked:
// they were taken before it failed.
func (k *keyedRun) evictLocked(id string, d *Delivery) {
	q := k.queues[id]
	h := hashOf(d.Route, d.Key)
	if !k.warm || k.parked[h] != nil || len(q)-1 < k.parkAfter() || q[0] != d {
		return
	}
	ps := &parkState{first: q[1].OrderSeq}
	k.parked[h] = ps
	for _, e := range q[1:] {
		k.toParkLocked(h, ps, e)
	}
	clear(q[1:])
	k.queues[id] = q[:1]
}

// toParkLocked adds d to the entries its key's writer parks, starting the
// writer.
func (k *keyedRun) toParkLocked(h string, ps *parkState, d *Delivery) {
	ps.toWrite = append(ps.toWrite, d)
	ps.writing++
	if !ps.writer {
		ps.writer = true
		go k.parkWriter(h, ps)
	}
}

// parkWriter parks the entries of ps, one after the other, in order.
func (k *keyedRun) parkWriter(h string, ps *parkState) {
	for {
		k.mu.Lock()
		if len(ps.toWrite) == 0 {
			ps.writer = false
			k.mu.Unlock()
			return
		}
		d := ps.toWrite[0]
		ps.toWrite[0] = nil
		ps.toWrite = ps.toWrite[1:]
		k.mu.Unlock()
		if !k.park(d, h) {
			return // the run ends: d's message comes back whole
		}
		k.mu.Lock()
		ps.writing--
		k.resolveLocked(d, "")
		if len(k.queues[keyOf(d)]) == 0 {
			k.nextParkedLocked(h)
		}
		k.mu.Unlock()
	}
}

// park stores d on the park subject of h. The write is tried again until
// it is stored or the run ends (false).
func (k *keyedRun) park(d *Delivery, h string) bool {
	e := d.entry
	e.Sink, e.Seq, e.Attempts, e.Accepted, e.NotBefore = k.c.sink, d.OrderSeq, d.Attempt-1, d.Accepted, time.Time{}
	e.park = h
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		ctx, cancel := context.WithTimeout(k.ctx, k.c.j.writeTimeout())
		err := k.c.j.append(ctx, []Entry{e}, true)
		cancel()
		if err == nil {
			return true
		}
		k.c.j.log.Warn("journal: parking an entry of a failing key failed; trying again", "sink", k.c.sink, "route", d.Route, "err", err)
		select {
		case <-time.After(wait):
		case <-k.ctx.Done():
			return false
		}
	}
}

// nextParkedLocked reads back the next parked entry of the key hashed h,
// unless one is being read or attempted, or the key has none.
func (k *keyedRun) nextParkedLocked(h string) {
	ps := k.parked[h]
	if ps == nil || ps.loading || !k.warm || k.closed {
		return
	}
	ps.loading = true
	go k.loadParked(h, ps)
}

// loadParked reads the next parked entry of h and queues it; when there is
// none and none is being written, the key is no longer parked.
func (k *keyedRun) loadParked(h string, ps *parkState) {
	subject := k.c.j.lanes.parkSubject(k.c.sink, h)
	for {
		ctx, cancel := context.WithTimeout(k.ctx, 5*time.Second)
		k.mu.Lock()
		from := max(ps.next, 1)
		k.mu.Unlock()
		m, err := k.c.j.stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subject))
		cancel()
		if k.ctx.Err() != nil {
			return
		}
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			k.mu.Lock()
			defer k.mu.Unlock()
			ps.loading = false
			if ps.writing == 0 {
				delete(k.parked, h)
			}
			return
		}
		var es []Entry
		if err == nil {
			es, err = decodeEnvelope(m.Data)
			if err == nil && len(es) != 1 {
				err = errBadEnvelope
			}
			if err != nil {
				k.c.j.log.Error("drop unreadable parked journal entry", "sink", k.c.sink, "subject", subject, "seq", m.Sequence, "err", err)
				k.c.j.stream.DeleteMsg(context.Background(), m.Sequence)
				k.mu.Lock()
				ps.next = m.Sequence + 1
				k.mu.Unlock()
				continue
			}
		}
		if err != nil {
			k.c.j.log.Warn("journal: reading a parked entry failed; trying again", "sink", k.c.sink, "err", err)
			select {
			case <-time.After(time.Second):
				continue
			case <-k.ctx.Done():
				return
			}
		}
		e := es[0]
		e.Sink = k.c.sink
		d := &Delivery{c: k.c, entry: e, keyed: true, parkSeq: m.Sequence,
			Route: e.Route, DeadLetter: e.DeadLetter, Key: e.Key, Priority: e.Priority, Data: e.Data,
			TraceParent: e.TraceParent, TraceState: e.TraceState,
			Attempt: e.Attempts + 1, Accepted: e.Accepted, Seq: m.Sequence, OrderSeq: e.Seq}
		k.mu.Lock()
		defer k.mu.Unlock()
		ps.next = m.Sequence + 1
		if k.closed {
			return
		}
		k.queueLocked(d)
		return
	}
}

// unparkedLocked removes an answered parked entry from the stream, and lets
// the next one be read.
func (k *keyedRun) unparkedLocked(d *Delivery) {
	if ps := k.parked[hashOf(d.Route, d.Key)]; ps != nil {
		ps.loading = false
	}
	seq := d.parkSeq
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := k.c.j.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			k.c.j.log.Warn("journal: removing a delivered parked entry failed; it may be delivered again", "sink", k.c.sink, "seq", seq, "err", err)
		}
	}()
}

// findParked learns, when the run starts, which keys have parked entries.
func (k *keyedRun) findParked(ctx context.Context) {
	l := k.c.j.lanes
	for attempt := 0; ctx.Err() == nil; attempt++ {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := k.c.j.stream.Info(ictx, jetstream.WithSubjectFilter(l.prefix+"."+k.c.sink+".*.1"))
		if err == nil {
			for subject := range info.State.Subjects {
				h, ok := l.parkHash(k.c.sink, subject)
				if !ok {
					continue
				}
				m, err := k.c.j.stream.GetMsg(ictx, 1, jetstream.WithGetMsgSubject(subject))
				if err != nil {
					continue
				}
				es, err := decodeEnvelope(m.Data)
				if err != nil || len(es) != 1 {
					continue
				}
				k.parked[h] = &parkState{first: es[0].Seq, next: m.Sequence}
			}
			cancel()
			return
		}
		cancel()
		k.c.j.log.Warn("journal: listing parked entries failed; trying again", "sink", k.c.sink, "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}
