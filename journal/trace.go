package journal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// The event log (traces) records what became of each accepted event: when
// and by which source it was accepted, the routes it matched, and every
// delivery attempt with its outcome. It is a stream of its own with limits
// retention (<STREAM>_TRACE): records expire after Options.TraceRetention,
// and past Options.TraceMaxBytes the oldest go first. It lives in
// JetStream, so every replica writes to it and reads all of it.
//
// Writing it never slows ingest or delivery: Trace only adds records to a
// bounded buffer (a full buffer drops records and counts them, see
// TraceDropped), and a writer goroutine publishes them asynchronously,
// coalesced: the records of one event made within one flush period (its
// acceptance and its first attempts, typically) share a message.
//
// The records of an event are found by its id: a message's subject is
// <traceprefix>.<hash of the id>, so a look-up reads only the messages of
// that id (JetStream indexes subjects), and each record carries the id and
// the CloudEvents source, so that a hash collision or several events with
// one id (from different sources) are told apart.

// Kinds of trace records.
const (
	TraceAccepted = "accepted" // the event was accepted and routed
	TraceAttempt  = "attempt"  // a delivery attempt (or a give-up without one) ended
	TraceRedriven = "redriven" // a dead letter was delivered again
)

// TraceRecord is one record of the event log.
type TraceRecord struct {
	Kind string `json:"kind"`
	// ID and Source are the event's CloudEvents id and source.
	ID     string    `json:"id"`
	Source string    `json:"source"`
	At     time.Time `json:"at"`

	// Set on TraceAccepted: the event's type, the Junction source that
	// accepted it, and the routes it matched (none: unrouted).
	Type       string   `json:"type,omitempty"`
	SourceName string   `json:"sourceName,omitempty"`
	Routes     []string `json:"routes,omitempty"`

	// Set on TraceAttempt and TraceRedriven: the delivery.
	Route string `json:"route,omitempty"`
	Sink  string `json:"sink,omitempty"`
	// Attempt is the attempt's number (from 1); 0 for a give-up without
	// an attempt (a transform that failed).
	Attempt int `json:"attempt,omitempty"`
	// Outcome is delivered, retried, dead_lettered or dropped.
	Outcome string `json:"outcome,omitempty"`
	// Status is the sink's status code, when it gave one.
	Status int `json:"status,omitempty"`
	// Error is the attempt's error, one line.
	Error      string  `json:"error,omitempty"`
	DurationMs float64 `json:"durationMs,omitempty"`
}

// ErrTraceOff means the event log is off (journal.trace: false).
var ErrTraceOff = errors.New("the event log is off (journal.trace: false)")

// Bounds of the event log's writer (variables for tests).
var (
	// traceBuffer bounds the records waiting to be written: past it,
	// records are dropped and counted.
	traceBuffer = 1 << 16
	// traceFlushEvery is how often waiting records are written.
	traceFlushEvery = 100 * time.Millisecond
	// traceFlushAt writes at once when this many records wait.
	traceFlushAt = 4096
)

const (
	// traceMaxMessage bounds one message of the event log.
	traceMaxMessage = 256 << 10
	// maxTraceMessages bounds the messages one look-up reads.
	maxTraceMessages = 1000
	// memoryTraceBytes bounds the event log in memory (tests).
	memoryTraceBytes = 32 << 20
)

func (j *Journal) traceStreamName() string { return j.opts.Stream + "_TRACE" }

func (j *Journal) tracePrefix() string { return "junction-trace." + strings.ToLower(j.opts.Stream) }

// traceSubject is the subject of the records of the event with id.
func (j *Journal) traceSubject(id string) string {
	sum := sha256.Sum256([]byte(id))
	return j.tracePrefix() + "." + hex.EncodeToString(sum[:12])
}

// traceLog is the event log's writer.
type traceLog struct {
	j      *Journal
	stream jetstream.Stream
	// js publishes the records: a JetStream context of its own, so that
	// its pending publishes never hold up the appender's.
	js jetstream.JetStream

	// flushMu serialises flushes (the writer's and FlushTrace's).
	flushMu sync.Mutex
	mu      sync.Mutex
	buf     []TraceRecord
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
	written atomic.Uint64
}

func (j *Journal) ensureTrace(ctx context.Context) error {
	if !j.opts.Trace {
		return nil
	}
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	maxBytes := j.opts.TraceMaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	if j.opts.Memory && (maxBytes < 0 || maxBytes > memoryTraceBytes) {
		maxBytes = memoryTraceBytes
	}
	if j.opts.URL == "" && !j.opts.Memory {
		// As for the dead-letter store: the embedded server reserves the
		// stream's maxBytes against its store limit.
		if free, _, err := statfs(j.opts.Dir); err == nil && free > 0 && (maxBytes < 0 || maxBytes > free/4) {
			j.log.Warn("event log limited to a quarter of the journal's free disk space",
				"traceMaxBytes", j.opts.TraceMaxBytes, "limit", free/4)
			maxBytes = max(free/4, 1<<20)
		}
	}
	cfg := jetstream.StreamConfig{
		Name:        j.traceStreamName(),
		Description: "Junction event log (traces)",
		Subjects:    []string{j.tracePrefix() + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     storage,
		Replicas:    j.opts.Replicas,
		MaxAge:      j.opts.TraceRetention,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
		// Look-ups are answered by any replica of the stream.
		AllowDirect: true,
	}
	s, err := setup(ctx, j, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	t := &traceLog{j: j, stream: s, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	t.js, err = jetstream.New(j.nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(j.writeTimeout()),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			n, _ := strconv.ParseUint(m.Header.Get(headerTraceRecords), 10, 64)
			t.dropped.Add(n)
		}),
	)
	if err != nil {
		return fmt.Errorf("open jetstream for the event log: %w", err)
	}
	j.trace = t
	go t.run()
	return nil
}

// headerTraceRecords counts the records of an event-log message.
const headerTraceRecords = "Junction-Records"

// Trace adds records to the event log. It never blocks: the records are
// written asynchronously; when more than the writer's buffer wait, the
// excess is dropped and counted (TraceDropped). It does nothing when the
// event log is off.
func (j *Journal) Trace(recs ...TraceRecord) {
	t := j.trace
	if t == nil || len(recs) == 0 {
		return
	}
	t.mu.Lock()
	room := traceBuffer - len(t.buf)
	if room < len(recs) {
		t.dropped.Add(uint64(len(recs) - max(room, 0)))
		recs = recs[:max(room, 0)]
	}
	t.buf = append(t.buf, recs...)
	full := len(t.buf) >= traceFlushAt
	t.mu.Unlock()
	if full {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// Tracing says whether the event log is on.
func (j *Journal) Tracing() bool { return j.trace != nil }

// TraceDropped returns how many trace records this process dropped (its
// buffer was full, or the journal refused their write).
func (j *Journal) TraceDropped() uint64 {
	if j.trace == nil {
		return 0
	}
	return j.trace.dropped.Load()
}

// FlushTrace writes the records waiting in the buffer and waits for the
// journal's answers (tests, shutdown).
func (j *Journal) FlushTrace(ctx context.Context) error {
	t := j.trace
	if t == nil {
		return nil
	}
	t.flush()
	select {
	case <-t.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run writes the buffer every traceFlushEvery, or at once when it fills,
// until close.
func (t *traceLog) run() {
	defer close(t.done)
	tick := time.NewTicker(traceFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			t.flush()
			select {
			case <-t.js.PublishAsyncComplete():
			case <-time.After(t.j.writeTimeout()):
			}
			return
		case <-tick.C:
		case <-t.wake:
		}
		t.flush()
	}
}

// flush publishes the waiting records: one message per event id (more when
// they exceed traceMaxMessage).
func (t *traceLog) flush() {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	recs := t.buf
	t.buf = nil
	t.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	order := make([]string, 0, len(recs))
	bySubject := make(map[string][]TraceRecord, len(recs))
	for _, r := range recs {
		s := t.j.traceSubject(r.ID)
		if _, ok := bySubject[s]; !ok {
			order = append(order, s)
		}
		bySubject[s] = append(bySubject[s], r)
	}
	for _, s := range order {
		group := bySubject[s]
		for len(group) > 0 {
			data, n := encodeTrace(group)
			group = group[n:]
			m := &nats.Msg{Subject: s, Data: data, Header: nats.Header{}}
			m.Header.Set(headerTraceRecords, strconv.Itoa(n))
			if _, err := t.js.PublishMsgAsync(m); err != nil {
				// The journal does not keep up (or is away): drop this
				// flush rather than wait on each of its messages.
				t.dropped.Add(uint64(n + len(group) + t.left(bySubject, order, s)))
				t.j.log.Debug("event-log records dropped", "err", err)
				return
			}
			t.written.Add(uint64(n))
		}
	}
}

// left counts the records of the subjects after s in order.
func (t *traceLog) left(bySubject map[string][]TraceRecord, order []string, s string) int {
	n, after := 0, false
	for _, o := range order {
		if after {
			n += len(bySubject[o])
		}
		after = after || o == s
	}
	return n
}

// encodeTrace encodes the first records of recs as one message's payload
// (a JSON array) of at most traceMaxMessage bytes (at least one record),
// and says how many it took.
func encodeTrace(recs []TraceRecord) ([]byte, int) {
	buf := []byte{'['}
	n := 0
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			n++ // cannot happen: the record has only strings, numbers and times
			continue
		}
		if n > 0 && len(buf)+len(b)+2 > traceMaxMessage {
			break
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
		n++
	}
	return append(buf, ']'), n
}

// decodeTrace appends to out the records of event id in the payload of an
// event-log message (those of other ids share it after a hash collision).
func decodeTrace(out []TraceRecord, data []byte, id string) ([]TraceRecord, error) {
	var recs []TraceRecord
	if err := json.Unmarshal(data, &recs); err != nil {
		return out, fmt.Errorf("decode event-log message: %w", err)
	}
	for _, r := range recs {
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out, nil
}

func (t *traceLog) close() {
	close(t.stop)
	<-t.done
}

// TraceOf returns the records of the events with id, oldest first
// (records of several events when several sources used the id). It returns
// ErrTraceOff when the event log is off.
func (j *Journal) TraceOf(ctx context.Context, id string) ([]TraceRecord, error) {
	if j.trace == nil {
		return nil, ErrTraceOff
	}
	subject := j.traceSubject(id)
	var out []TraceRecord
	seq := uint64(1)
	for range maxTraceMessages {
		m, err := j.trace.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the trace of %q: %w", id, err)
		}
		var err2 error
		if out, err2 = decodeTrace(out, m.Data, id); err2 != nil {
			j.log.Warn("skip unreadable event-log message", "seq", m.Sequence, "err", err2)
		}
		seq = m.Sequence + 1
	}
	return out, nil
}
