package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

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
// Writing it never waits on ingest or delivery: Trace only adds records to
// a bounded buffer (a full buffer drops records and counts them, see
// TraceDropped), and a writer goroutine publishes them once a second (or
// when 16,384 wait), on a connection of its own, coalesced: the records of
// one flush that fall in the same bucket (below) share a message, so that
// at high rates there are fewer messages than events (16,384 records,
// an acceptance and an attempt of each of 8,192 events, fill about 3,540
// of the 4,096 buckets: fewer than one message per two events), and each
// is published without waiting for an answer but the last of the flush.
//
// The records of an event are found by its id: a message's subject is
// <traceprefix>.<bucket>, the bucket being a hash of the id modulo 4,096,
// so a look-up reads only the messages of one bucket (JetStream indexes
// subjects), with an ephemeral consumer, and decodes only those holding
// the id. Each record carries the id and the CloudEvents source: the
// look-up keeps the records of its id, and tells apart several events with
// one id (from different sources). Buckets rather than a subject per id:
// JetStream keeps an index entry per subject in memory, which a day of
// events at thousands per second would make gigabytes; and with one flush
// a second a bucket gets at most one message a second, so a look-up reads
// at most 86,400 messages per day of retention whatever the rate
// (BenchmarkTraceOf on a loaded 2-core machine: 0.6 to 0.9 s; 2,000
// messages, a day at 100 events/s: 25 to 50 ms).

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
	traceFlushEvery = time.Second
	// traceFlushAt writes at once when this many records wait.
	traceFlushAt = 1 << 14
)

const (
	// traceMaxMessage bounds one message of the event log.
	traceMaxMessage = 256 << 10
	// maxTraceMessages bounds the messages one look-up reads.
	maxTraceMessages = 1 << 20
	// traceBuckets is how many subjects the event log spreads over.
	traceBuckets = 1 << 12
	// memoryTraceBytes bounds the event log in memory (tests).
	memoryTraceBytes = 32 << 20
)

func (j *Journal) traceStreamName() string { return j.opts.Stream + "_TRACE" }

func (j *Journal) tracePrefix() string { return "junction-trace." + strings.ToLower(j.opts.Stream) }

// traceBucket is the bucket of the records of the event with id.
func traceBucket(id string) uint16 {
	sum := sha256.Sum256([]byte(id))
	return (uint16(sum[0])<<8 | uint16(sum[1])) % traceBuckets
}

// traceSubject is the subject of the records of bucket b.
func (j *Journal) traceSubject(b uint16) string {
	return j.tracePrefix() + "." + hex.EncodeToString([]byte{byte(b >> 8), byte(b)})
}

// traceLog is the event log's writer.
type traceLog struct {
	j      *Journal
	nc     *nats.Conn
	stream jetstream.Stream
	// nc is the event log's own connection; js on it publishes the last
	// message of each flush and waits for the answer (see flush).
	js jetstream.JetStream

	// flushMu serialises flushes (the writer's and FlushTrace's).
	flushMu sync.Mutex
	mu      sync.Mutex
	buf     []TraceRecord
	// spare is the buffer written last, reused (flushMu).
	spare   []TraceRecord
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
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
	// A connection of its own: the event log's messages never queue ahead
	// of the deliveries' appends and acknowledgements on the journal's.
	if t.nc, err = j.dial("junction-trace"); err != nil {
		return fmt.Errorf("connect the event log: %w", err)
	}
	if t.js, err = jetstream.New(t.nc); err != nil {
		t.nc.Close()
		return fmt.Errorf("open jetstream for the event log: %w", err)
	}
	j.trace = t
	go t.run()
	return nil
}

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

// FlushTrace writes the records waiting in the buffer and returns once the
// journal has stored them (or refused them: they are then counted as
// dropped). Tests use it.
func (j *Journal) FlushTrace() {
	if j.trace != nil {
		j.trace.flush()
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
			return
		case <-tick.C:
		case <-t.wake:
		}
		t.flush()
	}
}

// flush publishes the waiting records: one message per bucket (more when
// its records exceed traceMaxMessage). The messages are published without asking
// for an answer, but for the last one: its answer says that the stream
// has stored all of them (a stream stores one connection's messages in
// order), and makes the writer wait for the journal rather than outrun it.
// When the last one has no answer the records of the flush are counted as
// dropped (some may have been stored).
func (t *traceLog) flush() {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	recs := t.buf
	t.buf = t.spare[:0]
	t.mu.Unlock()
	defer func() {
		if cap(recs) <= 2*traceFlushAt { // a burst's buffer is not kept
			clear(recs) // let the strings go
			t.spare = recs[:0]
		}
	}()
	if len(recs) == 0 {
		return
	}
	// Group the records by bucket, keeping their order within each.
	buckets := make([]uint16, len(recs))
	for i := range recs {
		buckets[i] = traceBucket(recs[i].ID)
	}
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return buckets[idx[a]] < buckets[idx[b]] })
	sorted := make([]TraceRecord, len(recs))
	for i, k := range idx {
		sorted[i] = recs[k]
	}
	var last *nats.Msg
	for i := 0; i < len(sorted); {
		b := buckets[idx[i]]
		end := i + 1
		for end < len(sorted) && buckets[idx[end]] == b {
			end++
		}
		group := sorted[i:end]
		i = end
		subject := t.j.traceSubject(b)
		for len(group) > 0 {
			data, n := encodeTrace(group)
			group = group[n:]
			if last != nil {
				if err := t.nc.Publish(last.Subject, last.Data); err != nil {
					t.dropped.Add(uint64(len(recs)))
					t.j.log.Debug("event-log records dropped", "err", err)
					return
				}
			}
			last = &nats.Msg{Subject: subject, Data: data}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.j.writeTimeout())
	defer cancel()
	if _, err := t.js.PublishMsg(ctx, last); err != nil {
		t.dropped.Add(uint64(len(recs)))
		t.j.log.Debug("event-log records dropped", "err", err)
		return
	}
}

// encodeTrace encodes the first records of recs as one message's payload
// (a JSON array) of at most traceMaxMessage bytes (at least one record),
// and says how many it took.
func encodeTrace(recs []TraceRecord) ([]byte, int) {
	buf := make([]byte, 1, 256*len(recs))
	buf[0] = '['
	n := 0
	for _, r := range recs {
		mark := len(buf)
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = r.appendJSON(buf)
		if n > 0 && len(buf)+1 > traceMaxMessage {
			buf = buf[:mark]
			break
		}
		n++
	}
	return append(buf, ']'), n
}

// appendJSON appends r as JSON, as json.Marshal would write it (but for
// HTML escapes): the writer encodes every record, reflection was most of
// its cost.
func (r *TraceRecord) appendJSON(b []byte) []byte {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, r.Kind)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"source":`...)
	b = appendJSONString(b, r.Source)
	b = append(b, `,"at":"`...)
	b = r.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	str := func(name, v string) {
		if v != "" {
			b = append(b, name...)
			b = appendJSONString(b, v)
		}
	}
	str(`,"type":`, r.Type)
	str(`,"sourceName":`, r.SourceName)
	if len(r.Routes) > 0 {
		b = append(b, `,"routes":[`...)
		for i, rt := range r.Routes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, rt)
		}
		b = append(b, ']')
	}
	str(`,"route":`, r.Route)
	str(`,"sink":`, r.Sink)
	if r.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(r.Attempt), 10)
	}
	str(`,"outcome":`, r.Outcome)
	if r.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
	}
	str(`,"error":`, r.Error)
	if r.DurationMs != 0 && !math.IsNaN(r.DurationMs) && !math.IsInf(r.DurationMs, 0) {
		b = append(b, `,"durationMs":`...)
		b = strconv.AppendFloat(b, r.DurationMs, 'f', -1, 64)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeTrace appends to out the records of event id in the payload of an
// event-log message (which holds the records of every event of its bucket
// written in one flush). A payload without the id as appendJSON writes it
// is skipped without decoding.
func decodeTrace(out []TraceRecord, data []byte, id string) ([]TraceRecord, error) {
	if !bytes.Contains(data, appendJSONString([]byte(`"id":`), id)) {
		return out, nil
	}
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
	t.nc.Close()
}

// TraceOf returns the records of the events with id, oldest first
// (records of several events when several sources used the id). It returns
// ErrTraceOff when the event log is off.
func (j *Journal) TraceOf(ctx context.Context, id string) ([]TraceRecord, error) {
	if j.trace == nil {
		return nil, ErrTraceOff
	}
	cons, err := j.trace.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     j.traceSubject(traceBucket(id)),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("read the trace of %q: %w", id, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		j.trace.stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
		cancel()
	}()
	pending := min(cons.CachedInfo().NumPending, maxTraceMessages)
	var out []TraceRecord
	for read := uint64(0); read < pending; {
		batch, err := cons.Fetch(int(min(pending-read, 1000)), jetstream.FetchMaxWait(j.writeTimeout()))
		if err != nil {
			return nil, fmt.Errorf("read the trace of %q: %w", id, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var derr error
			if out, derr = decodeTrace(out, m.Data(), id); derr != nil {
				j.log.Warn("skip unreadable event-log message", "subject", m.Subject(), "err", derr)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("read the trace of %q: %w", id, err)
		}
		if n == 0 {
			break // expired while read
		}
		read += uint64(n)
	}
	return out, nil
}
