package sqssource

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/internal/sqspoll"
	"github.com/junctionhq/junction/sources"
)

// Type is the source type name in the config.
const Type = "sqs"

// Defaults of Config.
const (
	DefaultPollers           = awsconf.DefaultPollers
	DefaultBatchSize         = awsconf.DefaultBatchSize
	DefaultWaitTime          = awsconf.DefaultWaitTime
	DefaultVisibilityTimeout = awsconf.DefaultVisibilityTimeout
	DefaultEventType         = "com.amazonaws.sqs.message"
	// DefaultRegion is used when neither the config, the queue URL nor the
	// AWS configuration (AWS_REGION, profiles) names a region.
	DefaultRegion = awsconf.DefaultRegion
)

func init() {
	sources.Register(Type, func() sources.Config { return NewConfig() })
}

// Config is the sqs source's config.
type Config struct {
	// QueueURL is the queue to consume, e.g.
	// https://sqs.us-east-1.amazonaws.com/123456789012/orders. Required.
	QueueURL string `yaml:"queueUrl"`
	// Region is the AWS region. Default: the region in an AWS queue URL,
	// else the AWS configuration (AWS_REGION, profile), else us-east-1.
	Region string `yaml:"region"`
	// Endpoint overrides the SQS endpoint, for SQS-compatible services
	// (LocalStack, ElasticMQ, fauxqs ...): http://127.0.0.1:4566.
	Endpoint string `yaml:"endpoint"`
	// Pollers is the number of concurrent long polls. Default 2.
	Pollers int `yaml:"pollers"`
	// BatchSize is the most messages one receive returns (1..10). Default 10.
	BatchSize int `yaml:"batchSize"`
	// WaitTime is the long-poll wait (0s..20s, whole seconds). Default 20s.
	WaitTime time.Duration `yaml:"waitTime"`
	// VisibilityTimeout hides a received message from other consumers until
	// it is ingested and deleted; it is extended while an ingest takes
	// longer than half of it (1s..12h, whole seconds). Default 30s.
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
	// EventType is the CloudEvents type of wrapped messages. Default
	// com.amazonaws.sqs.message.
	EventType string `yaml:"eventType"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{
		Pollers:           DefaultPollers,
		BatchSize:         DefaultBatchSize,
		WaitTime:          DefaultWaitTime,
		VisibilityTimeout: DefaultVisibilityTimeout,
		EventType:         DefaultEventType,
	}
}

var _ sources.Config = (*Config)(nil)

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	errs := awsconf.CheckQueue(c.QueueURL, c.Region, c.Endpoint, "orders")
	errs = append(errs, awsconf.CheckPolling(c.Pollers, c.BatchSize, c.WaitTime, c.VisibilityTimeout)...)
	if strings.TrimSpace(c.EventType) == "" {
		errs = append(errs, config.FieldErrorf("eventType", "must not be empty"))
	}
	return errors.Join(errs...)
}

// Build makes the SQS client. It does not reach the queue: Run does, and
// retries while the queue cannot be reached.
func (c *Config) Build(ctx context.Context, deps sources.Deps) (any, error) {
	return New(ctx, c, deps)
}

// New makes an sqs source from a validated config.
func New(ctx context.Context, c *Config, deps sources.Deps) (*Source, error) {
	// The SDK retries once: the source has its own backoff.
	client, err := awsconf.NewSQS(ctx, c.QueueURL, awsconf.Options{Region: c.Region, Endpoint: c.Endpoint, MaxAttempts: 2, MaxIdleConns: c.Pollers + 4})
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("queue", c.QueueURL)
	p := sqspoll.New(client, c.QueueURL, log)
	p.Pollers = c.Pollers
	p.BatchSize = int32(c.BatchSize)
	p.WaitTime = int32(c.WaitTime / time.Second)
	p.Visibility = c.VisibilityTimeout
	p.MessageAttributeNames = []string{"All"}
	p.SystemAttributeNames = receiveAttributes
	s := &Source{poller: p, eventType: c.EventType, log: log}
	return s, nil
}
