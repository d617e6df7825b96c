package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Marks are short records shared by every replica of a journal: the dedup
// window of sources with dedup (which (source, id) were accepted lately) and
// the ticks claimed by schedule sources. They live in a JetStream key-value
// bucket, <Stream>_DEDUP (the stream KV_<Stream>_DEDUP), beside the
// deliveries, so they survive restarts and replicas share them.
//
// A mark is claimed before the work it guards (an append to the journal)
// and confirmed after it, so that a process that dies in between does not
// leave the key taken for ever:
//
//   - Claim creates the key with the value "p<unix nanoseconds>" (pending)
//     only if it does not exist (JetStream's expected last subject
//     sequence: of two callers at the same time, one wins).
//   - Confirm replaces the pending value with "c" (confirmed): from then on
//     a Claim of the key finds it done, until its TTL ends.
//   - Release replaces it with "r" (released): the next Claim takes it.
//   - A pending mark older than the takeover time (2 x WriteTimeout: the
//     longest a live holder needs to append and confirm) is taken over by
//     the next Claim: its holder died, or its confirmation was lost.
//
// Every write carries its own TTL (JetStream per-message TTLs, nats-server
// 2.11 or later), so the bucket needs no clean-up; state written with Put
// carries none and stays.
//
// What this costs when a holder is lost: its events are claimed again and
// routed again after the takeover time, so a crash at the wrong moment can
// route an event twice, never lose it.

// MarkState is what Claim found for one key.
type MarkState uint8

const (
	// MarkClaimed: the caller holds the mark, pending; it must Confirm
	// it once its work is durable, or Release it when the work failed.
	MarkClaimed MarkState = iota
	// MarkDone: the mark was confirmed within its TTL: the work is done
	// (a duplicate).
	MarkDone
	// MarkBusy: another caller holds the mark, pending, and is not yet
	// overdue: ask again later (Mark.Since says since when it holds it).
	MarkBusy
)

func (s MarkState) String() string {
	switch s {
	case MarkClaimed:
		return "claimed"
	case MarkDone:
		return "done"
	case MarkBusy:
		return "busy"
	}
	return "unknown"
}

// Mark is one key's outcome of Claim.
type Mark struct {
	Key   string
	State MarkState
	// Since is when the mark was claimed (MarkClaimed, MarkBusy).
	Since time.Time
	rev   uint64
	ttl   time.Duration
	// Of a ClaimLog: the claim's place in its message, and the holder
	// it made and its key in the index (local mode).
	idx uint32
	id  uint64
	ik  ikey
}

// Values of marks.
const (
	markPending   = 'p'
	markConfirmed = 'c'
	markReleased  = 'r'
)

// MaxMarkTTL bounds a mark's TTL.
const MaxMarkTTL = 30 * 24 * time.Hour

// Marks is the journal's bucket of marks; see Journal.Marks.
type Marks struct {
	j      *Journal
	js     jetstream.JetStream
	stream jetstream.Stream
	bucket string
	prefix string // "$KV.<bucket>."
	// now is time.Now (tests move it).
	now func() time.Time
}

// Marks returns the journal's bucket of marks, creating it the first time.
func (j *Journal) Marks(ctx context.Context) (*Marks, error) {
	j.marksMu.Lock()
	defer j.marksMu.Unlock()
	if j.marks != nil {
		return j.marks, nil
	}
	// A JetStream context of its own: the journal's has handlers for the
	// appender's asynchronous publishes.
	js, err := jetstream.New(j.nc, jetstream.WithPublishAsyncMaxPending(16384), jetstream.WithPublishAsyncTimeout(j.writeTimeout()),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			// Claims meet taken keys all the time; a confirmation whose
			// mark was taken over leaves it to its new holder.
			if !wrongSequence(err) && len(m.Data) == 1 && m.Data[0] == markConfirmed {
				j.log.Warn("dedup: confirm a mark failed; a copy sent after the takeover time will be routed again", "subject", m.Subject, "err", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	bucket := j.opts.Stream + "_DEDUP"
	// The stream of a key-value bucket (as jetstream.CreateKeyValue makes
	// it, so that `nats kv` reads it) with per-message TTLs allowed and no
	// delete markers when they expire (markers would double the writes).
	cfg := jetstream.StreamConfig{
		Name:              "KV_" + bucket,
		Description:       "Junction dedup window and schedule ticks",
		Subjects:          []string{"$KV." + bucket + ".>"},
		MaxMsgsPerSubject: 1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxConsumers:      -1,
		Storage:           storage,
		Replicas:          j.opts.Replicas,
		AllowRollup:       true,
		DenyDelete:        true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
		Duplicates:        2 * time.Minute,
		AllowMsgTTL:       true,
	}
	s, err := setup(ctx, j, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s (the dedup window and schedule ticks; it needs per-message TTLs, nats-server 2.11 or later): %w", cfg.Name, err)
	}
	if !s.CachedInfo().Config.AllowMsgTTL {
		// A server before 2.11 takes the stream and ignores the TTLs:
		// marks would never expire.
		return nil, fmt.Errorf("create stream %s (the dedup window and schedule ticks): nats-server %s does not keep per-message TTLs; it needs 2.11 or later",
			cfg.Name, j.nc.ConnectedServerVersion())
	}
	j.marks = &Marks{j: j, js: js, stream: s, bucket: bucket, prefix: "$KV." + bucket + ".", now: time.Now}
	return j.marks, nil
}

// Bucket is the name of the key-value bucket.
func (m *Marks) Bucket() string { return m.bucket }

// TakeoverAfter is how long a pending mark is held before another Claim
// takes it over: twice the journal's write timeout.
func (m *Marks) TakeoverAfter() time.Duration { return 2 * m.j.writeTimeout() }

// ValidKey reports whether s can be a key: letters, digits, '-', '_', '='
// and '.' (not at either end, not twice in a row).
func ValidKey(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=':
		case c == '.' && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

// Claim claims each key for ttl (see Marks): the result has one Mark per
// key, in order. Keys must be distinct and valid (ValidKey). On error no
// key is held by the caller (those it claimed are released).
func (m *Marks) Claim(ctx context.Context, keys []string, ttl time.Duration) ([]Mark, error) {
	if ttl < time.Second {
		ttl = time.Second
	}
	ttl = min(ttl, MaxMarkTTL)
	marks := make([]Mark, len(keys))
	expect := make([]uint64, len(keys))
	todo := make([]int, len(keys))
	for i, k := range keys {
		if !ValidKey(k) {
			return nil, fmt.Errorf("claim: invalid key %q", k)
		}
		marks[i] = Mark{Key: k, ttl: ttl}
		todo[i] = i
	}
	fail := func(err error) ([]Mark, error) {
		var held []Mark
		for _, mk := range marks {
			if mk.State == MarkClaimed && mk.rev != 0 {
				held = append(held, mk)
			}
		}
		m.Release(context.WithoutCancel(ctx), held)
		return nil, err
	}
	for round := 0; len(todo) > 0; round++ {
		if round == 3 {
			// Changed under us three times: someone else is at it.
			for _, i := range todo {
				marks[i].State, marks[i].Since = MarkBusy, m.now()
			}
			break
		}
		now := m.now()
		value := []byte(string(rune(markPending)) + strconv.FormatInt(now.UnixNano(), 10))
		msgs := make([]*nats.Msg, len(todo))
		for n, i := range todo {
			msgs[n] = m.msg(keys[i], value, expect[i], ttl)
		}
		acks, errs, err := m.publish(ctx, msgs)
		if err != nil {
			return fail(err)
		}
		var conflicts []int
		for n, i := range todo {
			switch {
			case errs[n] == nil:
				marks[i].State, marks[i].Since, marks[i].rev = MarkClaimed, now, acks[n]
			case wrongSequence(errs[n]):
				conflicts = append(conflicts, i)
			default:
				return fail(classify(errs[n]))
			}
		}
		todo = todo[:0]
		for _, i := range conflicts {
			rev, value, err := m.last(ctx, keys[i])
			if err != nil {
				return fail(err)
			}
			since, state := m.judge(value)
			switch state {
			case MarkClaimed: // free or overdue: claim it at its revision
				expect[i] = rev
				todo = append(todo, i)
			default:
				marks[i].State, marks[i].Since = state, since
			}
		}
	}
	return marks, nil
}

// judge says what a mark's value means to a Claim: MarkClaimed when it can
// be claimed (absent, released or overdue), else MarkDone or MarkBusy (and
// since when it is held).
func (m *Marks) judge(value []byte) (time.Time, MarkState) {
	if len(value) == 0 {
		return time.Time{}, MarkClaimed
	}
	switch value[0] {
	case markConfirmed:
		return time.Time{}, MarkDone
	case markPending:
		ns, err := strconv.ParseInt(string(value[1:]), 10, 64)
		if err != nil {
			return time.Time{}, MarkClaimed
		}
		since := time.Unix(0, ns)
		if m.now().Sub(since) > m.TakeoverAfter() {
			return since, MarkClaimed
		}
		return since, MarkBusy
	}
	return time.Time{}, MarkClaimed
}

// Confirm confirms the marks that the caller claimed (the others are
// skipped): a Claim finds them done until their TTL ends (counted from the
// claim). A mark taken over meanwhile stays with its new holder.
func (m *Marks) Confirm(ctx context.Context, marks []Mark) error {
	return m.finish(ctx, marks, markConfirmed)
}

// Release releases the marks that the caller claimed: the next Claim of
// their keys takes them.
func (m *Marks) Release(ctx context.Context, marks []Mark) error {
	return m.finish(ctx, marks, markReleased)
}

// ConfirmLater is Confirm without waiting for the journal's answer: the
// confirmations are published when it returns, and Journal.Close waits for
// their answers (up to the write timeout). One that fails leaves its mark
// pending, to be taken over: a copy sent after that is routed again.
func (m *Marks) ConfirmLater(marks []Mark) {
	for _, msg := range m.finishMsgs(marks, markConfirmed) {
		if _, err := m.js.PublishMsgAsync(msg); err != nil {
			m.j.log.Warn("dedup: confirm a mark failed; a copy sent after the takeover time will be routed again", "key", msg.Subject[len(m.prefix):], "err", err)
		}
	}
}

// close waits for the answers to the marks' writes in flight.
func (m *Marks) close() {
	select {
	case <-m.js.PublishAsyncComplete():
	case <-time.After(m.j.writeTimeout()):
	}
}

func (m *Marks) finish(ctx context.Context, marks []Mark, value byte) error {
	msgs := m.finishMsgs(marks, value)
	if len(msgs) == 0 {
		return nil
	}
	_, errs, err := m.publish(ctx, msgs)
	if err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil && !wrongSequence(err) {
			return classify(err)
		}
	}
	return nil
}

// finishMsgs are the writes of value to the marks the caller holds.
func (m *Marks) finishMsgs(marks []Mark, value byte) []*nats.Msg {
	var msgs []*nats.Msg
	now := m.now()
	for _, mk := range marks {
		if mk.State != MarkClaimed || mk.rev == 0 {
			continue
		}
		ttl := mk.ttl - now.Sub(mk.Since)
		if value == markReleased || ttl < time.Second {
			ttl = time.Second
		}
		msgs = append(msgs, m.msg(mk.Key, []byte{value}, mk.rev, ttl))
	}
	return msgs
}

// Get returns the value that Put stored under key, nil when none.
func (m *Marks) Get(ctx context.Context, key string) ([]byte, error) {
	if !ValidKey(key) {
		return nil, fmt.Errorf("get: invalid key %q", key)
	}
	_, v, err := m.last(ctx, key)
	return v, err
}

// Put stores value under key, without a TTL (state that must stay, such as
// a schedule's last tick).
func (m *Marks) Put(ctx context.Context, key string, value []byte) error {
	if !ValidKey(key) {
		return fmt.Errorf("put: invalid key %q", key)
	}
	ctx, cancel := context.WithTimeout(ctx, m.j.writeTimeout())
	defer cancel()
	if _, err := m.js.PublishMsg(ctx, &nats.Msg{Subject: m.prefix + key, Data: value}); err != nil {
		return classify(err)
	}
	return nil
}

// msg is a write of value to key if its last revision is rev (0: absent),
// expiring after ttl.
func (m *Marks) msg(key string, value []byte, rev uint64, ttl time.Duration) *nats.Msg {
	h := nats.Header{}
	h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	h.Set(jetstream.MsgTTLHeader, ttl.Round(time.Second).String())
	return &nats.Msg{Subject: m.prefix + key, Data: value, Header: h}
}

// last returns the revision and value of key, (0, nil) when it has none
// (never written, or expired).
func (m *Marks) last(ctx context.Context, key string) (uint64, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.j.writeTimeout())
	defer cancel()
	msg, err := m.stream.GetLastMsgForSubject(ctx, m.prefix+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, classify(err)
	}
	if msg.Header.Get("KV-Operation") != "" || msg.Header.Get("Nats-Marker-Reason") != "" {
		return msg.Sequence, nil, nil
	}
	return msg.Sequence, msg.Data, nil
}

// publish sends msgs at once and waits for every answer: acks[i] is the
// sequence of msgs[i], or errs[i] why it was refused. err is set when the
// journal did not answer them all within its write timeout.
func (m *Marks) publish(ctx context.Context, msgs []*nats.Msg) (acks []uint64, errs []error, err error) {
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, msg := range msgs {
		if futs[i], err = m.js.PublishMsgAsync(msg); err != nil {
			return nil, nil, classify(err)
		}
	}
	timeout := time.NewTimer(m.j.writeTimeout())
	defer timeout.Stop()
	acks, errs = make([]uint64, len(msgs)), make([]error, len(msgs))
	for i, f := range futs {
		select {
		case pa := <-f.Ok():
			acks[i] = pa.Sequence
		case err := <-f.Err():
			errs[i] = err
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case <-timeout.C:
			m.j.health.poke()
			return nil, nil, fmt.Errorf("%w: no answer from the journal within %v", ErrUnavailable, m.j.writeTimeout())
		}
	}
	return acks, errs, nil
}

// wrongSequence reports whether err is JetStream refusing a write because
// the key's last revision was not the one expected.
func wrongSequence(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return false
	}
	return api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// marksState is the Journal's part for Marks.
type marksState struct {
	marksMu sync.Mutex
	marks   *Marks
	claims  *ClaimLog
}
