package sqssink

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "sqs"

// Message formats.
const (
	// FormatStructured sends the event in the CloudEvents JSON format as
	// the message body.
	FormatStructured = "structured"
	// FormatBinary sends the data as the body and the attributes as
	// message attributes ce-<name> (datacontenttype as content-type).
	FormatBinary = "binary"
	// DefaultFormat is the format when the config names none.
	DefaultFormat = FormatStructured
	// DefaultRegion is used when neither the config, the queue URL nor the
	// AWS configuration (AWS_REGION, profiles) names a region.
	DefaultRegion = awsconf.DefaultRegion
)

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the sqs sink's config.
type Config struct {
	// QueueURL is the queue to send to; a URL ending in .fifo is a FIFO
	// queue. Required.
	QueueURL string `yaml:"queueUrl"`
	// Region is the AWS region. Default: the region in an AWS queue URL,
	// else the AWS configuration (AWS_REGION, profile), else us-east-1.
	Region string `yaml:"region"`
	// Endpoint overrides the SQS endpoint, for SQS-compatible services.
	Endpoint string `yaml:"endpoint"`
	// Format is structured (default) or binary.
	Format string `yaml:"format"`
	// MessageGroupID is an expression over the event giving the message
	// group id. Required for FIFO queues; on a standard queue it sets the
	// fair-queue tenant.
	MessageGroupID config.Expr `yaml:"messageGroupId"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Format: DefaultFormat}
}

var _ sinks.BatchConfig = (*Config)(nil)

// BatchSupported is nil: with a batch key, the sink sends each batch with
// SendMessageBatch in chunks of 10 entries.
func (c *Config) BatchSupported() error { return nil }

// Validate checks the config without I/O (it compiles messageGroupId, so
// that a bad expression is reported with its position).
func (c *Config) Validate() error {
	errs := awsconf.CheckQueue(c.QueueURL, c.Region, c.Endpoint, "orders")
	switch c.Format {
	case FormatStructured, FormatBinary:
	default:
		errs = append(errs, config.FieldErrorf("format", "must be structured or binary, not %q", c.Format))
	}
	if c.MessageGroupID.IsSet() {
		if _, err := filters.CompileString("messageGroupId", c.MessageGroupID); err != nil {
			errs = append(errs, err)
		}
	} else if isFIFO(c.QueueURL) {
		errs = append(errs, config.FieldErrorf("messageGroupId", "required for a FIFO queue (the queueUrl ends in .fifo), e.g. messageGroupId: source"))
	}
	return errors.Join(errs...)
}

// isFIFO reports whether the queue URL names a FIFO queue.
func isFIFO(queueURL string) bool {
	return strings.HasSuffix(strings.TrimRight(queueURL, "/"), ".fifo")
}

// Build compiles messageGroupId and makes the SQS client. It does not reach
// the queue: a queue that cannot be reached fails deliveries (retried), not
// the start.
func (c *Config) Build(ctx context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return New(ctx, c, deps)
}

// New makes an sqs sink from a validated config.
func New(ctx context.Context, c *Config, deps sinks.Deps) (*Sink, error) {
	var group *filters.String
	if c.MessageGroupID.IsSet() {
		g, err := filters.CompileString("messageGroupId", c.MessageGroupID)
		if err != nil {
			return nil, err
		}
		group = g
	}
	// The SDK retries a failed call once within the attempt's deadline (the
	// router retries after that).
	tr := &awsconf.Transport{}
	client, err := awsconf.NewSQS(ctx, c.QueueURL, awsconf.Options{Region: c.Region, Endpoint: c.Endpoint, MaxAttempts: 2, MaxIdleConns: maxInFlight + 4, Transport: tr})
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := newSink(client, c.QueueURL, c.Format == FormatBinary, group, log)
	s.transport = tr
	return s, nil
}
