package journal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Appends made at the same time are coalesced: while rounds of journal
// messages are being stored, the entries of the appends that arrive meanwhile
// wait, and the next round carries all of them, one journal message per sink
// holding several entries. Under load, one publish, one store write, one
// fetch and one acknowledgement then serve many deliveries; an append that
// finds the journal idle is stored at once, alone.
//
// A journal message's subject names its sink, lane and number of entries
// (see lanes); its payload is the envelope of its entries (see
// envelope.go). An entry not due yet goes alone to the delay stream (see
// delay.go).

// Batch limits: entries per journal message, and payload bytes.
const (
	maxBatchEntries = 64
	maxBatchBytes   = 256 << 10
)

// waiter is one Append call waiting for its entries.
type waiter struct {
	mu   sync.Mutex
	left int
	err  error
	done chan struct{}
}

func (w *waiter) finish(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.left--
	if w.left == 0 {
		close(w.done)
	}
}

type queued struct {
	e Entry
	w *waiter
	// internal: a retry or a due entry moved into its lane (see
	// health.refusal).
	internal bool
}

// sentMsg is a message of a round being stored.
type sentMsg struct {
	waiters []*waiter // the appends of its entries
	r       *roundState
	at      time.Time // when it was first sent
	resent  int       // times it has been published again (see republish)
}

// roundState is a round of messages being stored.
type roundState struct {
	left int // messages not yet answered
	// released is set once the round no longer holds one of the
	// maxRounds: all its messages answered, or one of them timed out and
	// was published again (the rounds behind it do not wait for that).
	released bool
}

// maxRounds bounds the rounds being stored at once. Two let a round be
// formed while the one before it is stored, at the cost of smaller batches.
const maxRounds = 2

// appender coalesces concurrent appends into rounds of journal messages.
// Up to maxRounds rounds are stored at once: an append that finds fewer
// sends its entries at once; the entries that arrive while they are being
// stored wait, and are sent all together by whoever receives the last
// acknowledgement of a round. No goroutine sits between an append and the
// journal: a dedicated one would add a hand-off to every append, which under
// load costs more than the batching saves.
type appender struct {
	j     *Journal
	limit int // payload bytes per batch message

	mu     sync.Mutex
	queue  []queued
	rounds int                   // rounds being stored
	sent   map[*nats.Msg]sentMsg // their messages
	closed bool
	stop   chan struct{}

	// messages and entries sent, for tests and the bench.
	messages, stored atomic.Uint64
	// resent counts the messages published again.
	resent atomic.Uint64

	// idPrefix and ids make each message's Nats-Msg-Id, unique to this
	// process: a message published again after a lost answer carries the
	// same id, and the stream stores it once (its duplicates window).
	// Set with Journal.dedupe only.
	dedupe   bool
	idPrefix string
	ids      atomic.Uint64
}

func newAppender(j *Journal, maxPayload int) *appender {
	var id [12]byte
	rand.Read(id[:])
	return &appender{
		j:        j,
		limit:    min(maxBatchBytes, maxPayload/2),
		sent:     map[*nats.Msg]sentMsg{},
		stop:     make(chan struct{}),
		dedupe:   j.dedupe(),
		idPrefix: base64.RawURLEncoding.EncodeToString(id[:]) + ".",
	}
}

// add queues entries, sends them at once when fewer than maxRounds rounds
// are being stored, and returns the waiter that their storage resolves. It
// refuses them at once while the journal refuses writes (see health).
func (a *appender) add(entries []Entry, internal bool) (*waiter, error) {
	if err := a.j.health.refusal(internal); err != nil {
		return nil, err
	}
	w := &waiter{left: len(entries), done: make(chan struct{})}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: journal closed", ErrUnavailable)
	}
	for _, e := range entries {
		a.queue = append(a.queue, queued{e, w, internal})
	}
	if a.rounds >= maxRounds {
		a.mu.Unlock()
		return w, nil
	}
	a.rounds++
	round := a.queue
	a.queue = nil
	a.mu.Unlock()
	a.send(round)
	return w, nil
}

// acked is the journal's answer to a published message (a PubAck or an
// error); the round's last answer sends the next round.
func (a *appender) acked(m *nats.Msg, err error) {
	if err != nil {
		a.j.health.failed(len(m.Data)+msgOverhead, err)
		if a.republish(m, err) {
			return
		}
	}
	if next := a.answered(m, err); next != nil {
		a.send(next)
	}
}

// republish publishes m again when its answer did not come (the stream's
// leader was lost, or the answer was) or nothing took it (no leader yet),
// while it was first sent at most half the write timeout ago, so that an
// answer can still come within the write timeout. m keeps its Nats-Msg-Id, so the stream
// stores it once even if the first copy was stored after all. m's round
// stops holding up the rounds behind it. It returns false when m is not
// published again: the caller answers its appends.
func (a *appender) republish(m *nats.Msg, err error) bool {
	if !a.dedupe {
		return false
	}
	if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) && !errors.Is(err, nats.ErrNoResponders) &&
		!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
		return false
	}
	a.mu.Lock()
	sm, ok := a.sent[m]
	if !ok || a.closed || time.Since(sm.at) > a.j.writeTimeout()/2+a.j.writeTimeout()/10 {
		a.mu.Unlock()
		return false
	}
	sm.resent++
	a.sent[m] = sm
	var next []queued
	if !sm.r.released {
		sm.r.released = true
		next = a.nextLocked()
	}
	a.mu.Unlock()
	a.resent.Add(1)
	// Not from here: the error handler may hold the publisher's lock.
	go func() {
		if next != nil {
			a.send(next)
		}
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			// Nothing listens (no stream leader yet): give an election
			// a moment.
			select {
			case <-time.After(500 * time.Millisecond):
			case <-a.stop:
			}
		}
		if _, perr := a.j.js.PublishMsgAsync(m); perr != nil {
			a.acked(m, classify(perr))
		}
	}()
	return true
}

// nextLocked returns the queued entries as the next round, keeping the
// slot of the round that ends, or frees that slot when none wait.
func (a *appender) nextLocked() []queued {
	if len(a.queue) > 0 && !a.closed {
		next := a.queue
		a.queue = nil
		return next
	}
	a.rounds--
	return nil
}

// answered resolves the appends of message m and returns the next round to
// send, if m was the last of its round and entries are waiting.
func (a *appender) answered(m *nats.Msg, err error) []queued {
	a.mu.Lock()
	sm, ok := a.sent[m]
	if !ok {
		// Not a message of a round (an entry retried alone).
		a.mu.Unlock()
		return nil
	}
	delete(a.sent, m)
	sm.r.left--
	var next []queued
	if sm.r.left == 0 && !sm.r.released {
		sm.r.released = true
		next = a.nextLocked()
	}
	a.mu.Unlock()
	for _, w := range sm.waiters {
		w.finish(err)
	}
	return next
}

// send publishes the messages of a round, and of the rounds that follow
// when every message of one fails at once or the journal refuses them (see
// health.admit: the disk's free space is checked once per round).
func (a *appender) send(round []queued) {
	for round != nil {
		if err := a.j.health.admit(round, true); err != nil {
			round = a.refuse(round, err)
			continue
		}
		var n int64
		for _, q := range round {
			if !q.internal {
				n += entrySize(q.e)
			}
		}
		a.j.health.checkBytes(n)
		if err := a.j.health.refusal(false); err != nil {
			// Full: the new entries are refused, the internal ones go.
			kept := round[:0:0]
			for _, q := range round {
				if q.internal {
					kept = append(kept, q)
				} else {
					q.w.finish(err)
				}
			}
			if round = kept; len(round) == 0 {
				round = a.refuse(nil, err)
				continue
			}
		}
		msgs, waiters := a.group(round)
		r := &roundState{left: len(msgs)}
		now := time.Now()
		a.mu.Lock()
		for i, m := range msgs {
			if a.dedupe {
				if m.Header == nil {
					m.Header = nats.Header{}
				}
				m.Header[jetstream.MsgIDHeader] = []string{a.idPrefix + strconv.FormatUint(a.ids.Add(1), 36)}
			}
			a.sent[m] = sentMsg{waiters: waiters[i], r: r, at: now}
		}
		a.mu.Unlock()
		round = nil
		for i, m := range msgs {
			if _, err := a.j.js.PublishMsgAsync(m); err != nil {
				a.j.health.failed(len(m.Data)+msgOverhead, err)
				round = a.answered(m, classify(err))
				continue
			}
			a.messages.Add(1)
			a.stored.Add(uint64(len(waiters[i])))
			a.j.health.countSent(msgSize(m))
		}
	}
}

// msgSize is about what m takes in its stream: subject, headers, data and
// the store's own record.
func msgSize(m *nats.Msg) int64 {
	n := len(m.Subject) + len(m.Data) + msgOverhead
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

// abort fails the appends waiting for answers that will not come (the
// journal's store broke: see health.checkStore), so that their callers hear
// it now rather than after the write timeout. An answer that comes later
// for one of their messages is ignored.
func (a *appender) abort(err error) {
	a.mu.Lock()
	msgs := make([]*nats.Msg, 0, len(a.sent))
	for m := range a.sent {
		msgs = append(msgs, m)
	}
	a.mu.Unlock()
	for _, m := range msgs {
		if next := a.answered(m, err); next != nil {
			a.send(next)
		}
	}
}

// refuse fails the appends of a round that is not sent and returns the
// next round to send, if entries are waiting.
func (a *appender) refuse(round []queued, err error) []queued {
	for _, q := range round {
		q.w.finish(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) > 0 && !a.closed {
		next := a.queue
		a.queue = nil
		return next
	}
	a.rounds--
	return nil
}

// group makes the journal messages of a round: by lane, in order, within
// the batch limits; an entry too large for a batch goes alone, and so does
// an entry not due yet (to the delay stream). A message of the keyed lane
// holds at most one entry of each route and key: an entry's sequence
// number (junctionseq) is its message's sequence in the stream.
func (a *appender) group(round []queued) ([]*nats.Msg, [][]*waiter) {
	var msgs []*nats.Msg
	var waiters [][]*waiter
	now := time.Now()
	add := func(ln lane, group []queued) {
		ws := make([]*waiter, len(group))
		es := make([]*Entry, len(group))
		size := 0
		for i := range group {
			ws[i] = group[i].w
			es[i] = &group[i].e
			size += envelopeSize(es[i])
		}
		m := &nats.Msg{Subject: a.j.lanes.subject(ln, len(es)), Data: appendEnvelope(make([]byte, 0, size+16), es)}
		msgs = append(msgs, m)
		waiters = append(waiters, ws)
	}
	var order []lane
	byLane := map[lane][]queued{}
	for _, q := range round {
		if q.e.NotBefore.After(now.Add(dueSlack)) {
			msgs = append(msgs, a.delayed(&q.e))
			waiters = append(waiters, []*waiter{q.w})
			continue
		}
		q.e.NotBefore = time.Time{}
		ln := a.j.lanes.of(&q.e)
		if _, ok := byLane[ln]; !ok {
			order = append(order, ln)
		}
		byLane[ln] = append(byLane[ln], q)
	}
	for _, ln := range order {
		if ln.kind == laneParked {
			for _, q := range byLane[ln] {
				add(ln, []queued{q}) // read back one at a time
			}
			continue
		}
		var group []queued
		var keys map[[2]string]bool
		if ln.kind == laneKeyed {
			keys = map[[2]string]bool{}
		}
		size := 0
		for _, q := range byLane[ln] {
			n := envelopeSize(&q.e)
			k := [2]string{q.e.Route, q.e.Key}
			if len(group) > 0 && (len(group) == maxBatchEntries || size+n > a.limit || keys[k]) {
				add(ln, group)
				group, size = nil, 0
				clear(keys)
			}
			group = append(group, q)
			size += n
			if keys != nil {
				keys[k] = true
			}
		}
		add(ln, group)
	}
	return msgs, waiters
}

// close fails the queued appends and those waiting for an answer.
func (a *appender) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	queue := a.queue
	a.queue = nil
	a.mu.Unlock()
	close(a.stop)
	for _, q := range queue {
		q.w.finish(fmt.Errorf("%w: journal closed", ErrUnavailable))
	}
}

// Stats returns how many journal messages and entries this process has
// sent to the journal.
func (j *Journal) Stats() (messages, entries uint64) {
	return j.app.messages.Load(), j.app.stored.Load()
}

// Busy says whether appends are waiting for the rounds being stored: the
// journal takes writes as fast as it can, and work that can wait (a
// replay) should.
func (j *Journal) Busy() bool {
	a := j.app
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rounds >= maxRounds && len(a.queue) > 0
}
