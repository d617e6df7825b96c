package sqssource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/sources"
)

// Type is the source type name in the config.
const Type = "sqs"

// Defaults of Config.
const (
	DefaultPollers           = 2
	DefaultBatchSize         = 10
	DefaultWaitTime          = 20 * time.Second
	DefaultVisibilityTimeout = 30 * time.Second
	DefaultEventType         = "com.amazonaws.sqs.message"
	// DefaultRegion is used when neither the config, the queue URL nor the
	// AWS configuration (AWS_REGION, profiles) names a region.
	DefaultRegion = awsconf.DefaultRegion
)

// Limits of SQS itself.
const (
	maxBatchSize  = 10
	maxWaitTime   = 20 * time.Second
	maxVisibility = 12 * time.Hour
	maxPollers    = 100
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

var regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	var errs []error
	if err := checkQueueURL(c.QueueURL); err != nil {
		errs = append(errs, config.FieldErrorf("queueUrl", "%v", err))
	}
	if c.Region != "" && !regionRE.MatchString(c.Region) {
		errs = append(errs, config.FieldErrorf("region", "%q is not a region name such as us-east-1", c.Region))
	}
	if c.Endpoint != "" {
		if err := checkEndpoint(c.Endpoint); err != nil {
			errs = append(errs, config.FieldErrorf("endpoint", "%v", err))
		}
	}
	if c.Pollers < 1 || c.Pollers > maxPollers {
		errs = append(errs, config.FieldErrorf("pollers", "must be between 1 and %d", maxPollers))
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		errs = append(errs, config.FieldErrorf("batchSize", "must be between 1 and %d (an SQS limit)", maxBatchSize))
	}
	if c.WaitTime < 0 || c.WaitTime > maxWaitTime || c.WaitTime%time.Second != 0 {
		errs = append(errs, config.FieldErrorf("waitTime", "must be whole seconds between 0s and 20s (an SQS limit)"))
	}
	if c.VisibilityTimeout < time.Second || c.VisibilityTimeout > maxVisibility || c.VisibilityTimeout%time.Second != 0 {
		errs = append(errs, config.FieldErrorf("visibilityTimeout", "must be whole seconds between 1s and 12h (an SQS limit)"))
	}
	if strings.TrimSpace(c.EventType) == "" {
		errs = append(errs, config.FieldErrorf("eventType", "must not be empty"))
	}
	return errors.Join(errs...)
}

// checkQueueURL checks that s looks like a queue URL: http(s), a host and a
// queue name as the last path segment.
func checkQueueURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/orders", s)
	}
	if name := queueName(u); name == "" {
		return fmt.Errorf("%q has no queue name (the last path segment)", s)
	}
	return nil
}

func queueName(u *url.URL) string {
	p := strings.TrimRight(u.Path, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return ""
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL such as http://127.0.0.1:4566", s)
	}
	return nil
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
	s := &Source{
		client:     client,
		queueURL:   c.QueueURL,
		pollers:    c.Pollers,
		batchSize:  int32(c.BatchSize),
		waitTime:   int32(c.WaitTime / time.Second),
		visibility: c.VisibilityTimeout,
		eventType:  c.EventType,
		log:        log.With("queue", c.QueueURL),
		retryMin:   100 * time.Millisecond,
		retryMax:   30 * time.Second,
		nakMin:     time.Second,
		nakMax:     30 * time.Second,
		grace:      10 * time.Second,
	}
	return s, nil
}
