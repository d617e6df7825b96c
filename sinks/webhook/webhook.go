// Package webhooksink is the "webhook" sink: it delivers each event as one HTTP
// request (POST by default) in the CloudEvents HTTP binding's binary or
// structured content mode, or with a batch key several events per request
// in batch mode, and classifies the answer: 2xx is success; 408, 429, 5xx,
// network errors and timeouts are retried (honouring Retry-After); any
// other status is permanent.
package webhooksink

import (
	"context"
	"errors"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "webhook"

// Defaults of Config.
const (
	DefaultFormat       = FormatBinary
	DefaultMethod       = http.MethodPost
	DefaultMaxIdleConns = 64
)

// Content modes of the CloudEvents HTTP binding.
const (
	// FormatBinary puts the attributes in ce- headers and the data in the
	// body, with datacontenttype as Content-Type.
	FormatBinary = "binary"
	// FormatStructured sends the whole event as application/cloudevents+json.
	FormatStructured = "structured"
)

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the webhook sink's config.
type Config struct {
	// URL is where events are sent: http or https. Required.
	URL string `yaml:"url"`
	// Format is the content mode: binary (default) or structured.
	Format string `yaml:"format"`
	// Method is POST (default) or PUT.
	Method string `yaml:"method"`
	// Headers are added to every request. Values may hold secrets: they
	// are never logged nor put in errors.
	Headers map[string]string `yaml:"headers"`
	// TLS configures https connections.
	TLS *TLS `yaml:"tls"`
	// MaxIdleConns bounds the keep-alive connections kept open to the
	// destination. Default 64.
	MaxIdleConns int `yaml:"maxIdleConns"`
	// Sign adds Standard Webhooks headers (webhook-id, webhook-timestamp,
	// webhook-signature) to every request; nil for none.
	Sign *Sign `yaml:"sign"`
}

// Sign is the key sign: secrets, each "whsec_<base64>" or raw.
type Sign = cehttp.Sign

// TLS configures the client side of https connections (keys caFile,
// certFile, keyFile, insecureSkipVerify, serverName).
type TLS = cehttp.TLS

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Format: DefaultFormat, Method: DefaultMethod, MaxIdleConns: DefaultMaxIdleConns}
}

var (
	_ sinks.Config      = (*Config)(nil)
	_ sinks.BatchConfig = (*Config)(nil)
)

// BatchSupported is nil: with a batch key, the sink posts batches in the
// CloudEvents batch mode (application/cloudevents-batch+json), whatever
// its format.
func (c *Config) BatchSupported() error { return nil }

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	var errs []error
	u, err := cehttp.ParseURL(c.URL)
	if err != nil {
		errs = append(errs, config.FieldErrorf("url", "%v", err))
	}
	switch c.Format {
	case FormatBinary, FormatStructured:
	default:
		errs = append(errs, config.FieldErrorf("format", "must be binary or structured, not %q", c.Format))
	}
	switch c.Method {
	case http.MethodPost, http.MethodPut:
	default:
		errs = append(errs, config.FieldErrorf("method", "must be POST or PUT, not %q", c.Method))
	}
	errs = append(errs, cehttp.ValidateHeaders(c.Headers)...)
	errs = append(errs, cehttp.ValidateTLS(c.TLS, u)...)
	errs = append(errs, cehttp.ValidateSign(c.Sign)...)
	if c.MaxIdleConns < 1 {
		errs = append(errs, config.FieldErrorf("maxIdleConns", "must be at least 1"))
	}
	return errors.Join(errs...)
}

// Build reads the TLS files and makes the sink with its own HTTP client.
func (c *Config) Build(ctx context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return New(c, deps)
}

// New makes a webhook sink from a validated config.
func New(c *Config, deps sinks.Deps) (*Webhook, error) {
	s, err := cehttp.NewSender(cehttp.Options{
		URL:          c.URL,
		Method:       c.Method,
		Structured:   c.Format == FormatStructured,
		Headers:      c.Headers,
		TLS:          c.TLS,
		MaxIdleConns: c.MaxIdleConns,
		Kind:         "webhook sink",
		Logger:       deps.Logger,
		Name:         deps.Name,
		Sign:         c.Sign,
	})
	if err != nil {
		return nil, err
	}
	if deps.Logger != nil {
		deps.Logger.Debug("webhook sink ready", "url", s.Display(), "format", c.Format, "method", s.Method())
	}
	return &Webhook{s: s}, nil
}

// Webhook is the webhook sink. It is safe for concurrent use.
type Webhook struct {
	s *cehttp.Sender
}

var _ sinks.BatchSink = (*Webhook)(nil)

// Deliver sends e in one request and classifies the outcome (see the
// package doc). ctx's deadline bounds the attempt.
func (w *Webhook) Deliver(ctx context.Context, e *event.Event) error {
	return w.s.Deliver(ctx, e)
}

// DeliverBatch sends events in one request of the CloudEvents HTTP batch
// mode (application/cloudevents-batch+json, a JSON array of events). A 2xx
// answer delivers them all; any other answer is every event's failure,
// classified as for Deliver, Retry-After included. An event that cannot be
// encoded fails permanently alone.
func (w *Webhook) DeliverBatch(ctx context.Context, events []*event.Event) []error {
	return w.s.DeliverBatch(ctx, events)
}

// Close closes the idle connections. No Deliver runs after Close.
func (w *Webhook) Close() error {
	w.s.Close()
	return nil
}
