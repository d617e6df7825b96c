// Package amqpsink is the "amqp" sink: it publishes each event to a
// RabbitMQ (AMQP 0-9-1) exchange with publisher confirms, in the CloudEvents
// AMQP protocol binding's binary or structured content mode.
//
// Deliver returns nil only once the broker confirmed the message (basic.ack).
// A nack, a lost connection or a timeout is retryable; a message that no
// queue takes (mandatory, basic.return), an exchange that does not exist or a
// message the broker refuses as too large is permanent.
//
// Concurrency: every Deliver call takes a channel of its own from a pool and
// has at most one publish in flight on it, so a basic.return or a confirm on
// that channel belongs to that call. A channel whose confirm did not arrive
// (timeout) is closed rather than reused.
package amqpsink

import (
	"context"
	"errors"
	"fmt"
	"github.com/junctionhq/junction/internal/backoff"
	"github.com/junctionhq/junction/internal/text"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/internal/amqpconn"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "amqp"

// Content modes of the CloudEvents AMQP binding.
const (
	// FormatBinary puts the attributes in cloudEvents:-prefixed headers
	// and the data in the body, with datacontenttype as content-type.
	FormatBinary = "binary"
	// FormatStructured sends the whole event as application/cloudevents+json.
	FormatStructured = "structured"
)

// DefaultFormat is the default content mode.
const DefaultFormat = FormatBinary

const (
	// reconnect backoff bounds: a Deliver call during the wait fails fast
	// with a retryable error instead of dialling again.
	reconnectMin = 200 * time.Millisecond
	reconnectMax = 5 * time.Second
	// maxErrLen bounds the error text (it becomes junctionerror on dead
	// letters).
	maxErrLen = 300
)

// AMQP reply codes the sink classifies.
const (
	codeNoRoute            = 312
	codeAccessRefused      = 403
	codeNotFound           = 404
	codePreconditionFailed = 406
)

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the amqp sink's config.
type Config struct {
	// URL is the broker's AMQP URI (amqp:// or amqps://, the vhost as its
	// path). Required. It may hold credentials: never logged nor shown in
	// errors (the host is).
	URL string `yaml:"url"`
	// Exchange is the exchange to publish to; "" (default) is the default
	// exchange, which routes by queue name.
	Exchange string `yaml:"exchange"`
	// RoutingKey is an expression over the event whose result is the
	// routing key: '"orders"' for a literal, type, "orders." + type ...
	// Required with the default exchange.
	RoutingKey config.Expr `yaml:"routingKey"`
	// Format is the content mode: binary (default) or structured.
	Format string `yaml:"format"`
	// Persistent marks messages persistent (delivery mode 2). Default true.
	Persistent bool `yaml:"persistent"`
	// Mandatory asks the broker to return a message that no queue takes;
	// the delivery then fails permanently. Default true.
	Mandatory bool `yaml:"mandatory"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Format: DefaultFormat, Persistent: true, Mandatory: true}
}

var _ sinks.BatchConfig = (*Config)(nil)

// BatchSupported is nil: with a batch key, a batch is published on one
// channel and then confirmed message by message.
func (c *Config) BatchSupported() error { return nil }

// Validate checks the config without I/O; every problem is a
// config.FieldError (or a config error at the expression) naming its key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := amqpconn.ParseURL(c.URL); err != nil {
		errs = append(errs, config.FieldErrorf("url", "%v", err))
	}
	if len(c.Exchange) > 255 {
		errs = append(errs, config.FieldErrorf("exchange", "longer than 255 bytes"))
	}
	if c.RoutingKey.IsSet() {
		if _, err := filters.CompileString("routingKey", c.RoutingKey); err != nil {
			errs = append(errs, err)
		}
	} else if c.Exchange == "" {
		errs = append(errs, config.FieldErrorf("routingKey", `required with the default exchange: an expression such as '"orders"' (the queue name, quoted) or type`))
	}
	switch c.Format {
	case FormatBinary, FormatStructured:
	default:
		errs = append(errs, config.FieldErrorf("format", "must be binary or structured, not %q", c.Format))
	}
	return errors.Join(errs...)
}

// Build compiles the routing key. It does no I/O: the first Deliver
// connects.
func (c *Config) Build(_ context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return New(c, deps)
}

// New makes an amqp sink from a validated config.
func New(c *Config, deps sinks.Deps) (*Sink, error) {
	uri, err := amqpconn.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		url:        c.URL,
		host:       amqpconn.HostPort(uri),
		name:       deps.Name,
		exchange:   c.Exchange,
		structured: c.Format == FormatStructured,
		mandatory:  c.Mandatory,
		mode:       amqp.Transient,
		backoff:    backoff.Backoff{Min: reconnectMin, Max: reconnectMax},
		log:        log,
	}
	if c.Persistent {
		s.mode = amqp.Persistent
	}
	if c.RoutingKey.IsSet() {
		rk, err := filters.CompileString("routingKey", c.RoutingKey)
		if err != nil {
			return nil, err
		}
		s.routingKey = rk
	}
	s.where = uri.Scheme + "://" + s.host + "/" + c.Exchange
	if c.Exchange == "" {
		s.where = uri.Scheme + "://" + s.host + " (default exchange)"
	}
	return s, nil
}

// Sink is the amqp sink. It is safe for concurrent use.
type Sink struct {
	url        string // secret: never logged
	host       string
	name       string
	where      string // for errors: amqp://host:port/exchange
	exchange   string
	routingKey *filters.String // nil: ""
	structured bool
	mandatory  bool
	mode       uint8
	log        *slog.Logger

	mu       sync.Mutex
	conn     *amqp.Connection
	free     []*pubChannel
	closed   bool
	backoff  backoff.Backoff // between failed dials; reset by a success
	nextDial time.Time
	dialErr  error
}

var _ sinks.BatchSink = (*Sink)(nil)

// pubChannel is a confirm-mode channel used by one Deliver at a time.
type pubChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

// errClosed is returned by Deliver after Close.
var errClosed = errors.New("sink closed")

// Deliver publishes e and waits for the broker's confirm; see the package
// doc for how failures are classified. ctx bounds the attempt.
func (s *Sink) Deliver(ctx context.Context, e *event.Event) error {
	key, msg, err := s.publishing(e)
	if err != nil {
		return err
	}
	setTrace(ctx, &msg)
	pc, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, s.exchange, key, s.mandatory, false, msg)
	if err != nil {
		s.discard(pc)
		if ctx.Err() != nil {
			return s.timeout(ctx)
		}
		return s.failf(sinks.Retryable(err, 0), "publish: %v", err)
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		// The confirm may still come: this channel cannot be reused, or a
		// late basic.return would be taken for the next message's.
		s.discard(pc)
		return s.timeout(ctx)
	}
	if dc.Acked() {
		// RabbitMQ sends basic.return before the basic.ack of the same
		// message, and the channel's reader hands both over in that order.
		select {
		case r, ok := <-pc.returns:
			if !ok {
				// Closed after the ack: the message was taken, but the
				// channel is done.
				s.discard(pc)
				return nil
			}
			s.release(pc)
			return s.failf(sinks.Permanent(errors.New(r.ReplyText)), "no queue bound for routing key %q (%d %s)", text.OneLine(key, 100), r.ReplyCode, r.ReplyText)
		default:
		}
		s.release(pc)
		return nil
	}
	// A channel that closes nacks what it had in flight; the close says
	// why (it is sent before the pending confirms are released).
	select {
	case cerr, ok := <-pc.closes:
		s.discard(pc)
		if !ok || cerr == nil {
			return s.failf(sinks.Retryable(amqp.ErrClosed, 0), "channel closed before the broker confirmed the message")
		}
		return s.channelError(cerr)
	default:
	}
	if pc.ch.IsClosed() {
		s.discard(pc)
		return s.failf(sinks.Retryable(amqp.ErrClosed, 0), "channel closed before the broker confirmed the message")
	}
	s.release(pc)
	return s.failf(sinks.Retryable(errors.New("nack"), 0), "broker nacked the message (basic.nack)")
}

// publishing makes the routing key and the message of e. Its errors are
// permanent.
func (s *Sink) publishing(e *event.Event) (string, amqp.Publishing, error) {
	key := ""
	if s.routingKey != nil {
		k, err := s.routingKey.Eval(filters.NewEnv(e))
		if err != nil {
			return "", amqp.Publishing{}, s.fail(sinks.Permanent(err))
		}
		key = k
	}
	if len(key) > 255 {
		return "", amqp.Publishing{}, s.failf(sinks.Permanent(errors.New("routing key too long")), "routing key longer than 255 bytes (%d)", len(key))
	}
	msg, err := s.message(e)
	if err != nil {
		return "", amqp.Publishing{}, s.fail(sinks.Permanent(fmt.Errorf("encode event: %w", err)))
	}
	return key, msg, nil
}

// DeliverBatch publishes events on one confirm-mode channel, one after the
// other without waiting, then waits for the broker's confirm of each: every
// event gets its own result, classified as for Deliver. A message returned
// as unroutable (mandatory) is matched to its event by message-id (the
// event id) and routing key; events alike in both are routed alike. ctx
// bounds the whole batch.
func (s *Sink) DeliverBatch(ctx context.Context, events []*event.Event) []error {
	errs := make([]error, len(events))
	keys := make([]string, len(events))
	dcs := make([]*amqp.DeferredConfirmation, len(events))
	msgs := make([]amqp.Publishing, len(events))
	todo := 0
	for i, e := range events {
		keys[i], msgs[i], errs[i] = s.publishing(e)
		if errs[i] == nil {
			todo++
		}
	}
	if todo == 0 {
		return errs
	}
	pc, err := s.acquire(ctx)
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	// The channel's reader hands basic.returns over one at a time and
	// waits for each to be taken: take them while the batch is in flight.
	var returns []amqp.Return
	stop, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case r, ok := <-pc.returns:
				if !ok {
					return
				}
				returns = append(returns, r)
			case <-stop:
				for {
					select {
					case r, ok := <-pc.returns:
						if !ok {
							return
						}
						returns = append(returns, r)
					default:
						return
					}
				}
			}
		}
	}()
	healthy := true
	var pubErr error
	for i := range events {
		if errs[i] != nil {
			continue
		}
		if pubErr != nil {
			errs[i] = pubErr
			continue
		}
		dcs[i], err = pc.ch.PublishWithDeferredConfirmWithContext(ctx, s.exchange, keys[i], s.mandatory, false, msgs[i])
		if err != nil {
			healthy = false
			if ctx.Err() != nil {
				pubErr = s.timeout(ctx)
			} else {
				pubErr = s.failf(sinks.Retryable(err, 0), "publish: %v", err)
			}
			errs[i] = pubErr
		}
	}
	acked := make([]bool, len(events))
	for i, dc := range dcs {
		if dc == nil {
			continue
		}
		select {
		case <-dc.Done():
			acked[i] = dc.Acked()
		case <-ctx.Done():
			// Confirms may still come: the channel cannot be reused.
			healthy = false
			errs[i] = s.timeout(ctx)
		}
	}
	close(stop)
	<-drained
	var closeErr error
	select {
	case cerr, ok := <-pc.closes:
		healthy = false
		if ok && cerr != nil {
			closeErr = s.channelError(cerr)
		}
	default:
	}
	if pc.ch.IsClosed() {
		healthy = false
	}
	for i, dc := range dcs {
		if dc == nil || errs[i] != nil || acked[i] {
			continue
		}
		switch {
		case closeErr != nil:
			errs[i] = closeErr
		case !healthy:
			errs[i] = s.failf(sinks.Retryable(amqp.ErrClosed, 0), "channel closed before the broker confirmed the message")
		default:
			errs[i] = s.failf(sinks.Retryable(errors.New("nack"), 0), "broker nacked the message (basic.nack)")
		}
	}
	returned := make([]bool, len(events))
	for _, r := range returns {
		for i, dc := range dcs {
			if dc != nil && !returned[i] && acked[i] && msgs[i].MessageId == r.MessageId && keys[i] == r.RoutingKey {
				returned[i] = true
				errs[i] = s.failf(sinks.Permanent(errors.New(r.ReplyText)), "no queue bound for routing key %q (%d %s)", text.OneLine(keys[i], 100), r.ReplyCode, r.ReplyText)
				break
			}
		}
	}
	if healthy {
		s.release(pc)
	} else {
		s.discard(pc)
	}
	return errs
}

// channelError classifies the error that closed a channel or connection.
func (s *Sink) channelError(e *amqp.Error) error {
	switch e.Code {
	case codeNotFound:
		return s.failf(sinks.Permanent(e), "exchange not found: %d %s", e.Code, e.Reason)
	case codePreconditionFailed:
		// For instance a message larger than the broker's max_message_size.
		return s.failf(sinks.Permanent(e), "broker refused the message: %d %s", e.Code, e.Reason)
	case codeAccessRefused:
		return s.failf(sinks.Permanent(e), "access refused: %d %s", e.Code, e.Reason)
	}
	return s.failf(sinks.Retryable(e, 0), "connection lost: %d %s", e.Code, e.Reason)
}

func (s *Sink) timeout(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return s.failf(sinks.Retryable(ctx.Err(), 0), "no confirm from the broker within the attempt's timeout")
	}
	return s.failf(sinks.Retryable(ctx.Err(), 0), "cancelled before the broker confirmed the message")
}

// acquire returns a free channel, opening the connection (at most once per
// backoff step) and the channel when needed.
func (s *Sink) acquire(ctx context.Context) (*pubChannel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.fail(sinks.Retryable(errClosed, 0))
	}
	for len(s.free) > 0 {
		pc := s.free[len(s.free)-1]
		s.free[len(s.free)-1] = nil
		s.free = s.free[:len(s.free)-1]
		if pc.conn == s.conn && !pc.ch.IsClosed() {
			return pc, nil
		}
		_ = pc.ch.Close()
	}
	if s.conn == nil || s.conn.IsClosed() {
		if err := s.connectLocked(ctx); err != nil {
			return nil, err
		}
	}
	ch, err := s.conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
		if err != nil {
			_ = ch.Close()
		}
	}
	if err != nil {
		// The connection is likely gone: the next call reconnects.
		_ = s.conn.Close()
		return nil, s.failf(sinks.Retryable(err, 0), "open channel: %v", err)
	}
	return &pubChannel{
		conn:    s.conn,
		ch:      ch,
		returns: ch.NotifyReturn(make(chan amqp.Return, 1)),
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
	}, nil
}

// connectLocked dials the broker unless the backoff says to wait; s.mu is
// held.
func (s *Sink) connectLocked(ctx context.Context) error {
	now := time.Now()
	if wait := s.nextDial.Sub(now); wait > 0 {
		return s.failf(sinks.Retryable(s.dialErr, wait), "connect to %s: %v (next attempt in %s)", s.host, s.dialErr, wait.Round(time.Millisecond))
	}
	conn, err := amqpconn.Dial(ctx, s.url, "junction sink "+s.name)
	if err != nil {
		wait := s.backoff.Next()
		s.nextDial, s.dialErr = now.Add(wait), err
		s.log.Warn("amqp sink cannot connect", "host", s.host, "err", err, "retry_in", wait.Round(time.Millisecond))
		return s.failf(sinks.Retryable(err, 0), "connect to %s: %v", s.host, err)
	}
	if s.dialErr != nil || s.conn != nil {
		s.log.Info("amqp sink connected", "host", s.host)
	}
	s.backoff.Reset()
	s.nextDial, s.dialErr = time.Time{}, nil
	s.conn = conn
	lost := conn.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		if e, ok := <-lost; ok && e != nil {
			s.log.Warn("amqp sink lost its connection; reconnecting on the next delivery", "host", s.host, "err", e)
		}
	}()
	return nil
}

// release puts a healthy channel back in the pool.
func (s *Sink) release(pc *pubChannel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || pc.conn != s.conn || pc.ch.IsClosed() {
		_ = pc.ch.Close()
		return
	}
	s.free = append(s.free, pc)
}

// discard closes a channel that must not be reused.
func (s *Sink) discard(pc *pubChannel) { _ = pc.ch.Close() }

// Close closes the connection. No Deliver runs after Close.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.free = nil
	if s.conn != nil && !s.conn.IsClosed() {
		return s.conn.Close()
	}
	return nil
}

// fail wraps a classified error with where it was sent.
func (s *Sink) fail(err error) error { return s.failf(err, "%v", err) }

// failf returns an error reading "amqp://host:port/exchange: msg" on one
// bounded line that unwraps to err, which carries the classification.
func (s *Sink) failf(err error, format string, args ...any) error {
	msg := s.where + ": " + fmt.Sprintf(format, args...)
	return &sinks.Failure{Msg: text.OneLine(msg, maxErrLen), Err: err}
}

// setTrace writes the trace context of the delivery attempt of ctx, if
// any, as the traceparent and tracestate headers (W3C Trace Context, as
// OpenTelemetry's AMQP instrumentations read them), besides the event's
// own cloudEvents:traceparent.
func setTrace(ctx context.Context, p *amqp.Publishing) {
	tp, ts := sinks.TraceOf(ctx)
	if tp == "" {
		return
	}
	if p.Headers == nil {
		p.Headers = amqp.Table{}
	}
	p.Headers["traceparent"] = tp
	if ts != "" {
		p.Headers["tracestate"] = ts
	}
}
