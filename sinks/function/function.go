// Package functionsink is the "function" sink: it POSTs each event to an
// HTTP function endpoint (Knative Serving, OpenFaaS, Cloud Run, a plain HTTP
// handler) in the CloudEvents HTTP binding's binary or structured content
// mode, and returns the CloudEvent the function answers with, if any, as
// the reply that Junction routes on (sinks.ReplySink).
//
// A 2xx answer is success; its body is a reply event when it is a
// CloudEvent in binary mode (a ce-specversion header) or structured mode
// (Content-Type application/cloudevents+json), and no reply otherwise (202,
// 204, a plain body). A reply that is a CloudEvent but not a valid one, or
// larger than maxReplySize, is a permanent failure naming what is wrong.
// 408, 429, 5xx, network errors and timeouts are retried (honouring
// Retry-After); any other status is permanent.
package functionsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "function"

// Content modes of the CloudEvents HTTP binding.
const (
	// FormatBinary puts the attributes in ce- headers and the data in the
	// body, with datacontenttype as Content-Type.
	FormatBinary = "binary"
	// FormatStructured sends the whole event as application/cloudevents+json.
	FormatStructured = "structured"
)

// Defaults of Config.
const (
	DefaultFormat       = FormatBinary
	DefaultMaxReplySize = config.ByteSize(1 << 20)
	// maxIdleConns bounds the keep-alive connections kept to the function.
	maxIdleConns = 64
	// maxReplyLimit bounds maxReplySize.
	maxReplyLimit = config.ByteSize(64 << 20)
)

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the function sink's config.
type Config struct {
	// URL is the function's endpoint: http or https. Required.
	URL string `yaml:"url"`
	// Format is the content mode of requests: binary (default) or
	// structured. Replies are read in either mode.
	Format string `yaml:"format"`
	// Headers are added to every request. Values may hold secrets: they
	// are never logged nor put in errors.
	Headers map[string]string `yaml:"headers"`
	// TLS configures https connections.
	TLS *TLS `yaml:"tls"`
	// MaxReplySize bounds the body of a reply event. Default 1MiB.
	MaxReplySize config.ByteSize `yaml:"maxReplySize"`
	// Sign adds Standard Webhooks headers (webhook-id, webhook-timestamp,
	// webhook-signature) to every request; nil for none.
	Sign *Sign `yaml:"sign"`
}

// Sign is the key sign: secrets, each "whsec_<base64>" or raw.
type Sign = cehttp.Sign

// TLS configures the client side of https connections (keys caFile,
// certFile, keyFile, insecureSkipVerify, serverName), as for the webhook
// sink.
type TLS = cehttp.TLS

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Format: DefaultFormat, MaxReplySize: DefaultMaxReplySize}
}

var _ sinks.Config = (*Config)(nil)

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
	errs = append(errs, cehttp.ValidateHeaders(c.Headers)...)
	errs = append(errs, cehttp.ValidateTLS(c.TLS, u)...)
	errs = append(errs, cehttp.ValidateSign(c.Sign)...)
	if c.MaxReplySize < 1 || c.MaxReplySize > maxReplyLimit {
		errs = append(errs, config.FieldErrorf("maxReplySize", "must be between 1B and %s", maxReplyLimit))
	}
	return errors.Join(errs...)
}

// Build reads the TLS files and makes the sink with its own HTTP client.
func (c *Config) Build(ctx context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return New(c, deps)
}

// New makes a function sink from a validated config.
func New(c *Config, deps sinks.Deps) (*Function, error) {
	s, err := cehttp.NewSender(cehttp.Options{
		URL:          c.URL,
		Structured:   c.Format == FormatStructured,
		Headers:      c.Headers,
		TLS:          c.TLS,
		MaxIdleConns: maxIdleConns,
		Kind:         "function sink",
		Logger:       deps.Logger,
		Name:         deps.Name,
		Sign:         c.Sign,
	})
	if err != nil {
		return nil, err
	}
	maxReply := int64(c.MaxReplySize)
	if maxReply < 1 {
		maxReply = int64(DefaultMaxReplySize)
	}
	if deps.Logger != nil {
		deps.Logger.Debug("function sink ready", "url", s.Display(), "format", c.Format, "max_reply_size", c.MaxReplySize.String())
	}
	return &Function{s: s, maxReply: maxReply}, nil
}

// Function is the function sink. It is safe for concurrent use.
type Function struct {
	s        *cehttp.Sender
	maxReply int64
}

var (
	_ sinks.Sink      = (*Function)(nil)
	_ sinks.ReplySink = (*Function)(nil)
)

// Deliver sends e and classifies the answer as DeliverReply does, but
// ignores its body: a 2xx is success whatever it carries.
func (f *Function) Deliver(ctx context.Context, e *event.Event) error {
	return f.s.Deliver(ctx, e)
}

// DeliverReply sends e and returns the function's reply event, or nil when
// its 2xx answer is not a CloudEvent. ctx's deadline bounds the attempt,
// reading the reply included.
func (f *Function) DeliverReply(ctx context.Context, e *event.Event) (*event.Event, error) {
	start := time.Now()
	resp, err := f.s.Send(ctx, e)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, f.s.StatusError(resp)
	}
	if !cehttp.IsEvent(resp.Header) {
		cehttp.DrainClose(resp.Body)
		return nil, nil
	}
	defer resp.Body.Close()
	if resp.ContentLength > f.maxReply {
		return nil, f.tooLarge(resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxReply+1))
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return nil, f.s.TimeoutError(ctx, start, err)
		case ctx.Err() != nil:
			return nil, f.s.Failf(sinks.Retryable(ctx.Err(), 0), "HTTP %d: attempt cancelled while reading the reply", resp.StatusCode)
		}
		// The function ran: the retry may run it again (at least once).
		return nil, f.s.Failf(sinks.Retryable(err, 0), "HTTP %d: read reply: %v", resp.StatusCode, err)
	}
	if int64(len(body)) > f.maxReply {
		return nil, f.tooLarge(resp.StatusCode)
	}
	reply, err := cehttp.ParseEvent(resp.Header, body)
	if err != nil {
		return nil, f.s.Failf(sinks.Permanent(fmt.Errorf("invalid reply event: %w", err)), "HTTP %d: invalid reply event: %v", resp.StatusCode, err)
	}
	return reply, nil
}

func (f *Function) tooLarge(status int) error {
	err := fmt.Errorf("reply larger than maxReplySize (%s)", config.ByteSize(f.maxReply))
	return f.s.Failf(sinks.Permanent(err), "HTTP %d: %v", status, err)
}

// Close closes the idle connections. No Deliver runs after Close.
func (f *Function) Close() error {
	f.s.Close()
	return nil
}
