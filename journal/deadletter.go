package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The dead-letter store keeps every delivery that was given up on (its
// policy exhausted, a permanent failure, a transform that failed), whether
// or not its route has a dead-letter sink, so that nothing accepted is ever
// lost silently. It is a stream of its own beside the deliveries, with
// limits retention: entries expire after Options.DeadLetterRetention, and
// past Options.DeadLetterMaxBytes the oldest go first, so it never blocks
// ingest. It lives in JetStream like the deliveries, so replicas share it.
//
// An entry is one message on <dlprefix>.<route>.<sink>: the encoded event as
// its payload, the rest in headers. Its ID is its sequence in the stream.

// Headers of dead-letter store entries.
const (
	headerDLSink     = "Junction-Sink"
	headerDLAttempts = "Junction-Attempts"
	headerDLReason   = "Junction-Reason"
	headerDLError    = "Junction-Error"
	headerAccepted   = "Junction-Accepted"
)

// Reasons a delivery was dead-lettered (DeadLetter.Reason).
const (
	ReasonExhausted = "exhausted" // its policy allowed no more retries
	ReasonPermanent = "permanent" // the sink refused it for good
	ReasonTransform = "transform" // the route's transform failed
	ReasonHopLimit  = "hop_limit" // a function reply past the sink's maxHops
)

// DeadLetter is one entry of the dead-letter store.
type DeadLetter struct {
	// ID identifies the entry in the store (0 before it is stored).
	ID    uint64
	Route string
	Sink  string
	// Attempts is how many delivery attempts were made.
	Attempts int
	Reason   string
	// Error is the last error, one line.
	Error string
	// Accepted is when the event was accepted; At when it was
	// dead-lettered.
	Accepted, At time.Time
	// Data is the encoded event.
	Data []byte
}

// memoryDeadLetterBytes bounds the dead-letter store in memory (tests).
const memoryDeadLetterBytes = 32 << 20

func (j *Journal) dlStreamName() string { return j.opts.Stream + "_DEADLETTERS" }

func (j *Journal) dlPrefix() string { return "junction-dl." + strings.ToLower(j.opts.Stream) }

func (j *Journal) ensureDeadLetters(ctx context.Context) error {
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	maxBytes := j.opts.DeadLetterMaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	if j.opts.Memory && (maxBytes < 0 || maxBytes > memoryDeadLetterBytes) {
		maxBytes = memoryDeadLetterBytes // within the embedded server's memory reserve
	}
	if j.opts.URL == "" && !j.opts.Memory {
		// The embedded server reserves a stream's maxBytes against its
		// store limit (three quarters of the free space at start): on a
		// small disk the configured size would stop the start.
		if free, _, err := statfs(j.opts.Dir); err == nil && free > 0 && (maxBytes < 0 || maxBytes > free/4) {
			j.log.Warn("dead-letter store limited to a quarter of the journal's free disk space",
				"deadLetterMaxBytes", j.opts.DeadLetterMaxBytes, "limit", free/4)
			maxBytes = max(free/4, 1<<20)
		}
	}
	cfg := jetstream.StreamConfig{
		Name:        j.dlStreamName(),
		Description: "Junction dead letters",
		Subjects:    []string{j.dlPrefix() + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     storage,
		Replicas:    j.opts.Replicas,
		MaxAge:      j.opts.DeadLetterRetention,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
		// A dead letter written again after a crash between its write and
		// the acknowledgement of its delivery carries the same message id.
		Duplicates: 2 * time.Minute,
	}
	s, err := setup(ctx, j, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	j.dlStream = s
	if j.gsync != nil {
		j.dlSync = newGroupSync(filepath.Join(j.opts.Dir, "jetstream-store", "jetstream", "$G", "streams", cfg.Name, "msgs"))
	}
	return nil
}

// StoreDeadLetter adds dl to the dead-letter store and returns once it is
// durable (per the fsync mode). id names the dead-lettering (such as the
// delivery's stream sequence and index): storing the same id twice within
// two minutes keeps one entry.
func (j *Journal) StoreDeadLetter(ctx context.Context, dl DeadLetter, id string) error {
	if dl.At.IsZero() {
		dl.At = time.Now()
	}
	m := &nats.Msg{Subject: j.dlPrefix() + "." + dl.Route + "." + dl.Sink, Data: dl.Data, Header: nats.Header{}}
	m.Header.Set(HeaderRoute, dl.Route)
	m.Header.Set(headerDLSink, dl.Sink)
	m.Header.Set(headerDLAttempts, strconv.Itoa(dl.Attempts))
	m.Header.Set(headerDLReason, dl.Reason)
	m.Header.Set(headerDLError, dl.Error)
	if !dl.Accepted.IsZero() {
		m.Header.Set(headerAccepted, strconv.FormatInt(dl.Accepted.UnixNano(), 10))
	}
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	ctx, cancel := context.WithTimeout(ctx, j.writeTimeout())
	defer cancel()
	if _, err := j.js.PublishMsg(ctx, m); err != nil {
		return classify(err)
	}
	if j.dlSync != nil {
		if err := j.dlSync.Sync(); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return nil
}

// writeTimeout bounds one write to the journal.
func (j *Journal) writeTimeout() time.Duration {
	if j.opts.WriteTimeout > 0 {
		return j.opts.WriteTimeout
	}
	return 5 * time.Second
}

// DeadLetterQuery selects dead letters; zero fields select all.
type DeadLetterQuery struct {
	Route, Sink string
	// Limit bounds how many are returned. Default 100.
	Limit int
	// Before returns only entries older than the one with this ID (a
	// cursor: the ID of the last entry of the previous page).
	Before uint64
}

// maxDeadLetterScan bounds the entries one DeadLetters call looks at.
const maxDeadLetterScan = 10000

// DeadLetters returns dead letters, newest first, and the cursor of the
// next page (0 when there are no more).
func (j *Journal) DeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, uint64, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	info, err := j.dlStream.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read dead letters: %w", err)
	}
	st := info.State
	seq := st.LastSeq
	if q.Before > 0 && q.Before-1 < seq {
		seq = q.Before - 1
	}
	var out []DeadLetter
	for scanned := 0; seq >= st.FirstSeq && seq > 0 && scanned < maxDeadLetterScan; seq-- {
		if len(out) == q.Limit {
			return out, seq + 1, nil
		}
		scanned++
		m, err := j.dlStream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read dead letter %d: %w", seq, err)
		}
		dl, err := decodeDeadLetter(m)
		if err != nil {
			j.log.Warn("skip unreadable dead letter", "id", seq, "err", err)
			continue
		}
		if (q.Route != "" && dl.Route != q.Route) || (q.Sink != "" && dl.Sink != q.Sink) {
			continue
		}
		out = append(out, dl)
	}
	if seq >= st.FirstSeq && seq > 0 {
		return out, seq + 1, nil
	}
	return out, 0, nil
}

// DeadLetter returns the dead letter with id.
func (j *Journal) DeadLetter(ctx context.Context, id uint64) (DeadLetter, error) {
	m, err := j.dlStream.GetMsg(ctx, id)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("read dead letter %d: %w", id, err)
	}
	return decodeDeadLetter(m)
}

// DeleteDeadLetter removes the dead letter with id.
func (j *Journal) DeleteDeadLetter(ctx context.Context, id uint64) error {
	if err := j.dlStream.DeleteMsg(ctx, id); err != nil {
		return fmt.Errorf("delete dead letter %d: %w", id, err)
	}
	return nil
}

// DeadLetterCount returns how many entries the dead-letter store holds.
func (j *Journal) DeadLetterCount(ctx context.Context) (uint64, error) {
	info, err := j.dlStream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func decodeDeadLetter(m *jetstream.RawStreamMsg) (DeadLetter, error) {
	h := m.Header
	dl := DeadLetter{
		ID:     m.Sequence,
		Route:  h.Get(HeaderRoute),
		Sink:   h.Get(headerDLSink),
		Reason: h.Get(headerDLReason),
		Error:  h.Get(headerDLError),
		At:     m.Time,
		Data:   m.Data,
	}
	if dl.Route == "" || dl.Sink == "" {
		return dl, fmt.Errorf("dead letter %d: no route or sink", m.Sequence)
	}
	if v := h.Get(headerDLAttempts); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return dl, fmt.Errorf("dead letter %d: bad %s %q", m.Sequence, headerDLAttempts, v)
		}
		dl.Attempts = n
	}
	if v := h.Get(headerAccepted); v != "" {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return dl, fmt.Errorf("dead letter %d: bad %s %q", m.Sequence, headerAccepted, v)
		}
		dl.Accepted = time.Unix(0, ns)
	}
	return dl, nil
}
