package journal

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The claim log is the dedup window of the sources with dedup: which keys
// (a source and an event's CloudEvents source and id) were accepted lately.
// It does what Marks do for one key at a time, for many keys per JetStream
// message, so that dedup costs a few journal writes per round of ingests
// rather than two per event.
//
// It is a stream, <Stream>_CLAIMS (limits retention, each message expiring
// with the longest window of its records), of records in the order the
// journal stored them:
//
//   - claim (keys, window, takeover): the caller is about to append the
//     deliveries of these keys' events.
//   - confirm (keys, claim): the deliveries of that claim are in the journal.
//   - release (keys, claim): they are not (the append failed).
//   - accepted (keys, window): claim and confirm at once, written after
//     the append in local mode (see below).
//
// Records are coalesced: the records of the Ingest calls made while a
// message of the log is being stored wait, and the next message carries
// them all (as the appender does with deliveries).
//
// Every replica tails the log with an ordered consumer and applies it, in
// stream order, to an index in memory: key -> holder (the claim record that
// holds it, its time and whether it is confirmed). Applying a record
// depends only on the log (times are those the journal stamped on the
// messages; windows and takeover times travel in the records), so every
// replica, and a process that restarts and reads the log again, comes to
// the same holder for every key. A claim record takes a key when the key
// has no holder, or its holder was released, or is confirmed but older
// than its window, or pending (not confirmed) for longer than its takeover
// time (its claimant died or lost its confirmation). Otherwise the claim
// loses: of two replicas that claim a key at the same time, the first in
// stream order wins.
//
// A claimant publishes its claim record, waits until its own index has
// applied it, and reads the key's holder: its own record (claimed: append,
// then confirm), a confirmed one (a duplicate), or a pending one (busy:
// another request holds the event; ask again). Keys whose holder the index
// already shows confirmed, or pending and not overdue, are answered without
// a write. The ordering is the one Marks keep, so that a crash between claim
// and append loses nothing: the claim stays pending, copies of the event
// wait for it, and after the takeover time a copy takes the key over and is
// routed. What a crash at the wrong moment costs is a second routing, never
// a lost event.
//
// With the embedded journal (local mode) this process is the log's only
// writer (the server opens no port and its directory is locked), so the
// index in memory decides alone, at once, and holds pending claims in
// memory only: a request that dies with the process was never answered
// 202, and a copy of its event after the restart is routed. Once the
// deliveries are appended, one record "accepted (keys, window)" is queued
// and not waited for; the records of 25 ms share one message (linger). A
// crash before it is stored forgets those keys: a copy of the event sent
// after the restart is routed again, as it is when a crash loses a
// confirmation in shared mode. Local mode costs no round trip to the
// journal and one message per 25 ms at most. With an external server
// (shared mode, which replicas may share) the claim is stored and read
// back before the append, and confirmed after it.
//
// Not chosen: appending the deliveries at the same time as the claim in
// shared mode too, each delivery naming its claim, and having dispatch drop
// those whose claim lost. Dispatch would have to wait for the fate of
// claims that may never be stored (a claimant that died), and keep it for
// as long as deliveries wait in the journal, beyond the window.
//
// Marks written by earlier versions in the bucket <Stream>_DEDUP (keys
// d.<source>.<hash>) are read once when the log opens and seed the index,
// so that a window kept before an upgrade still holds. Every replica must
// run a version with the log: a replica of an earlier version claims in the
// bucket, which this one does not read again.
//
// The index costs about 200 bytes of memory per key in a window (measured
// with 200,000 keys), about what the server spent on a key of the bucket
// (its index of subjects), which the embedded journal keeps in this process
// too.

// ClaimLog is the journal's log of dedup claims; see Journal.ClaimLog.
type ClaimLog struct {
	j       *Journal
	nc      *nats.Conn // the log's own connection
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
	cc      jetstream.ConsumeContext
	// local: this process is the journal's only writer (the embedded
	// journal: no port, its directory locked), so the index in memory
	// decides at once (see Claim).
	local bool
	// now is time.Now (tests move it).
	now func() time.Time

	mu  sync.Mutex
	ids uint64 // holders made
	// holders, by a 128-bit hash of the key: without pointers, the
	// index costs the garbage collector nothing to scan.
	holders map[ikey]holder
	seeds   [2]maphash.Seed
	// fifo lists the keys taken, oldest first, so that the index
	// forgets a key once its window ended.
	fifo    []taken
	applied uint64    // stream sequence of the last message applied
	stamp   time.Time // its time
	// advanced is closed (and replaced) whenever a message is applied.
	advanced chan struct{}

	qmu      sync.Mutex
	queue    []*claimReq
	inFlight int // messages being stored (at most c.rounds())
	closed   bool
	// sent is when the last message was sent (local mode: see linger).
	sent time.Time
}

// holder is the claim that holds a key.
type holder struct {
	id        uint64 // unique in this process
	ref       claimRef
	at        int64 // Unix nanoseconds: when the journal stored the claim
	ttl       int64 // nanoseconds: its window
	takeover  int64 // nanoseconds: how long it may stay pending
	confirmed bool
}

// claimRef names a claim record: its message's stream sequence and its
// place in the message. Marks seeded from the old bucket have sequence 0.
type claimRef struct {
	seq uint64
	idx uint32
}

// ikey is the index's key of a key.
type ikey [2]uint64

// key returns the index's key of k.
func (c *ClaimLog) key(k string) ikey {
	return ikey{maphash.String(c.seeds[0], k), maphash.String(c.seeds[1], k)}
}

// taken is a key taken by a holder, until end.
type taken struct {
	key ikey
	id  uint64
	end int64
}

// claimReq is a record waiting to be published; done (when not nil)
// receives where it was stored.
type claimReq struct {
	rec  claimRecord
	done chan claimAck
}

type claimAck struct {
	ref claimRef
	err error
}

// maxClaimMsg bounds a message of the log (payload bytes).
const maxClaimMsg = 256 << 10

// ClaimLog returns the journal's claim log, creating its stream the first
// time and reading it (and the marks of the old bucket) before it returns.
func (j *Journal) ClaimLog(ctx context.Context) (c *ClaimLog, err error) {
	j.marksMu.Lock()
	defer j.marksMu.Unlock()
	if j.claims != nil {
		return j.claims, nil
	}
	// A connection of its own, as the event log's: the log's messages
	// never queue ahead of the deliveries' appends and acknowledgements on
	// the journal's.
	nc, err := j.dial("junction-claims")
	if err != nil {
		return nil, fmt.Errorf("connect the claim log: %w", err)
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(j.writeTimeout()))
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	name := j.opts.Stream + "_CLAIMS"
	subject := j.lanes.prefix + "-claims"
	cfg := jetstream.StreamConfig{
		Name:         name,
		Description:  "Junction dedup claims (the dedup window of sources)",
		Subjects:     []string{subject},
		Retention:    jetstream.LimitsPolicy,
		MaxMsgs:      -1,
		MaxBytes:     -1,
		MaxAge:       MaxMarkTTL,
		MaxConsumers: -1,
		Storage:      storage,
		Replicas:     j.opts.Replicas,
		Discard:      jetstream.DiscardOld,
		Duplicates:   time.Minute,
		AllowMsgTTL:  true,
	}
	s, err := setup(ctx, j, "create stream "+name, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s (the dedup window; it needs per-message TTLs, nats-server 2.11 or later): %w", name, err)
	}
	if !s.CachedInfo().Config.AllowMsgTTL {
		return nil, fmt.Errorf("create stream %s (the dedup window): nats-server %s does not keep per-message TTLs; it needs 2.11 or later",
			name, j.nc.ConnectedServerVersion())
	}
	c = &ClaimLog{j: j, nc: nc, js: js, stream: s, subject: subject, now: time.Now, local: j.srv != nil,
		holders: map[ikey]holder{}, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, advanced: make(chan struct{})}
	if err := c.seed(ctx); err != nil {
		return nil, err
	}
	if err := c.tail(ctx); err != nil {
		return nil, err
	}
	if c.local {
		// Read once: from now on this process writes all there is.
		c.cc.Stop()
	}
	j.claims = c
	return c, nil
}

// TakeoverAfter is how long a pending claim of this process holds its keys
// before another claim takes them over: twice the journal's write timeout
// (the longest a live claimant needs to append and confirm).
func (c *ClaimLog) TakeoverAfter() time.Duration { return 2 * c.j.writeTimeout() }

// Claim claims each key for ttl (see ClaimLog): the result has one Mark per
// key, in order. Keys must be distinct and valid (ValidKey). On error no key
// is held by the caller. The caller appends the work of the claimed keys,
// then calls ConfirmLater (or Release when the append failed).
//
// In local mode the index in memory decides at once, without a write.
// Else (shared mode) the claim record is stored and read back before Claim
// returns.
func (c *ClaimLog) Claim(ctx context.Context, keys []string, ttl time.Duration) ([]Mark, error) {
	ttl = min(max(ttl, time.Second), MaxMarkTTL)
	for _, k := range keys {
		if !ValidKey(k) || len(k) > maxClaimKey {
			return nil, fmt.Errorf("claim: invalid key %q", k)
		}
	}
	if c.local {
		return c.claimLocal(keys, ttl), nil
	}
	marks := make([]Mark, len(keys))
	var todo []int
	now := c.now().UnixNano()
	c.mu.Lock()
	for i, k := range keys {
		marks[i] = Mark{Key: k, ttl: ttl}
		h, ok := c.holders[c.key(k)]
		switch {
		case !ok || h.free(now):
			todo = append(todo, i)
		case h.confirmed:
			marks[i].State = MarkDone
		default:
			marks[i].State, marks[i].Since = MarkBusy, time.Unix(0, h.at)
		}
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return marks, nil
	}
	rec := claimRecord{op: opClaim, ttl: ttl, takeover: c.TakeoverAfter(), keys: make([]string, len(todo))}
	for n, i := range todo {
		rec.keys[n] = keys[i]
	}
	ref, err := c.publish(ctx, rec)
	if err != nil {
		return nil, err
	}
	if err := c.wait(ctx, ref.seq); err != nil {
		// Whether it won is unknown here: a release takes the keys back
		// only from this claim.
		c.enqueue(&claimReq{rec: claimRecord{op: opRelease, ref: ref, ttl: ttl, keys: rec.keys}})
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range todo {
		h, ok := c.holders[c.key(keys[i])]
		switch {
		case ok && h.ref == ref:
			marks[i].State, marks[i].Since, marks[i].rev, marks[i].idx = MarkClaimed, time.Unix(0, h.at), ref.seq, ref.idx
		case ok && h.confirmed:
			marks[i].State = MarkDone
		case ok:
			marks[i].State, marks[i].Since = MarkBusy, time.Unix(0, h.at)
		default:
			// Released meanwhile by the claim that won: ask again.
			marks[i].State, marks[i].Since = MarkBusy, c.now()
		}
	}
	return marks, nil
}

// claimLocal is Claim in local mode: the index decides, and holds the
// keys taken, pending, in memory.
func (c *ClaimLog) claimLocal(keys []string, ttl time.Duration) []Mark {
	marks := make([]Mark, len(keys))
	now := c.now().UnixNano()
	takeover := int64(c.TakeoverAfter())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetLocked(now)
	c.ids++
	id := c.ids
	for i, k := range keys {
		marks[i] = Mark{Key: k, ttl: ttl}
		ik := c.key(k)
		h, ok := c.holders[ik]
		switch {
		case !ok || h.free(now):
			c.holders[ik] = holder{id: id, at: now, ttl: int64(ttl), takeover: takeover}
			c.fifo = append(c.fifo, taken{key: ik, id: id, end: now + int64(ttl)})
			marks[i].State, marks[i].Since, marks[i].id, marks[i].ik = MarkClaimed, time.Unix(0, now), id, ik
		case h.confirmed:
			marks[i].State = MarkDone
		default:
			marks[i].State, marks[i].Since = MarkBusy, time.Unix(0, h.at)
		}
	}
	return marks
}

// free reports whether a claim made at now (Unix nanoseconds) takes the
// key from h: h's window ended, or h is pending past its takeover time.
func (h holder) free(now int64) bool {
	age := now - h.at
	return age >= h.ttl || !h.confirmed && age > h.takeover
}

// ConfirmLater confirms the marks that the caller claimed (the others are
// skipped) without waiting: the record is published when it returns, and
// Journal.Close waits for it (up to the write timeout). One that is lost
// leaves its claim pending (shared mode; taken over after the takeover
// time) or forgets it (local mode, after a restart): a copy sent after
// that is routed again.
func (c *ClaimLog) ConfirmLater(marks []Mark) {
	if !c.local {
		c.finish(marks, opConfirm, false)
		return
	}
	c.mu.Lock()
	keys := c.settleLocal(marks, opConfirm)
	c.mu.Unlock()
	if len(keys) > 0 {
		ttl := time.Duration(0)
		for _, mk := range marks {
			ttl = max(ttl, mk.ttl)
		}
		c.enqueue(&claimReq{rec: claimRecord{op: opAccepted, ttl: ttl, takeover: c.TakeoverAfter(), keys: keys}})
	}
}

// Release releases the marks that the caller claimed: the next Claim of
// their keys takes them. It waits for the journal's answer (shared mode).
func (c *ClaimLog) Release(ctx context.Context, marks []Mark) error {
	if c.local {
		c.mu.Lock()
		c.settleLocal(marks, opRelease)
		c.mu.Unlock()
		return nil
	}
	for _, ch := range c.finish(marks, opRelease, true) {
		select {
		case a := <-ch:
			if a.err != nil {
				return a.err
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

// settleLocal confirms or releases (op) in local mode the keys that marks
// hold in the index, and returns them. c.mu is held.
func (c *ClaimLog) settleLocal(marks []Mark, op byte) []string {
	keys := make([]string, 0, len(marks))
	for _, mk := range marks {
		if mk.State != MarkClaimed || mk.id == 0 {
			continue
		}
		ik := mk.ik
		h, ok := c.holders[ik]
		if !ok || h.id != mk.id {
			continue
		}
		keys = append(keys, mk.Key)
		if op == opRelease {
			delete(c.holders, ik)
		} else {
			h.confirmed = true
			c.holders[ik] = h
		}
	}
	return keys
}

// finish publishes one record of op per claim among marks.
func (c *ClaimLog) finish(marks []Mark, op byte, wait bool) []chan claimAck {
	byRef := map[claimRef]*claimRecord{}
	var order []claimRef
	for _, mk := range marks {
		if mk.State != MarkClaimed || mk.rev == 0 {
			continue
		}
		ref := claimRef{mk.rev, mk.idx}
		rec, ok := byRef[ref]
		if !ok {
			rec = &claimRecord{op: op, ref: ref, ttl: mk.ttl}
			byRef[ref] = rec
			order = append(order, ref)
		}
		rec.keys = append(rec.keys, mk.Key)
	}
	var done []chan claimAck
	for _, ref := range order {
		req := &claimReq{rec: *byRef[ref]}
		if wait {
			req.done = make(chan claimAck, 1)
			done = append(done, req.done)
		}
		c.enqueue(req)
	}
	return done
}

// publish publishes rec and returns where the journal stored it.
func (c *ClaimLog) publish(ctx context.Context, rec claimRecord) (claimRef, error) {
	req := &claimReq{rec: rec, done: make(chan claimAck, 1)}
	c.enqueue(req)
	select {
	case a := <-req.done:
		return a.ref, a.err
	case <-ctx.Done():
		return claimRef{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// enqueue queues req, and sends the queue at once when fewer than two
// messages of the log are being stored.
func (c *ClaimLog) enqueue(req *claimReq) {
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		c.refuse(req)
		return
	}
	c.queue = append(c.queue, req)
	if c.inFlight >= c.rounds() {
		c.qmu.Unlock()
		return
	}
	c.inFlight++
	batch := c.nextLocked()
	c.qmu.Unlock()
	if batch != nil {
		c.send(batch)
	}
}

// linger is how long, in local mode, records wait for others to share
// their message: at most one message per linger (nobody waits for them).
// A crash forgets the records of the last linger at most (see ClaimLog).
// Measured (BenchmarkIngestDedup, single-event calls, 8 producers per
// core, medians of 8 alternating pairs): with 5 ms dedup cost 14-16% of
// ingest throughput, with 25 ms 0-4%, with 50 ms 1-3%.
// Not in shared mode: there a claimant waits for its claim, and lingering
// confirmations hold a slot that claims need (measured: more CPU).
const linger = 25 * time.Millisecond

// nextLocked takes the next batch to send, holding the caller's slot of
// c.inFlight; in local mode, within linger of the last message, it returns
// nil and sends the batch when linger has passed.
func (c *ClaimLog) nextLocked() []*claimReq {
	now := time.Now()
	if wait := linger - now.Sub(c.sent); c.local && wait > 0 {
		time.AfterFunc(wait, func() {
			c.qmu.Lock()
			if len(c.queue) == 0 { // refused by close meanwhile
				c.inFlight--
				c.qmu.Unlock()
				return
			}
			c.sent = time.Now()
			batch := c.takeLocked()
			c.qmu.Unlock()
			c.send(batch)
		})
		return nil
	}
	c.sent = now
	return c.takeLocked()
}

// rounds is how many messages of the log may be stored at once: in local
// mode, where nobody waits for them, one (the records that arrive
// meanwhile make the next); else maxRounds, as the appender.
func (c *ClaimLog) rounds() int {
	if c.local {
		return 1
	}
	return maxRounds
}

// takeLocked takes from the queue the records of one message.
func (c *ClaimLog) takeLocked() []*claimReq {
	size, n := 1, 0
	for n < len(c.queue) {
		s := c.queue[n].rec.size()
		if n > 0 && size+s > maxClaimMsg {
			break
		}
		size += s
		n++
	}
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	return batch
}

// send publishes the records of batch in one message; its answer sends
// the next batch.
func (c *ClaimLog) send(batch []*claimReq) {
	for batch != nil {
		recs := make([]*claimRecord, len(batch))
		ttl := time.Second
		for i, req := range batch {
			recs[i] = &req.rec
			ttl = max(ttl, req.rec.ttl)
		}
		msg := &nats.Msg{Subject: c.subject, Data: encodeClaims(recs), Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgTTLHeader, strconv.FormatInt(int64((ttl+time.Second-1)/time.Second), 10))
		fut, err := c.js.PublishMsgAsync(msg)
		if err != nil {
			batch = c.answered(batch, 0, classify(err))
			continue
		}
		go c.await(fut, batch)
		return
	}
}

// await waits for the answer to the message of batch.
func (c *ClaimLog) await(fut jetstream.PubAckFuture, batch []*claimReq) {
	timeout := time.NewTimer(c.j.writeTimeout() + time.Second)
	defer timeout.Stop()
	var seq uint64
	var err error
	select {
	case pa := <-fut.Ok():
		seq = pa.Sequence
	case e := <-fut.Err():
		err = classify(e)
	case <-timeout.C:
		err = fmt.Errorf("%w: no answer from the journal within %v", ErrUnavailable, c.j.writeTimeout())
	}
	if err != nil {
		c.j.health.poke()
		if op := batch[0].rec.op; op == opConfirm || op == opAccepted {
			c.j.log.Warn("dedup: confirming claims failed; a copy of their events sent after the takeover time (or a restart) will be routed again", "err", err)
		}
	}
	if next := c.answered(batch, seq, err); next != nil {
		c.send(next)
	}
}

// answered tells the requests of batch where it was stored (or err), and
// returns the next batch to send, if records wait.
func (c *ClaimLog) answered(batch []*claimReq, seq uint64, err error) []*claimReq {
	for i, req := range batch {
		if req.done != nil {
			req.done <- claimAck{ref: claimRef{seq, uint32(i)}, err: err}
		}
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) > 0 {
		return c.nextLocked()
	}
	c.inFlight--
	return nil
}

// wait waits until the index has applied the message at seq.
func (c *ClaimLog) wait(ctx context.Context, seq uint64) error {
	timeout := time.NewTimer(c.j.writeTimeout())
	defer timeout.Stop()
	for {
		c.mu.Lock()
		applied, ch := c.applied, c.advanced
		c.mu.Unlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case <-timeout.C:
			return fmt.Errorf("%w: dedup: the claim log was not read back within %v", ErrUnavailable, c.j.writeTimeout())
		}
	}
}

// tail starts the ordered consumer that applies the log to the index, and
// waits until it has read what the log held.
func (c *ClaimLog) tail(ctx context.Context) error {
	info, err := c.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", c.stream.CachedInfo().Config.Name, classify(err))
	}
	cons, err := c.js.OrderedConsumer(ctx, c.stream.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("tail stream %s: %w", c.stream.CachedInfo().Config.Name, classify(err))
	}
	c.cc, err = cons.Consume(c.applyMsg)
	if err != nil {
		return fmt.Errorf("tail stream %s: %w", c.stream.CachedInfo().Config.Name, classify(err))
	}
	target := info.State.LastSeq
	for {
		c.mu.Lock()
		applied, ch := c.applied, c.advanced
		c.mu.Unlock()
		if applied >= target {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
			// What was left may have expired meanwhile.
			info, err := c.stream.Info(ctx)
			if err == nil && (info.State.Msgs == 0 || info.State.FirstSeq > target) {
				return nil
			}
		case <-ctx.Done():
			c.cc.Stop()
			return fmt.Errorf("read stream %s: %w", c.stream.CachedInfo().Config.Name, ctx.Err())
		}
	}
}

// applyMsg applies a message of the log to the index.
func (c *ClaimLog) applyMsg(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		c.j.log.Error("dedup: a message of the claim log without metadata", "err", err)
		return
	}
	recs, err := decodeClaims(msg.Data())
	if err != nil {
		// Every replica skips it alike.
		c.j.log.Error("dedup: a message of the claim log is unreadable; skipped", "seq", meta.Sequence.Stream, "err", err)
	}
	c.apply(meta.Sequence.Stream, meta.Timestamp, recs)
}

// apply applies the records of the message at seq, stored at stamp.
func (c *ClaimLog) apply(seq uint64, stamp time.Time, recs []claimRecord) {
	at := stamp.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq <= c.applied {
		return // applied already (a consumer that started again)
	}
	for i, rec := range recs {
		switch rec.op {
		case opClaim, opAccepted:
			ref := claimRef{seq, uint32(i)}
			c.ids++
			for _, k := range rec.keys {
				ik := c.key(k)
				if h, ok := c.holders[ik]; ok && !h.free(at) {
					continue
				}
				c.holders[ik] = holder{id: c.ids, ref: ref, at: at, ttl: int64(rec.ttl), takeover: int64(rec.takeover), confirmed: rec.op == opAccepted}
				c.fifo = append(c.fifo, taken{key: ik, id: c.ids, end: at + int64(rec.ttl)})
			}
		case opConfirm, opRelease:
			for _, k := range rec.keys {
				ik := c.key(k)
				h, ok := c.holders[ik]
				if !ok || h.ref != rec.ref {
					continue
				}
				if rec.op == opRelease {
					delete(c.holders, ik)
				} else {
					h.confirmed = true
					c.holders[ik] = h
				}
			}
		}
	}
	c.forgetLocked(at)
	c.applied, c.stamp = seq, stamp
	close(c.advanced)
	c.advanced = make(chan struct{})
}

// forgetLocked drops from the index the claims whose window ended by now
// (the time of the last message: the same on every replica).
func (c *ClaimLog) forgetLocked(now int64) {
	n := 0
	for n < len(c.fifo) && c.fifo[n].end <= now {
		if h, ok := c.holders[c.fifo[n].key]; ok && h.id == c.fifo[n].id {
			delete(c.holders, c.fifo[n].key)
		}
		n++
	}
	if n > 0 {
		c.fifo = c.fifo[n:]
	}
}

// seed reads the marks of sources with dedup that an earlier version kept
// in the bucket <Stream>_DEDUP (keys d.<source>.<hash>) into the index:
// confirmed ones as done until their TTL ends, pending ones as pending.
func (c *ClaimLog) seed(ctx context.Context) error {
	bucket := c.j.opts.Stream + "_DEDUP"
	name := "KV_" + bucket
	s, err := c.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read stream %s (the dedup marks of an earlier version): %w", name, classify(err))
	}
	prefix := "$KV." + bucket + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+"d.>"))
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, classify(err))
	}
	if len(info.State.Subjects) == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + "d.>"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		return fmt.Errorf("read stream %s: %w", name, classify(err))
	}
	takeover := int64(c.TakeoverAfter())
	for left := len(info.State.Subjects); left > 0; {
		batch, err := cons.FetchNoWait(min(left, 1000))
		if err != nil {
			return fmt.Errorf("read stream %s: %w", name, classify(err))
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil || len(msg.Data()) == 0 {
				continue
			}
			key := msg.Subject()[len(prefix):]
			ttl, ok := parseTTL(msg.Headers().Get(jetstream.MsgTTLHeader))
			if !ok {
				continue
			}
			at := meta.Timestamp.UnixNano()
			c.ids++
			h := holder{id: c.ids, at: at, ttl: int64(ttl), takeover: takeover}
			switch msg.Data()[0] {
			case markConfirmed:
				h.confirmed = true
			case markPending:
				// Pending since its claim (the message's own time).
			default:
				continue
			}
			ik := c.key(key)
			c.holders[ik] = h
			c.fifo = append(c.fifo, taken{key: ik, id: h.id, end: at + h.ttl})
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("read stream %s: %w", name, classify(err))
		}
		if got == 0 {
			break // the rest expired meanwhile
		}
		left -= got
	}
	return nil
}

// parseTTL reads a Nats-TTL header as Marks write it ("10m0s"), or in
// seconds.
func parseTTL(s string) (time.Duration, bool) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, true
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < int64(MaxMarkTTL/time.Second)+1 {
		return time.Duration(n) * time.Second, true
	}
	return 0, false
}

// close stops the tail and waits for the records queued and in flight
// (up to the write timeout); later ones are refused.
func (c *ClaimLog) close() {
	c.qmu.Lock()
	c.closed = true
	c.qmu.Unlock()
	for deadline := time.Now().Add(c.j.writeTimeout()); time.Now().Before(deadline); {
		c.qmu.Lock()
		busy := c.inFlight
		c.qmu.Unlock()
		if busy == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.qmu.Lock()
	queue := c.queue
	c.queue = nil
	c.qmu.Unlock()
	for _, req := range queue {
		c.refuse(req)
	}
	if c.cc != nil {
		c.cc.Stop()
	}
	c.nc.Close()
}

// refuse answers req: the journal is closed.
func (c *ClaimLog) refuse(req *claimReq) {
	a := claimAck{err: fmt.Errorf("%w: journal closed", ErrUnavailable)}
	if req.done != nil {
		req.done <- a
	}
}
