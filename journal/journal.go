// Package journal is Junction's durable queue of deliveries, on NATS
// JetStream: embedded in the process by default (its store in a directory,
// no network port opened), or an external JetStream server or cluster.
//
// There is one stream. Each entry is one delivery of one event to one sink;
// entries are stored in journal messages on the subject
// <prefix>.<sink>.<n>, n being how many entries the message holds (appends
// made at the same time share messages: see appender). Each sink has a
// durable pull consumer on its subjects, so a slow sink's backlog stays in
// the stream and never holds up another sink. The stream has work-queue
// retention: a message is removed when its consumer acknowledges it, which
// happens once every entry in it has been answered.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable means the journal cannot take writes now (not connected,
// full, or timed out). Nothing of the failed Append is guaranteed stored.
var ErrUnavailable = errors.New("journal unavailable")

// ErrTooLarge means an entry is larger than the journal's message limit.
var ErrTooLarge = errors.New("entry too large for the journal")

// Fsync modes.
const (
	FsyncInterval = "interval"
	FsyncAlways   = "always"
)

// Options configure Open.
type Options struct {
	// Dir is the embedded server's store directory. Used when URL is empty.
	Dir string
	// URL of an external NATS JetStream server or cluster.
	URL string
	// Fsync is FsyncInterval (default) or FsyncAlways (embedded only; an
	// external server's own setting applies there). With FsyncAlways,
	// Append returns only after an fsync that covers its entries; appends
	// that wait at the same time share one fsync.
	Fsync string
	// SyncInterval is the fsync period with FsyncInterval. Default 1s.
	SyncInterval time.Duration
	// Stream is the stream name. Default JUNCTION.
	Stream string
	// Replicas of the stream (external cluster only). Default 1.
	Replicas int
	// MaxBytes bounds the stream's size; 0 is unlimited. A full journal
	// refuses new entries (ErrUnavailable).
	MaxBytes int64
	// Credentials, User, Password, Token authenticate to an external server.
	Credentials, User, Password, Token string
	// WriteTimeout bounds one write to the journal. Default 5s.
	WriteTimeout time.Duration
	// MinFreeSpace is the free space the embedded journal keeps on the
	// filesystem of Dir: below it, appends are refused (ErrUnavailable)
	// before JetStream meets a full disk, and Health says so. 0 keeps none.
	// At most a quarter of the filesystem is kept.
	MinFreeSpace int64
	// DeadLetterRetention is how long the dead-letter store keeps an entry;
	// 0 keeps it until DeadLetterMaxBytes pushes it out.
	DeadLetterRetention time.Duration
	// DeadLetterMaxBytes bounds the dead-letter store (oldest entries go
	// first); 0 is unlimited.
	DeadLetterMaxBytes int64
	// Archive keeps every accepted event in the archive (see archive.go)
	// for ArchiveMaxAge (0: until ArchiveMaxBytes pushes it out), within
	// ArchiveMaxBytes (oldest first; 0 is unlimited).
	Archive         bool
	ArchiveMaxAge   time.Duration
	ArchiveMaxBytes int64
	// Trace keeps the event log (see trace.go).
	Trace bool
	// TraceRetention is how long the event log keeps a record; 0 keeps it
	// until TraceMaxBytes pushes it out.
	TraceRetention time.Duration
	// TraceMaxBytes bounds the event log (oldest records go first); 0 is
	// unlimited.
	TraceMaxBytes int64
	// Memory stores the stream in memory (tests only: nothing survives).
	Memory bool
	// Logger receives the journal's log; nil discards it.
	Logger *slog.Logger

	// dedupe has the embedded journal publish as on a cluster (tests).
	dedupe bool
}

// Journal is an open journal.
type Journal struct {
	opts Options
	srv  *server.Server
	// finished counts the entries that left the journal for good
	// (acknowledged or dropped; not those stored again to retry): the
	// health monitor's sign that a full journal is draining.
	finished atomic.Uint64
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	lanes    lanes
	lock     *os.File
	log      *slog.Logger
	// gsync is set with fsync: always in the embedded journal.
	gsync *groupSync
	// dlStream is the dead-letter store (see deadletter.go); dlSync is its
	// gsync.
	dlStream jetstream.Stream
	dlSync   *groupSync
	// arStream is the archive (see archive.go), arSync its gsync; jobs
	// the bucket of replay jobs.
	arStream jetstream.Stream
	arSync   *groupSync
	jobs     jetstream.KeyValue
	app      *appender
	// delayStream holds the entries not due yet; mover is the consumer
	// that moves them into their lanes when due (see delay.go).
	delayStream jetstream.Stream
	mover       jetstream.Consumer
	moverDone   sync.WaitGroup
	// health watches whether the journal can take writes (see health.go);
	// embedded is the embedded server's options, to reload its JetStream.
	health   *health
	embedded *server.Options
	// marksState holds the bucket of marks (see marks.go).
	marksState

	// trace is the event log's writer (see trace.go); nil when it is off.
	trace *traceLog
	// dial opens another connection to the journal, with nc's options.
	dial func(name string) (*nats.Conn, error)
}

// MaxPayload is the largest entry the embedded server accepts.
const MaxPayload = 8 << 20

// Open starts the embedded server (or connects to URL) and creates or
// updates the stream.
func Open(ctx context.Context, o Options) (*Journal, error) {
	if o.Stream == "" {
		o.Stream = "JUNCTION"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	prefix := "junction." + strings.ToLower(o.Stream)
	j := &Journal{opts: o, log: o.Logger, lanes: lanes{prefix: prefix, delay: "junction-delay." + strings.ToLower(o.Stream),
		archive: "junction-archive." + strings.ToLower(o.Stream)}}
	if err := j.connect(ctx); err != nil {
		j.Close()
		return nil, err
	}
	if err := j.ensureStream(ctx); err != nil {
		j.Close()
		return nil, err
	}
	if o.URL == "" && o.Fsync == FsyncAlways && !o.Memory {
		j.gsync = newGroupSync(filepath.Join(o.Dir, "jetstream-store", "jetstream", "$G", "streams", o.Stream, "msgs"))
	}
	if err := j.ensureDeadLetters(ctx); err != nil {
		j.Close()
		return nil, err
	}
	if err := j.ensureDelays(ctx); err != nil {
		j.Close()
		return nil, err
	}
	if err := j.ensureArchive(ctx); err != nil {
		j.Close()
		return nil, err
	}
	if err := j.ensureTrace(ctx); err != nil {
		j.Close()
		return nil, err
	}
	j.startHealth()
	j.moverDone.Add(2)
	go j.runMover()
	go j.keep()
	return j, nil
}

func (j *Journal) connect(ctx context.Context) error {
	o := j.opts
	natsOpts := []nats.Option{
		nats.Name("junction"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				j.log.Warn("journal disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { j.log.Info("journal reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			j.log.Warn("journal connection error", "subject", subject, "err", err)
		}),
	}
	if o.URL == "" {
		if o.Dir == "" && !o.Memory {
			return fmt.Errorf("open journal: no dir and no url")
		}
		if !o.Memory {
			if err := os.MkdirAll(o.Dir, 0o750); err != nil {
				return fmt.Errorf("open journal: %w", err)
			}
			lock, err := lockDir(o.Dir)
			if err != nil {
				return err
			}
			j.lock = lock
		}
		storeDir := filepath.Join(o.Dir, "jetstream-store")
		if o.Memory {
			storeDir = ""
		}
		sopts := &server.Options{
			ServerName: "junction",
			JetStream:  true,
			StoreDir:   storeDir,
			DontListen: true,
			NoSigs:     true,
			NoLog:      true,
			MaxPayload: MaxPayload,
			// fsync: always is a group commit done by the journal (see
			// groupSync), not a sync per message in the store.
			SyncAlways:         false,
			SyncInterval:       o.SyncInterval,
			JetStreamMaxMemory: 256 << 20,
		}
		if o.Memory {
			dir, err := os.MkdirTemp("", "junction-journal-*")
			if err != nil {
				return fmt.Errorf("open journal: %w", err)
			}
			sopts.StoreDir = dir
		}
		j.embedded = sopts
		srv, err := server.NewServer(sopts)
		if err != nil {
			return fmt.Errorf("start embedded journal: %w", err)
		}
		j.srv = srv
		srv.Start()
		if !srv.ReadyForConnections(30 * time.Second) {
			return fmt.Errorf("start embedded journal: not ready after 30s")
		}
		natsOpts = append(natsOpts, nats.InProcessServer(srv))
	} else {
		if o.Credentials != "" {
			natsOpts = append(natsOpts, nats.UserCredentials(o.Credentials))
		}
		if o.User != "" {
			natsOpts = append(natsOpts, nats.UserInfo(o.User, o.Password))
		}
		if o.Token != "" {
			natsOpts = append(natsOpts, nats.Token(o.Token))
		}
		natsOpts = append(natsOpts, nats.RetryOnFailedConnect(false))
	}
	url := o.URL
	if url == "" {
		url = nats.DefaultURL // ignored with InProcessServer
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		return fmt.Errorf("connect journal %s: %w", o.URL, err)
	}
	j.nc = nc
	j.dial = func(name string) (*nats.Conn, error) {
		return nats.Connect(url, append(natsOpts[:len(natsOpts):len(natsOpts)], nats.Name(name))...)
	}
	if o.URL != "" && !serverAtLeast(nc.ConnectedServerVersion(), 2, 12) {
		return fmt.Errorf("journal %s: nats-server %s is too old: the journal needs 2.12 or later (message schedules for delayed deliveries, pinned consumers for ordered ones)", o.URL, nc.ConnectedServerVersion())
	}
	// The appender is made here: the journal's answers to its messages
	// come through these handlers.
	j.app = newAppender(j, int(nc.MaxPayload()))
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(16384),
		// On a cluster, half the write timeout: a message whose answer is
		// lost is published again (see appender.republish) and can still
		// be answered within the write timeout.
		jetstream.WithPublishAsyncTimeout(j.asyncTimeout()),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			j.app.acked(m, nil)
		}),
		// Called with the publisher's lock held on a timeout: answer
		// from another goroutine, since that may publish the next round.
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			go j.app.acked(m, classify(err))
		}),
	)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	j.js = js
	return nil
}

func (j *Journal) ensureStream(ctx context.Context) error {
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	maxBytes := j.opts.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	cfg := jetstream.StreamConfig{
		Name:        j.opts.Stream,
		Description: "Junction deliveries",
		Subjects:    []string{j.lanes.all()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     storage,
		Replicas:    j.opts.Replicas,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardNew,
		// For the keeper (see keep).
		AllowRollup: true,
		// A message published again after its answer was lost has the
		// same Nats-Msg-Id within the write timeout: the stream stores it
		// once.
		Duplicates: j.duplicates(),
	}
	if info, err := setup(ctx, j, "stream info "+cfg.Name, func(ctx context.Context) (*jetstream.StreamInfo, error) {
		s, err := j.js.Stream(ctx, cfg.Name)
		if err != nil {
			return nil, err
		}
		return s.Info(ctx)
	}); err == nil {
		want := cfg
		if want.Duplicates == 0 {
			want.Duplicates = 2 * time.Minute // the server's default
		}
		j.warnChanged("stream "+cfg.Name, streamSettings(info.Config), streamSettings(want))
	}
	s, err := setup(ctx, j, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	j.stream = s
	return nil
}

// dedupe says whether journal messages carry ids and are published again
// when their answer is lost: on an external server or cluster, where a
// stream leader can be lost with answers in flight. The embedded server is
// in the process and has no leader to lose: it is spared the cost (about
// 10% of an append; see BenchmarkAppend).
func (j *Journal) dedupe() bool { return j.opts.URL != "" || j.opts.dedupe }

// asyncTimeout bounds the wait for one publish's answer.
func (j *Journal) asyncTimeout() time.Duration {
	if j.dedupe() {
		return j.writeTimeout() / 2
	}
	return j.writeTimeout()
}

// duplicates is the stream's duplicates window with dedupe: twice the
// write timeout, at least 2s.
func (j *Journal) duplicates() time.Duration {
	if !j.dedupe() {
		return 0
	}
	return max(2*j.writeTimeout(), 2*time.Second)
}

// setting is one setting of a stream or consumer, as the config names it.
type setting struct{ name, value string }

func streamSettings(c jetstream.StreamConfig) []setting {
	return []setting{
		{"journal.replicas", strconv.Itoa(c.Replicas)},
		{"journal.maxBytes", strconv.FormatInt(c.MaxBytes, 10)},
		{"storage", c.Storage.String()},
		{"duplicates window (2 x journal.writeTimeout)", c.Duplicates.String()},
		{"subjects", strings.Join(c.Subjects, ",")},
	}
}

// warnChanged logs one line per setting that this process changes on a
// stream or consumer that exists (made by another replica, or by this one
// with another config): every replica applies its own config when it
// starts, so replicas with different configs undo each other's settings.
// It warns rather than refusing to start, so that a rolling change of the
// config (one replica after the other) is possible.
func (j *Journal) warnChanged(what string, had, want []setting) {
	for i := range had {
		if had[i].value != want[i].value {
			j.log.Warn(fmt.Sprintf("journal: %s has %s %s, this replica's config says %s; applying %s (replicas with different configs undo each other's settings: give every replica the same config)",
				what, had[i].name, had[i].value, want[i].value, want[i].value),
				"setting", had[i].name, "existing", had[i].value, "config", want[i].value)
		}
	}
}

// Subject is the subject filter of every lane of sink.
func (j *Journal) Subject(sink string) string { return j.lanes.sink(sink) }

// Entry is one delivery to store.
type Entry struct {
	Sink  string
	Route string
	// DeadLetter marks an entry that carries a dead letter.
	DeadLetter bool
	// Key is the ordering key: the entries of one route and key reach
	// their sink one at a time, in the order they were stored. "" is
	// unordered.
	Key string
	// NotBefore is when the entry is due: it waits in the delay stream
	// until then. Zero is at once.
	NotBefore time.Time
	// Priority (0..MaxPriority): of the entries due for a sink, those of
	// a higher priority are handed out first. Ignored with a Key.
	Priority int
	// Data is the encoded event.
	Data []byte
	// TraceParent and TraceState are the W3C trace context of the span
	// that stored the entry (its route match), so that every attempt,
	// across retries and restarts, belongs to the same trace. "" without
	// one.
	TraceParent, TraceState string

	// Set on an entry stored again (a retry, a due entry moved into its
	// lane), zero on a new one:
	// Attempts is the number of attempts already made.
	Attempts int
	// Accepted is when the entry was first stored (zero: its message's
	// store time).
	Accepted time.Time
	// Seq is the entry's sequence number once given (see
	// Delivery.Seq); 0 gives it its message's.
	Seq uint64

	// archive marks an entry of the archive (see ArchiveEntry): Route
	// holds the source's name.
	archive bool

	// park is set on an entry of a failing key parked (see park.go): the
	// hash of its route and key.
	park string
}

// Append stores entries and returns once all of them are durable (per the
// fsync mode) or one has failed. On error, some entries may have been stored:
// callers that retry may deliver those twice, never lose them. Appends made
// at the same time share journal messages (see appender). Append waits at
// most Options.WriteTimeout; it fails at once (ErrUnavailable, no write)
// while the store cannot take writes or the disk is below MinFreeSpace (see
// Health).
//
// Archive entries (see ArchiveEntry) are stored in the archive in the same
// rounds; an append of archive entries only is not refused because the
// deliveries stream is full (journal.maxBytes), only for a full disk.
func (j *Journal) Append(ctx context.Context, entries []Entry) error {
	internal := len(entries) > 0
	for i := range entries {
		if !entries[i].archive {
			internal = false
			break
		}
	}
	return j.append(ctx, entries, internal)
}

// append is Append; internal says the entries are stored again (a retry, a
// due entry moved into its lane), which a full journal still takes.
func (j *Journal) append(ctx context.Context, entries []Entry, internal bool) error {
	if len(entries) == 0 {
		return nil
	}
	w, err := j.app.add(entries, internal)
	if err != nil {
		return err
	}
	timeout := writeTimers.Get().(*time.Timer)
	timeout.Reset(j.writeTimeout())
	defer func() {
		timeout.Stop()
		writeTimers.Put(timeout)
	}()
	select {
	case <-w.done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case <-timeout.C:
		j.health.poke()
		return fmt.Errorf("%w: no answer from the journal within %v", ErrUnavailable, j.writeTimeout())
	case <-j.app.stop:
		return fmt.Errorf("%w: journal closed", ErrUnavailable)
	}
	if w.err != nil {
		return w.err
	}
	if err := j.sync(); err != nil {
		return err
	}
	if j.arSync != nil && slices.ContainsFunc(entries, func(e Entry) bool { return e.archive }) {
		if err := j.arSync.Sync(); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return nil
}

// writeTimers are the stopped timers of Append's write timeout, reused: a
// timer stopped since Go 1.23 never delivers a stale tick.
var writeTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// sync makes the messages stored so far durable with fsync: always (see
// groupSync); it does nothing in the other modes.
func (j *Journal) sync() error {
	if j.gsync == nil {
		return nil
	}
	if err := j.gsync.Sync(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, nats.ErrMaxPayload) || strings.Contains(err.Error(), "maximum payload") || strings.Contains(err.Error(), "message size exceeds") {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Close closes the connection and stops the embedded server.
func (j *Journal) Close() error {
	j.marksMu.Lock()
	marks, claims := j.marks, j.claims
	j.marksMu.Unlock()
	if marks != nil {
		marks.close()
	}
	if claims != nil {
		claims.close()
	}
	j.health.close()
	if j.trace != nil {
		j.trace.close()
	}
	if j.app != nil {
		j.app.close()
	}
	j.moverDone.Wait()
	if j.nc != nil {
		j.nc.Close()
	}
	if j.srv != nil {
		j.srv.Shutdown()
		j.srv.WaitForShutdown()
		if j.opts.Memory {
			os.RemoveAll(j.srv.StoreDir())
		}
	}
	if j.lock != nil {
		unlockDir(j.lock)
	}
	return nil
}

// serverAtLeast says whether the server version v (such as "2.12.1") is
// at least major.minor.
func serverAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Bounds of the requests that set up streams and consumers (variables for
// tests).
var (
	// setupTimeout bounds all the attempts of one request.
	setupTimeout = 60 * time.Second
	// setupAttempt bounds one attempt.
	setupAttempt = 10 * time.Second
)

// setup makes a request that creates or updates a stream or consumer (what
// names it), again when an attempt gets no answer in setupAttempt: a
// JetStream cluster may carry out a request and lose its answer (seen with
// a new stream on a cluster under load: the stream had its leader at once,
// the answer never came). The requests are idempotent.
func setup[T any](ctx context.Context, j *Journal, what string, do func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, setupAttempt)
		v, err := do(actx)
		acancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return v, err
		}
		j.log.Warn("journal: no answer to a request, asking again", "request", what, "attempt", attempt, "timeout", setupAttempt)
	}
}
