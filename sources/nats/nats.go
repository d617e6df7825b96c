// Package natssource is the "nats" source type: it takes CloudEvents (or
// any message, wrapped into one) from NATS, either from a JetStream stream
// through a durable pull consumer (at least once: a message is acknowledged
// only after the router journaled it) or from a core NATS subject (at most
// once: core NATS has no acknowledgements).
//
// Messages are read according to the CloudEvents NATS protocol binding,
// binary mode (ce- headers) or structured mode
// (application/cloudevents+json); see Decode rules in the README. With
// format s3 each message is an S3 event notification (as MinIO's NATS
// target publishes them) and every record becomes one S3 CloudEvent.
package natssource

import (
	"context"
	"errors"
	"fmt"
	"github.com/junctionhq/junction/internal/backoff"
	"github.com/junctionhq/junction/internal/text"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/natsconn"
	"github.com/junctionhq/junction/internal/s3event"
	"github.com/junctionhq/junction/sources"
)

// Type is the source type name in the config.
const Type = "nats"

// Defaults of Config.
const (
	DefaultConcurrency   = 32
	DefaultMaxAckPending = 1000
	DefaultAckWait       = 30 * time.Second
	DefaultDeliverPolicy = DeliverAll
)

// Deliver policies of a new durable consumer.
const (
	// DeliverAll starts with the first message in the stream.
	DeliverAll = "all"
	// DeliverNew starts with messages published after the consumer was made.
	DeliverNew = "new"
)

// Formats of the messages (the format key).
const (
	// FormatCloudEvents reads CloudEvents by the NATS protocol binding and
	// wraps any other message.
	FormatCloudEvents = "cloudevents"
	// FormatS3 reads S3 event notifications (MinIO's NATS target): one
	// CloudEvent per record.
	FormatS3 = "s3"
)

// Reason labels passed to sources.Ingester.Rejected.
const (
	// ReasonMalformed: the message claims to be a CloudEvent but is not a
	// valid one.
	ReasonMalformed = sources.ReasonMalformed
	// ReasonTooLarge: the journal refused the event as too large.
	ReasonTooLarge = sources.ReasonTooLarge
	// ReasonLost: a core NATS message that could not be journaled (or that
	// NATS dropped because the source was too slow). Core NATS cannot
	// redeliver it.
	ReasonLost = "lost"
)

// Backoff of a message whose ingest failed (NakWithDelay): 500ms for the
// first delivery, doubling up to 30s.
const (
	nakBase = 500 * time.Millisecond
	nakMax  = 30 * time.Second
)

func init() {
	sources.Register(Type, func() sources.Config { return NewConfig() })
}

// ReplicaWarning implements sources.ReplicaConfig: a core NATS subscription
// without a queue group delivers every message to every replica, which then
// routes it once each.
func (c *Config) ReplicaWarning() string {
	if c.Stream == "" && c.Queue == "" {
		return "core NATS without queue: every replica sharing journal.url receives and routes every message (set queue, e.g. queue: junction, so that one replica takes each)"
	}
	return ""
}

var _ sources.ReplicaConfig = (*Config)(nil)

// Config is the nats source's config.
type Config struct {
	natsconn.Conn `yaml:",inline"`
	// Stream is the JetStream stream to consume. Set: JetStream mode (at
	// least once). Empty: core NATS mode on Subject (at most once).
	Stream string `yaml:"stream"`
	// Subject is the filter subject of the consumer in JetStream mode
	// (optional: the whole stream), the subject to subscribe to in core
	// NATS mode (required). Wildcards allowed.
	Subject string `yaml:"subject"`
	// Queue is the queue group of a core NATS subscription: the members of a
	// group share the messages. Core NATS mode only.
	Queue string `yaml:"queue"`
	// Durable is the durable consumer's name. Default junction-<source name>.
	Durable string `yaml:"durable"`
	// Concurrency is how many messages are ingested at once. Default 32.
	Concurrency int `yaml:"concurrency"`
	// MaxAckPending bounds the messages delivered and not yet acknowledged,
	// over every replica sharing the durable. Default 1000.
	MaxAckPending int `yaml:"maxAckPending"`
	// AckWait is how long the server waits for an acknowledgement before it
	// redelivers. An ingest pending longer than half of it sends InProgress.
	// Default 30s.
	AckWait time.Duration `yaml:"ackWait"`
	// DeliverPolicy is where a new durable starts: all (default) or new.
	DeliverPolicy string `yaml:"deliverPolicy"`
	// DeadLetterSubject, when set, receives the raw message of every
	// malformed (or too large) message before it is terminated.
	DeadLetterSubject string `yaml:"deadLetterSubject"`
	// EventType is the type of the CloudEvent a non-CloudEvent message is
	// wrapped into. Default io.nats.message.
	EventType string `yaml:"eventType"`
	// Format is how messages are read: cloudevents (default) or s3.
	Format string `yaml:"format"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{
		Conn:          natsconn.Conn{URL: natsconn.DefaultURL},
		Concurrency:   DefaultConcurrency,
		MaxAckPending: DefaultMaxAckPending,
		AckWait:       DefaultAckWait,
		DeliverPolicy: DefaultDeliverPolicy,
		EventType:     DefaultEventType,
		Format:        FormatCloudEvents,
	}
}

var _ sources.Config = (*Config)(nil)

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	errs := c.Conn.Validate()
	js := c.Stream != ""
	if js {
		if !validName(c.Stream) {
			errs = append(errs, config.FieldErrorf("stream", "invalid stream name %s (no spaces, '.', '*', '>', '/' or '\\')", quote(c.Stream)))
		}
		if c.Queue != "" {
			errs = append(errs, config.FieldErrorf("queue", "applies to core NATS only (without stream); a durable consumer already shares its messages among the replicas that use it"))
		}
	} else {
		if c.Subject == "" {
			errs = append(errs, config.FieldErrorf("subject", "required: set stream (JetStream, at least once) or subject (core NATS, at most once)"))
		}
		for _, k := range []struct {
			key string
			set bool
		}{
			{"durable", c.Durable != ""},
			{"maxAckPending", c.MaxAckPending != DefaultMaxAckPending},
			{"ackWait", c.AckWait != DefaultAckWait},
			{"deliverPolicy", c.DeliverPolicy != DefaultDeliverPolicy},
		} {
			if k.set {
				errs = append(errs, config.FieldErrorf(k.key, "applies to JetStream only: set stream"))
			}
		}
	}
	if c.Subject != "" {
		if err := checkSubject(c.Subject, true); err != nil {
			errs = append(errs, config.FieldErrorf("subject", "%v", err))
		}
	}
	if c.Queue != "" && !validName(c.Queue) {
		errs = append(errs, config.FieldErrorf("queue", "invalid queue group %s (no spaces, '.', '*', '>', '/' or '\\')", quote(c.Queue)))
	}
	if c.Durable != "" && !validName(c.Durable) {
		errs = append(errs, config.FieldErrorf("durable", "invalid consumer name %s (no spaces, '.', '*', '>', '/' or '\\')", quote(c.Durable)))
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		errs = append(errs, config.FieldErrorf("concurrency", "must be between 1 and 10000"))
	}
	if js && c.MaxAckPending < 1 {
		errs = append(errs, config.FieldErrorf("maxAckPending", "must be at least 1"))
	}
	if js && c.AckWait < time.Second {
		errs = append(errs, config.FieldErrorf("ackWait", "must be at least 1s"))
	}
	if js && c.DeliverPolicy != DeliverAll && c.DeliverPolicy != DeliverNew {
		errs = append(errs, config.FieldErrorf("deliverPolicy", "must be all or new, not %s", quote(c.DeliverPolicy)))
	}
	if c.DeadLetterSubject != "" {
		if err := checkSubject(c.DeadLetterSubject, false); err != nil {
			errs = append(errs, config.FieldErrorf("deadLetterSubject", "%v", err))
		}
	}
	if strings.TrimSpace(c.EventType) == "" {
		errs = append(errs, config.FieldErrorf("eventType", "must not be empty"))
	}
	switch c.Format {
	case FormatCloudEvents:
	case FormatS3:
		if c.EventType != DefaultEventType {
			errs = append(errs, config.FieldErrorf("eventType", "applies to format cloudevents only: format s3 gives S3 event types"))
		}
	default:
		errs = append(errs, config.FieldErrorf("format", "must be cloudevents or s3, not %s", quote(c.Format)))
	}
	return errors.Join(errs...)
}

// validName checks a stream, consumer or queue group name.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n.*>/\\")
}

// checkSubject checks a NATS subject; wildcards are allowed when wild.
func checkSubject(s string, wild bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("invalid subject %s: no white space allowed", quote(s))
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("invalid subject %s: empty token", quote(s))
		case (t == "*" || t == ">") && !wild:
			return fmt.Errorf("invalid subject %s: wildcards are not allowed here", quote(s))
		case t == ">" && i != len(tokens)-1:
			return fmt.Errorf("invalid subject %s: '>' must be the last token", quote(s))
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("invalid subject %s: a wildcard must be a whole token", quote(s))
		}
	}
	return nil
}

// Build reads the credentials and TLS files and makes the source. It does
// not connect: Run does, and keeps trying while the broker is away.
func (c *Config) Build(_ context.Context, deps sources.Deps) (any, error) {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := c.Conn.Options("junction source "+deps.Name, log)
	if err != nil {
		return nil, err
	}
	servers, err := natsconn.ParseURLs(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	s := &Source{
		name:       deps.Name,
		log:        log,
		url:        c.URL,
		servers:    strings.Join(servers, ","),
		opts:       opts,
		stream:     c.Stream,
		subject:    c.Subject,
		queue:      c.Queue,
		durable:    c.Durable,
		workers:    c.Concurrency,
		maxAck:     c.MaxAckPending,
		ackWait:    c.AckWait,
		deliverNew: c.DeliverPolicy == DeliverNew,
		dlq:        c.DeadLetterSubject,
		eventType:  c.EventType,
		s3:         c.Format == FormatS3,
	}
	if s.durable == "" {
		s.durable = "junction-" + deps.Name
	}
	if s.workers < 1 {
		s.workers = DefaultConcurrency
	}
	return s, nil
}

// Source is a built nats source.
type Source struct {
	name       string
	log        *slog.Logger
	url        string
	servers    string // url without user info, for logs
	opts       []nats.Option
	stream     string
	subject    string
	queue      string
	durable    string
	workers    int
	maxAck     int
	ackWait    time.Duration
	deliverNew bool
	dlq        string
	eventType  string
	s3         bool // format s3

	// warned rate-limits the ingest failure warnings.
	warned atomic.Int64
}

var _ sources.Source = (*Source)(nil)

// Run connects and consumes until ctx ends, then returns nil. A broker that
// is down or goes away is waited for, with one log line per failed attempt.
func (s *Source) Run(ctx context.Context, in sources.Ingester) error {
	nc, err := nats.Connect(s.url, s.opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS %s: %w", s.servers, err)
	}
	defer func() {
		// Send the last acks and naks before closing.
		_ = nc.FlushTimeout(time.Second)
		nc.Close()
	}()
	if s.stream == "" {
		return s.runCore(ctx, nc, in)
	}
	return s.runJetStream(ctx, nc, in)
}

// runJetStream consumes the stream through the durable pull consumer,
// making it again whenever it stops (deleted, stream recreated ...).
func (s *Source) runJetStream(ctx context.Context, nc *nats.Conn, in sources.Ingester) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open JetStream: %w", err)
	}
	log := s.log.With("stream", s.stream, "durable", s.durable)
	work := make(chan jetstream.Msg)
	progress := newProgress(s.workers, s.ackWait)
	var wg sync.WaitGroup
	for i := range s.workers {
		wg.Go(func() {
			for {
				select {
				case m := <-work:
					s.handleJS(ctx, nc, js, in, m, progress.slot(i), log)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Go(func() { progress.run(ctx) })
	defer wg.Wait()

	handler := func(m jetstream.Msg) {
		select {
		case work <- m:
		case <-ctx.Done():
			_ = m.Nak() // shutting down: let another replica have it now
		}
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       s.durable,
		Description:   "junction source " + s.name,
		FilterSubject: s.subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.ackWait,
		MaxAckPending: s.maxAck,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if s.deliverNew {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	batch := min(max(2*s.workers, 64), s.maxAck)
	for attempt := 1; ; attempt++ {
		if attempt > 1 && !sleep(ctx, backoff.Delay(attempt-1, 500*time.Millisecond, 30*time.Second)) {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err := js.CreateOrUpdateConsumer(cctx, s.stream, cfg)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("set up the JetStream consumer failed; retrying", "error", err, "attempt", attempt)
			continue
		}
		check := make(chan struct{}, 1)
		cc, err := cons.Consume(handler,
			jetstream.PullMaxMessages(batch),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				log.Debug("consume", "error", err)
				select {
				case check <- struct{}{}:
				default:
				}
			}))
		if err != nil {
			log.Warn("consume failed; retrying", "error", err, "attempt", attempt)
			continue
		}
		log.Info("consuming", "filter_subject", s.subject, "concurrency", s.workers)
		attempt = 0
		for stopped := false; !stopped; {
			select {
			case <-ctx.Done():
				// Hand what is buffered to the handler, which naks it.
				cc.Drain()
				select {
				case <-cc.Closed():
				case <-time.After(5 * time.Second):
					cc.Stop()
				}
				return nil
			case <-cc.Closed():
				log.Warn("the JetStream consumer stopped; setting it up again")
				stopped = true
			case <-check:
				// Errors such as missing heartbeats: is the consumer gone?
				ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cons.Info(ictx)
				cancel()
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
					log.Warn("the JetStream consumer is gone; setting it up again", "error", err)
					cc.Stop()
					stopped = true
				}
			}
		}
	}
}

// handleJS ingests one JetStream message and settles it: Ack after a
// successful ingest, NakWithDelay after a failed one, Term for a message
// that can never be ingested.
func (s *Source) handleJS(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, in sources.Ingester, m jetstream.Msg, slot *slot, log *slog.Logger) {
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream delivery: cannot happen on a pull consumer.
		log.Error("message without JetStream metadata", "error", err, "nats_subject", m.Subject())
		_ = m.Term()
		return
	}
	w := wrap{id: meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10), subject: m.Subject(), eventType: s.eventType, time: meta.Timestamp}
	events, derr := s.read(m.Headers(), m.Data(), w, log)
	if derr != nil {
		s.reject(ctx, nc, js, in, m, meta, ReasonMalformed, derr, log)
		return
	}
	if len(events) == 0 {
		// An s3:TestEvent: acknowledged and dropped.
		_ = m.Ack()
		return
	}
	e := events[0]
	slot.start(m)
	err = in.Ingest(ctx, events)
	slot.stop()
	switch {
	case err == nil:
		if aerr := m.Ack(); aerr != nil {
			log.Debug("ack failed; the message will be redelivered", "error", aerr, "ce_id", e.ID())
		}
	case errors.Is(err, sources.ErrTooLarge):
		s.reject(ctx, nc, js, in, m, meta, ReasonTooLarge, err, log.With("ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source()))
	case ctx.Err() != nil:
		_ = m.Nak()
	default:
		delay := backoff.Delay(int(meta.NumDelivered), nakBase, nakMax)
		_ = m.NakWithDelay(delay)
		s.warnIngest(log, err, "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source(), "events", len(events),
			"stream_seq", meta.Sequence.Stream, "deliveries", meta.NumDelivered, "redeliver_in", delay.Round(time.Millisecond))
	}
}

// read makes the events of one message: the CloudEvent it holds or wraps,
// or with format s3 one event per record of the S3 notification it holds.
// No events and no error: an s3:TestEvent, to acknowledge and drop. The
// error is a *MalformedError.
func (s *Source) read(h nats.Header, data []byte, w wrap, log *slog.Logger) ([]*event.Event, error) {
	if !s.s3 {
		e, err := decode(h, data, w)
		if err != nil {
			return nil, err
		}
		return []*event.Event{e}, nil
	}
	events, test, err := s3event.Convert(data, false)
	if err != nil {
		return nil, &MalformedError{Reason: text.OneLine(err.Error(), maxReason)}
	}
	if test != nil {
		log.Debug("s3:TestEvent acknowledged and dropped", "bucket", test.Bucket, "nats_subject", w.subject)
		return nil, nil
	}
	return events, nil
}

// reject terminates a message that can never be ingested, after
// publishing it to the dead-letter subject when one is set. When that
// publish fails the message stays pending (NakWithDelay) and is tried
// again later.
func (s *Source) reject(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, in sources.Ingester, m jetstream.Msg, meta *jetstream.MsgMetadata, label string, cause error, log *slog.Logger) {
	reason := text.OneLine(cause.Error(), maxReason)
	log = log.With("reason", label, "stream_seq", meta.Sequence.Stream, "nats_subject", m.Subject())
	if s.dlq != "" {
		dm := deadLetter(m.Subject(), m.Headers(), m.Data(), s.name, label, reason)
		dm.Subject = s.dlq
		dm.Header.Set("Junction-Original-Stream", meta.Stream)
		dm.Header.Set("Junction-Original-Sequence", strconv.FormatUint(meta.Sequence.Stream, 10))
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.PublishMsg(pctx, dm, jetstream.WithMsgID("junction-dlq-"+meta.Stream+"-"+strconv.FormatUint(meta.Sequence.Stream, 10)))
		cancel()
		if err != nil {
			delay := backoff.Delay(int(meta.NumDelivered), nakBase, nakMax)
			_ = m.NakWithDelay(delay)
			log.Error("dead-letter publish failed; the message stays pending", "error", err, "dead_letter_subject", s.dlq, "cause", reason, "redeliver_in", delay.Round(time.Millisecond))
			return
		}
	}
	term := m.Term
	if termWithReason(nc.ConnectedServerVersion()) {
		term = func() error { return m.TermWithReason(label + ": " + reason) }
	}
	if err := term(); err != nil {
		log.Warn("term failed; the message will be redelivered", "error", err)
		return
	}
	in.Rejected(label)
	log.Warn("rejected message", "error", reason, "dead_letter_subject", s.dlq)
}

// termWithReason reports whether a server of version v takes a reason with
// Term (2.10.4 and later); older servers ignore such a Term.
func termWithReason(v string) bool {
	var major, minor, patch int
	if _, err := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); err != nil {
		return false
	}
	switch {
	case major != 2:
		return major > 2
	case minor != 10:
		return minor > 10
	}
	return patch >= 4
}

// deadLetter is the raw message as it goes to the dead-letter subject: its
// payload and headers (but the Nats- ones, which would steer the publish),
// and headers that say why and from where.
func deadLetter(subject string, h nats.Header, data []byte, source, label, reason string) *nats.Msg {
	dm := nats.NewMsg("")
	for k, v := range h {
		if hasPrefixFold(k, "Nats-") {
			continue
		}
		dm.Header[k] = v
	}
	dm.Header.Set("Junction-Source", source)
	dm.Header.Set("Junction-Reason", label)
	dm.Header.Set("Junction-Error", reason)
	dm.Header.Set("Junction-Original-Subject", subject)
	dm.Data = data
	return dm
}

// warnIngest logs an ingest failure at most once a second: while the
// journal refuses writes every message fails the same way.
func (s *Source) warnIngest(log *slog.Logger, err error, args ...any) {
	now := time.Now().UnixNano()
	last := s.warned.Load()
	if now-last < int64(time.Second) || !s.warned.CompareAndSwap(last, now) {
		return
	}
	log.Warn("ingest failed", append([]any{"error", err}, args...)...)
}

// runCore subscribes to the subject (in the queue group) and ingests what
// arrives. Core NATS has no acknowledgements: a message that cannot be
// ingested is logged, counted as lost and gone.
func (s *Source) runCore(ctx context.Context, nc *nats.Conn, in sources.Ingester) error {
	log := s.log.With("nats_subject", s.subject)
	work := make(chan *nats.Msg)
	var wg sync.WaitGroup
	for range s.workers {
		wg.Go(func() {
			for {
				select {
				case m := <-work:
					s.handleCore(ctx, nc, in, m, log)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	defer wg.Wait()
	handler := func(m *nats.Msg) {
		select {
		case work <- m:
		case <-ctx.Done():
		}
	}
	var sub *nats.Subscription
	var err error
	if s.queue != "" {
		sub, err = nc.QueueSubscribe(s.subject, s.queue, handler)
	} else {
		sub, err = nc.Subscribe(s.subject, handler)
	}
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", s.subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	log.Info("subscribed (core NATS, at most once)", "queue", s.queue, "concurrency", s.workers)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var dropped int
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			// Messages NATS dropped because the source fell behind.
			d, err := sub.Dropped()
			if err != nil || d <= dropped {
				continue
			}
			for range d - dropped {
				in.Rejected(ReasonLost)
			}
			log.Warn("slow consumer: NATS dropped messages", "dropped", d-dropped)
			dropped = d
		}
	}
}

func (s *Source) handleCore(ctx context.Context, nc *nats.Conn, in sources.Ingester, m *nats.Msg, log *slog.Logger) {
	w := wrap{id: uuid.NewString(), subject: m.Subject, eventType: s.eventType, time: time.Now()}
	events, derr := s.read(m.Header, m.Data, w, log)
	if derr != nil {
		reason := text.OneLine(derr.Error(), maxReason)
		if s.dlq != "" {
			dm := deadLetter(m.Subject, m.Header, m.Data, s.name, ReasonMalformed, reason)
			dm.Subject = s.dlq
			if err := nc.PublishMsg(dm); err != nil {
				log.Error("dead-letter publish failed; the message is lost", "error", err, "dead_letter_subject", s.dlq)
			}
		}
		in.Rejected(ReasonMalformed)
		log.Warn("rejected message", "reason", ReasonMalformed, "error", reason, "nats_subject", m.Subject, "dead_letter_subject", s.dlq)
		return
	}
	if len(events) == 0 {
		return // an s3:TestEvent
	}
	err := in.Ingest(ctx, events)
	if err == nil {
		return
	}
	e := events[0]
	for range events {
		in.Rejected(ReasonLost)
	}
	if ctx.Err() != nil {
		log.Warn("message lost: shutting down before it was journaled (core NATS cannot redeliver)", "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
		return
	}
	log.Warn("message lost: ingest failed and core NATS cannot redeliver", "error", err, "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
