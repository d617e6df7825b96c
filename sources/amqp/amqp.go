// Package amqpsource is the "amqp" source: it consumes a RabbitMQ (AMQP
// 0-9-1) queue with manual acknowledgements and hands each message to the
// router as a CloudEvent.
//
// A message is acknowledged only after the router's Ingest returned nil,
// that is once its deliveries are in the journal. When Ingest fails the
// message is negatively acknowledged with requeue after a short backoff, so
// the broker delivers it again; a malformed CloudEvent is rejected without
// requeue, so that the queue's dead-letter exchange (x-dead-letter-exchange)
// takes it. When the connection is lost the source reconnects with a capped,
// jittered backoff; the broker redelivers what was not acknowledged on the
// dead connection. Delivery is therefore at least once.
//
// Messages follow the CloudEvents AMQP protocol binding: binary mode (the
// attributes as "cloudEvents:"-prefixed headers, datacontenttype as the
// content-type property), structured mode (content-type
// application/cloudevents+json) and batches (application/cloudevents-batch+json).
// Any other message is wrapped into a new CloudEvent. With format s3 each
// message is an S3 event notification instead (as MinIO's AMQP target
// publishes them) and every record becomes one S3 CloudEvent.
package amqpsource

import (
	"context"
	"errors"
	"fmt"
	"github.com/junctionhq/junction/internal/backoff"
	"github.com/junctionhq/junction/internal/text"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/amqpconn"
	"github.com/junctionhq/junction/sources"
)

// Type is the source type name in the config.
const Type = "amqp"

// Defaults of Config.
const (
	DefaultPrefetch  = 64
	DefaultEventType = "com.rabbitmq.message"
)

// Formats of the messages (the format key).
const (
	// FormatCloudEvents reads CloudEvents by the AMQP protocol binding and
	// wraps any other message.
	FormatCloudEvents = "cloudevents"
	// FormatS3 reads S3 event notifications (MinIO's AMQP target): one
	// CloudEvent per record.
	FormatS3 = "s3"
)

// Reason labels passed to sources.Ingester.Rejected.
const (
	ReasonMalformed = sources.ReasonMalformed
	ReasonTooLarge  = sources.ReasonTooLarge
)

// Backoff bounds. Reconnects wait from reconnectMin up to reconnectMax;
// after a failed Ingest, messages are held from ingestMin up to ingestMax
// before they are requeued. Every wait is jittered.
const (
	reconnectMin = 200 * time.Millisecond
	reconnectMax = 30 * time.Second
	ingestMin    = 100 * time.Millisecond
	ingestMax    = 5 * time.Second
	// maxBatch bounds how many messages go to one Ingest call.
	maxBatch = 256
)

func init() {
	sources.Register(Type, func() sources.Config { return NewConfig() })
}

// Config is the amqp source's config.
type Config struct {
	// URL is the broker's AMQP URI, amqp:// or amqps://, with the vhost as
	// its path. Required. It may hold credentials: it is never logged nor
	// put in errors (the host is).
	URL string `yaml:"url"`
	// Queue is the queue to consume. Required.
	Queue string `yaml:"queue"`
	// Prefetch is how many unacknowledged messages the broker sends ahead
	// (basic.qos). Default 64.
	Prefetch int `yaml:"prefetch"`
	// ConsumerTag names the consumer on the broker. Default
	// "junction-<source name>".
	ConsumerTag string `yaml:"consumerTag"`
	// Declare, when set, declares the queue (durable) before consuming.
	Declare *Declare `yaml:"declare"`
	// EventType is the CloudEvents type of wrapped messages (messages that
	// are not CloudEvents). Default "com.rabbitmq.message". (The key cannot
	// be "type": that names the source type.)
	EventType string `yaml:"eventType"`
	// Format is how messages are read: cloudevents (default) or s3.
	Format string `yaml:"format"`
}

// Declare is how the source declares its queue.
type Declare struct {
	// Arguments are the queue's x-arguments, e.g. x-queue-type: quorum,
	// x-dead-letter-exchange: dead.
	Arguments map[string]any `yaml:"arguments"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Prefetch: DefaultPrefetch, EventType: DefaultEventType, Format: FormatCloudEvents}
}

var _ sources.Config = (*Config)(nil)

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := amqpconn.ParseURL(c.URL); err != nil {
		errs = append(errs, config.FieldErrorf("url", "%v", err))
	}
	switch {
	case c.Queue == "":
		errs = append(errs, config.FieldErrorf("queue", "required: the queue to consume"))
	case len(c.Queue) > 255:
		errs = append(errs, config.FieldErrorf("queue", "longer than 255 bytes"))
	}
	if c.Prefetch < 1 || c.Prefetch > 65535 {
		errs = append(errs, config.FieldErrorf("prefetch", "must be between 1 and 65535, not %d", c.Prefetch))
	}
	if len(c.ConsumerTag) > 255 {
		errs = append(errs, config.FieldErrorf("consumerTag", "longer than 255 bytes"))
	}
	if strings.TrimSpace(c.EventType) == "" {
		errs = append(errs, config.FieldErrorf("eventType", "must be a non-empty CloudEvents type"))
	}
	switch c.Format {
	case FormatCloudEvents, "": // "": a Config made without NewConfig
	case FormatS3:
		if c.EventType != DefaultEventType {
			errs = append(errs, config.FieldErrorf("eventType", "applies to format cloudevents only: format s3 gives S3 event types"))
		}
	default:
		errs = append(errs, config.FieldErrorf("format", "must be cloudevents or s3, not %q", text.OneLine(c.Format, 64)))
	}
	if c.Declare != nil {
		keys := make([]string, 0, len(c.Declare.Arguments))
		for k := range c.Declare.Arguments {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, err := tableValue(c.Declare.Arguments[k]); err != nil {
				errs = append(errs, config.FieldErrorf("declare.arguments."+k, "%v", err))
			}
		}
	}
	return errors.Join(errs...)
}

// tableValue converts a YAML value into an AMQP field value.
func tableValue(v any) (any, error) {
	switch v := v.(type) {
	case string, bool, int64, float64:
		return v, nil
	case int:
		return int64(v), nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := tableValue(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case map[string]any:
		t := amqp.Table{}
		for k, x := range v {
			y, err := tableValue(x)
			if err != nil {
				return nil, err
			}
			t[k] = y
		}
		return t, nil
	case nil:
		return nil, errors.New("needs a value")
	}
	return nil, fmt.Errorf("unsupported value %v", v)
}

// Build makes the source. It does no I/O: Run connects.
func (c *Config) Build(_ context.Context, deps sources.Deps) (any, error) {
	uri, err := amqpconn.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		url:      c.URL,
		host:     amqpconn.HostPort(uri),
		queue:    c.Queue,
		prefetch: c.Prefetch,
		tag:      c.ConsumerTag,
		typ:      c.EventType,
		s3:       c.Format == FormatS3,
		name:     deps.Name,
		log:      log,
	}
	if s.prefetch < 1 {
		s.prefetch = DefaultPrefetch
	}
	if s.typ == "" {
		s.typ = DefaultEventType
	}
	if s.tag == "" && deps.Name != "" {
		s.tag = "junction-" + deps.Name
	}
	s.source = (&url.URL{Scheme: uri.Scheme, Host: s.host, Path: "/" + c.Queue}).String()
	if c.Declare != nil {
		s.declare = true
		s.args = amqp.Table{}
		for k, v := range c.Declare.Arguments {
			tv, err := tableValue(v)
			if err != nil {
				return nil, fmt.Errorf("declare.arguments.%s: %w", k, err)
			}
			s.args[k] = tv
		}
	}
	return s, nil
}

// Source is a built amqp source.
type Source struct {
	url      string // secret: never logged
	host     string // host:port, for logs and errors
	queue    string
	prefetch int
	tag      string
	typ      string
	s3       bool // format s3
	name     string
	source   string // CloudEvents source of wrapped messages
	declare  bool
	args     amqp.Table
	log      *slog.Logger
}

var _ sources.Source = (*Source)(nil)

// Run consumes the queue until ctx ends, reconnecting with backoff when the
// connection is lost or cannot be made. It returns nil when ctx ended.
func (s *Source) Run(ctx context.Context, in sources.Ingester) error {
	bo := backoff.Backoff{Min: reconnectMin, Max: reconnectMax}
	for {
		err := s.session(ctx, in, &bo)
		if ctx.Err() != nil {
			return nil
		}
		wait := bo.Next()
		s.log.Warn("amqp source disconnected; reconnecting", "host", s.host, "queue", s.queue, "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session connects, consumes and handles deliveries until the connection
// or the consumer ends (the error says why) or ctx ends.
func (s *Source) session(ctx context.Context, in sources.Ingester, bo *backoff.Backoff) error {
	conn, err := amqpconn.Dial(ctx, s.url, "junction source "+s.name)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.host, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	if s.declare {
		if _, err := ch.QueueDeclare(s.queue, true, false, false, false, s.args); err != nil {
			return fmt.Errorf("declare queue %q: %w", s.queue, err)
		}
	}
	deliveries, err := ch.Consume(s.queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume queue %q: %w", s.queue, err)
	}
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	bo.Reset()
	s.log.Info("amqp source consuming", "host", s.host, "queue", s.queue, "prefetch", s.prefetch)

	h := handler{s: s, ch: ch, in: in, bo: backoff.Backoff{Min: ingestMin, Max: ingestMax}}
	batch := make([]amqp.Delivery, 0, min(s.prefetch, maxBatch))
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return closeReason(connClosed, chClosed)
			}
			batch = append(batch[:0], d)
		drain:
			for len(batch) < cap(batch) {
				select {
				case d, ok := <-deliveries:
					if !ok {
						break drain
					}
					batch = append(batch, d)
				default:
					break drain
				}
			}
			if err := h.handle(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			clear(batch)
		}
	}
}

// closeReason says why the delivery channel closed.
func closeReason(conn, ch <-chan *amqp.Error) error {
	for _, c := range []<-chan *amqp.Error{conn, ch} {
		select {
		case e, ok := <-c:
			if ok && e != nil {
				return fmt.Errorf("connection lost: %w", e)
			}
		default:
		}
	}
	return errors.New("consumer cancelled by the broker (queue deleted?)")
}

// handler settles the deliveries of one channel.
type handler struct {
	s  *Source
	ch *amqp.Channel
	in sources.Ingester
	bo backoff.Backoff // after failed Ingest calls
}

// item is one delivery and the events made from it (none for an
// s3:TestEvent, which is acknowledged with the others).
type item struct {
	d      *amqp.Delivery
	events []*event.Event
}

// handle decodes a batch of deliveries, rejects the malformed ones,
// ingests the rest in one call and settles them. Deliveries arrive in
// delivery-tag order and every earlier one is settled, so one ack (or
// nack) with multiple=true settles the batch. An error means the channel
// is unusable.
func (h *handler) handle(ctx context.Context, batch []amqp.Delivery) error {
	items := make([]item, 0, len(batch))
	n := 0
	for i := range batch {
		d := &batch[i]
		events, err := h.s.decode(d)
		if err != nil {
			if err := h.reject(d, ReasonMalformed, err.Error()); err != nil {
				return err
			}
			continue
		}
		items = append(items, item{d: d, events: events})
		n += len(events)
	}
	if len(items) == 0 {
		return nil
	}
	if n == 0 {
		// Only s3:TestEvents: nothing to ingest.
		if err := h.ch.Ack(items[len(items)-1].d.DeliveryTag, true); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		return nil
	}
	events := items[0].events
	if len(items) > 1 {
		events = make([]*event.Event, 0, n)
		for _, it := range items {
			events = append(events, it.events...)
		}
	}
	return h.ingest(ctx, items, events)
}

// ingest ingests events (those of items) and settles items.
func (h *handler) ingest(ctx context.Context, items []item, events []*event.Event) error {
	last := items[len(items)-1].d.DeliveryTag
	var err error
	if len(events) > 0 { // none: an s3:TestEvent, acknowledged
		err = h.in.Ingest(ctx, events)
	}
	if err == nil {
		h.bo.Reset()
		if err := h.ch.Ack(last, true); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		return nil
	}
	if ctx.Err() != nil {
		// Shutting down: closing the connection requeues the messages.
		return ctx.Err()
	}
	if errors.Is(err, sources.ErrTooLarge) {
		if len(items) == 1 {
			return h.reject(items[0].d, ReasonTooLarge, err.Error())
		}
		// Find the culprit: ingest the messages one at a time.
		for _, it := range items {
			if err := h.ingest(ctx, []item{it}, it.events); err != nil {
				return err
			}
		}
		return nil
	}
	wait := h.bo.Next()
	e := events[0]
	h.s.log.Warn("ingest failed; messages will be requeued", "queue", h.s.queue, "messages", len(items),
		"ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source(), "err", err, "requeue_in", wait.Round(time.Millisecond))
	t := time.NewTimer(wait)
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
	}
	if err := h.ch.Nack(last, true, true); err != nil {
		return fmt.Errorf("nack: %w", err)
	}
	return nil
}

// reject rejects d without requeue (the queue's dead-letter exchange takes
// it), logs why in one line and counts it.
func (h *handler) reject(d *amqp.Delivery, label, reason string) error {
	h.s.log.Warn("rejected message: dead-lettered by the broker if the queue has a dead-letter exchange",
		"queue", h.s.queue, "message_id", text.OneLine(d.MessageId, 128), "delivery_tag", d.DeliveryTag, "reason", label, "detail", text.OneLine(reason, maxReason))
	h.in.Rejected(label)
	if err := h.ch.Reject(d.DeliveryTag, false); err != nil {
		return fmt.Errorf("reject: %w", err)
	}
	return nil
}
