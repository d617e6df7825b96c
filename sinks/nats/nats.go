// Package natssink is the "nats" sink type: it publishes each event to a
// NATS subject computed per event, in the CloudEvents NATS protocol
// binding's binary or structured mode. With JetStream (the default) a
// delivery succeeds only once a stream stored the message (PubAck), and the
// stream drops duplicates of a retried delivery by Nats-Msg-Id.
package natssink

import (
	"context"
	"errors"
	"fmt"
	"github.com/junctionhq/junction/internal/natsconn"
	"github.com/junctionhq/junction/internal/text"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "nats"

// Content modes of the CloudEvents NATS binding.
const (
	// FormatBinary puts the attributes in ce- headers and the data in the
	// payload, with datacontenttype as the content-type header.
	FormatBinary = "binary"
	// FormatStructured sends the whole event as application/cloudevents+json.
	FormatStructured = "structured"
)

// DefaultFormat is the content mode when format is not set.
const DefaultFormat = FormatBinary

// maxErrLen bounds an error's text (it becomes junctionerror on dead
// letters).
const maxErrLen = 300

// flushTimeout bounds a core NATS flush when ctx has no deadline.
const flushTimeout = 10 * time.Second

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the nats sink's config.
type Config struct {
	natsconn.Conn `yaml:",inline"`
	// Subject is an expression over the event whose result is the subject
	// to publish to. A fixed subject is a quoted string: '"orders.created"'.
	// Required.
	Subject config.Expr `yaml:"subject"`
	// JetStream publishes with a PubAck from the stream that captures the
	// subject (default true); false publishes with core NATS.
	JetStream bool `yaml:"jetstream"`
	// Format is the content mode: binary (default) or structured.
	Format string `yaml:"format"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Conn: natsconn.Conn{URL: natsconn.DefaultURL}, JetStream: true, Format: DefaultFormat}
}

var _ sinks.BatchConfig = (*Config)(nil)

// BatchSupported is nil: with a batch key, a batch is published at once
// and then confirmed (PubAcks, or one flush with core NATS).
func (c *Config) BatchSupported() error { return nil }

// Validate checks the config without I/O and compiles the subject
// expression; every problem names its key (expression errors their
// position).
func (c *Config) Validate() error {
	errs := c.Conn.Validate()
	switch c.Format {
	case FormatBinary, FormatStructured:
	default:
		errs = append(errs, config.FieldErrorf("format", "must be binary or structured, not %q", c.Format))
	}
	if _, err := c.compileSubject(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var (
	// subjectLike is text that reads as a NATS subject: tokens of
	// letters, digits, '_', '-', '$', '*' and '>' separated by dots.
	subjectLike = regexp.MustCompile(`^[A-Za-z0-9_$*>-]+(\.[A-Za-z0-9_$*>-]+)*$`)
	// exprPath is a name or a path that expressions are written as:
	// tenant, data.customer.region.
	exprPath = regexp.MustCompile(`^(data|\$env)(\.[A-Za-z_][A-Za-z0-9_]*)*$|^[A-Za-z_][A-Za-z0-9_]*$`)
	number   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
)

// compileSubject compiles the subject expression, refusing a bare subject
// (orders.created) that would silently be read as an expression.
func (c *Config) compileSubject() (*filters.String, error) {
	if !c.Subject.IsSet() || c.Subject.Null {
		return nil, config.FieldErrorf("subject", `required: an expression such as '"orders.created"' (a fixed subject, quoted) or '"orders." + type'`)
	}
	src := strings.TrimSpace(c.Subject.Src)
	if subjectLike.MatchString(src) && !exprPath.MatchString(src) && !number.MatchString(src) {
		return nil, config.Errors{{Pos: c.Subject.Pos, Msg: fmt.Sprintf(
			`subject: %s is an expression, not a fixed subject; write a fixed subject as a quoted string inside the YAML value: '"%s"'`, src, src)}}
	}
	if lit, ok := literal(src); ok {
		if err := checkSubject(lit); err != nil {
			return nil, config.Errors{{Pos: c.Subject.Pos, Msg: "subject: " + err.Error()}}
		}
	}
	return filters.CompileString("subject", c.Subject)
}

// literal returns the value of a string literal expression ("a.b" or
// 'a.b').
func literal(src string) (string, bool) {
	if len(src) < 2 {
		return "", false
	}
	switch {
	case src[0] == '"' && src[len(src)-1] == '"':
		s, err := strconv.Unquote(src)
		return s, err == nil
	case src[0] == '\'' && src[len(src)-1] == '\'' && !strings.ContainsAny(src[1:len(src)-1], `'\`):
		return src[1 : len(src)-1], true
	}
	return "", false
}

// checkSubject checks a subject to publish to: no white space, no
// wildcards, no empty token.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if c := s[i]; c <= ' ' || c == 0x7F {
				return fmt.Errorf("invalid subject %s: white space and control characters are not allowed", quote(s))
			}
			continue
		}
		switch tok := s[start:i]; tok {
		case "":
			return fmt.Errorf("invalid subject %s: empty token", quote(s))
		case "*", ">":
			return fmt.Errorf("invalid subject %s: wildcards cannot be published to", quote(s))
		}
		start = i + 1
	}
	return nil
}

// Build compiles the subject, reads the credentials and TLS files and
// connects. A broker that is down is waited for in the background:
// deliveries fail as retryable until it is up.
func (c *Config) Build(ctx context.Context, deps sinks.Deps) (sinks.Sink, error) {
	subject, err := c.compileSubject()
	if err != nil {
		return nil, fmt.Errorf("compile subject: %w", err)
	}
	servers, err := natsconn.ParseURLs(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := c.Conn.Options("junction sink "+deps.Name, log)
	if err != nil {
		return nil, err
	}
	// Fail a publish at once while disconnected instead of buffering it:
	// the router retries it from the journal.
	opts = append(opts, nats.ReconnectBufSize(-1))
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", strings.Join(servers, ","), err)
	}
	s := &Sink{
		name:       deps.Name,
		nc:         nc,
		subject:    subject,
		structured: c.Format == FormatStructured,
		servers:    strings.Join(servers, ","),
	}
	if c.JetStream {
		s.js, err = jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("open JetStream: %w", err)
		}
	}
	return s, nil
}

// Sink is the nats sink. It is safe for concurrent use.
type Sink struct {
	name       string
	nc         *nats.Conn
	js         jetstream.JetStream // nil: core NATS
	subject    *filters.String
	structured bool
	servers    string
}

var _ sinks.BatchSink = (*Sink)(nil)

// Deliver publishes e and returns nil once the broker confirmed it: the
// stream's PubAck with JetStream, the server's answer to a flush with core
// NATS. A subject or encoding error is permanent, and so is a message over
// the server's max_payload or the stream's max_msg_size; anything else is
// retryable.
func (s *Sink) Deliver(ctx context.Context, e *event.Event) error {
	m, err := s.message(e)
	if err != nil {
		return err
	}
	setTrace(ctx, m)
	subject := m.Subject
	if s.js != nil {
		_, err := s.js.PublishMsg(ctx, m, jetstream.WithMsgID(s.msgID(subject, e)))
		if err != nil {
			return s.classify(ctx, subject, err)
		}
		return nil
	}
	if err := s.nc.PublishMsg(m); err != nil {
		return s.classify(ctx, subject, err)
	}
	fctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if err := s.nc.FlushWithContext(fctx); err != nil {
		return s.classify(ctx, subject, err)
	}
	return nil
}

// message makes the message of e: its subject and its encoding. Its
// errors are permanent.
func (s *Sink) message(e *event.Event) (*nats.Msg, error) {
	subject, err := s.subject.Eval(filters.NewEnv(e))
	if err != nil {
		return nil, failf(sinks.Permanent(err), "%v", err)
	}
	if err := checkSubject(subject); err != nil {
		return nil, failf(sinks.Permanent(err), "subject: %v", err)
	}
	var m *nats.Msg
	if s.structured {
		m, err = encodeStructured(subject, e)
	} else {
		m, err = encodeBinary(subject, e)
	}
	if err != nil {
		return nil, failf(sinks.Permanent(err), "encode event: %v", err)
	}
	return m, nil
}

// DeliverBatch publishes events together and returns one result per
// event, classified as for Deliver. With JetStream every message is
// published asynchronously, then each PubAck is waited for (each event
// gets its own PubAck or error); with core NATS the messages are published
// and one flush confirms them all. ctx bounds the whole batch.
func (s *Sink) DeliverBatch(ctx context.Context, events []*event.Event) []error {
	errs := make([]error, len(events))
	msgs := make([]*nats.Msg, len(events))
	for i, e := range events {
		msgs[i], errs[i] = s.message(e)
	}
	if s.js != nil {
		acks := make([]jetstream.PubAckFuture, len(events))
		for i, m := range msgs {
			if m == nil {
				continue
			}
			acks[i], errs[i] = s.js.PublishMsgAsync(m, jetstream.WithMsgID(s.msgID(m.Subject, events[i])))
			if errs[i] != nil {
				errs[i] = s.classify(ctx, m.Subject, errs[i])
			}
		}
		for i, f := range acks {
			if f == nil || errs[i] != nil {
				continue
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				errs[i] = s.classify(ctx, msgs[i].Subject, err)
			case <-ctx.Done():
				errs[i] = s.classify(ctx, msgs[i].Subject, ctx.Err())
			}
		}
		return errs
	}
	published := make([]bool, len(events))
	for i, m := range msgs {
		if m == nil {
			continue
		}
		if err := s.nc.PublishMsg(m); err != nil {
			errs[i] = s.classify(ctx, m.Subject, err)
			continue
		}
		published[i] = true
	}
	fctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if err := s.nc.FlushWithContext(fctx); err != nil {
		for i, ok := range published {
			if ok {
				errs[i] = s.classify(ctx, msgs[i].Subject, err)
			}
		}
	}
	return errs
}

// msgID is the Nats-Msg-Id of e published to subject: the sink's name, the
// subject, and the event's source and id. A retried delivery has the same
// one, so the stream's duplicate window drops it; the same event sent by
// another nats sink, or to another subject of the same stream, is not a
// duplicate (the window is per stream, not per subject).
func (s *Sink) msgID(subject string, e *event.Event) string {
	return s.name + " " + subject + " " + e.Source() + " " + e.ID()
}

// classify turns a publish error into a permanent or retryable one with a
// one-line text.
func (s *Sink) classify(ctx context.Context, subject string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return failf(sinks.Permanent(err), "publish to %s: message larger than the server's max_payload (%d bytes)", subject, s.nc.MaxPayload())
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return failf(sinks.Permanent(err), "publish to %s: message larger than the stream's max_msg_size", subject)
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return failf(sinks.Retryable(err, 0), "publish to %s: no JetStream stream captures this subject (create one, or set jetstream: false)", subject)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		if s.js != nil {
			return failf(sinks.Retryable(err, 0), "publish to %s: no PubAck before the delivery timeout", subject)
		}
		return failf(sinks.Retryable(err, 0), "publish to %s: no answer from the server before the delivery timeout", subject)
	case errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionReconnecting), !s.nc.IsConnected():
		return failf(sinks.Retryable(err, 0), "publish to %s: not connected to NATS %s", subject, s.servers)
	}
	return failf(sinks.Retryable(err, 0), "publish to %s: %v", subject, err)
}

func failf(err error, format string, args ...any) error {
	return &sinks.Failure{Msg: text.OneLine(fmt.Sprintf(format, args...), maxErrLen), Err: err}
}

// Close closes the connection. No Deliver runs after Close.
func (s *Sink) Close() error {
	s.nc.Close()
	return nil
}

// quote quotes s for an error message, bounded.
func quote(s string) string {
	return fmt.Sprintf("%q", text.OneLine(s, 64))
}

// setTrace writes the trace context of the delivery attempt of ctx, if
// any, as the traceparent and tracestate headers (W3C Trace Context, as
// OpenTelemetry's NATS instrumentations read them), besides the event's
// own ce-traceparent.
func setTrace(ctx context.Context, m *nats.Msg) {
	tp, ts := sinks.TraceOf(ctx)
	if tp == "" {
		return
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header["traceparent"] = []string{tp}
	if ts != "" {
		m.Header["tracestate"] = []string{ts}
	}
}
