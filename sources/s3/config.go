package s3source

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/sources"
)

// Type is the source type name in the config.
const Type = "s3"

// Transports: how the notifications reach Junction.
const (
	// TransportSQS polls an SQS queue that S3 (or SNS) writes to.
	TransportSQS = "sqs"
	// TransportSNS serves an SNS HTTP(S) subscription at a path.
	TransportSNS = "sns"
	// TransportWebhook serves MinIO's webhook notification target (or any
	// service that POSTs S3 notification JSON) at a path.
	TransportWebhook = "webhook"
)

// Defaults of Config.
const (
	DefaultPollers           = awsconf.DefaultPollers
	DefaultBatchSize         = awsconf.DefaultBatchSize
	DefaultWaitTime          = awsconf.DefaultWaitTime
	DefaultVisibilityTimeout = awsconf.DefaultVisibilityTimeout
	// DefaultRegion is used when neither the config, the queue URL nor the
	// AWS configuration (AWS_REGION, profiles) names a region.
	DefaultRegion = awsconf.DefaultRegion
)

func init() {
	sources.Register(Type, func() sources.Config { return NewConfig() })
}

var _ sources.Config = (*Config)(nil)

// Config is the s3 source's config. Which keys apply depends on the
// transport; a key of another transport is an error.
type Config struct {
	// Transport is sqs, sns or webhook. Default: sqs when queueUrl is set,
	// sns when topics is set, webhook when path or authToken is set.
	Transport string `yaml:"transport"`

	// QueueURL is the SQS queue S3 notifications are written to (sqs).
	QueueURL string `yaml:"queueUrl"`
	// Region is the AWS region of the queue (sqs). Default: the region in
	// an AWS queue URL, else the AWS configuration, else us-east-1.
	Region string `yaml:"region"`
	// Endpoint overrides the SQS endpoint (sqs), for SQS-compatible
	// services: http://127.0.0.1:4566.
	Endpoint string `yaml:"endpoint"`
	// Pollers is the number of concurrent long polls (sqs). Default 2.
	Pollers *int `yaml:"pollers"`
	// BatchSize is the most messages one receive returns, 1..10 (sqs).
	// Default 10.
	BatchSize *int `yaml:"batchSize"`
	// WaitTime is the long-poll wait, 0s..20s (sqs). Default 20s.
	WaitTime *time.Duration `yaml:"waitTime"`
	// VisibilityTimeout hides a received message until it is ingested and
	// deleted, 1s..12h (sqs). Default 30s.
	VisibilityTimeout *time.Duration `yaml:"visibilityTimeout"`

	// Path is the URL path served on the HTTP ingress (sns, webhook).
	Path string `yaml:"path"`
	// MaxBodySize bounds a request body (sns, webhook). Default: the
	// ingress's http.maxBodySize.
	MaxBodySize config.ByteSize `yaml:"maxBodySize"`

	// Topics are the ARNs of the SNS topics whose subscription this source
	// confirms and whose notifications it takes (sns). Required.
	Topics []string `yaml:"topics"`
	// VerifySignatures checks each SNS message's signature against the
	// certificate at its SigningCertURL, which must be on
	// sns.<region>.amazonaws.com (sns). Default true.
	VerifySignatures *bool `yaml:"verifySignatures"`

	// AuthToken is the token MinIO sends (webhook): the request must carry
	// "Authorization: Bearer <authToken>", or exactly authToken when it is
	// of the form "<scheme> <token>". Required.
	AuthToken string `yaml:"authToken"`
}

// NewConfig returns a Config with its defaults set (the SQS tuning keys
// are pointers, resolved when built, so that their use with another
// transport can be refused).
func NewConfig() *Config { return &Config{} }

var topicARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:sns:([a-z0-9-]+):[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)

// transport is the configured or inferred transport, "" when it cannot be
// inferred.
func (c *Config) transport() string {
	switch {
	case c.Transport != "":
		return c.Transport
	case c.QueueURL != "":
		return TransportSQS
	case c.Topics != nil:
		return TransportSNS
	case c.Path != "" || c.AuthToken != "":
		return TransportWebhook
	}
	return ""
}

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	t := c.transport()
	var errs []error
	switch t {
	case "":
		return config.FieldErrorf("transport", "required: sqs (with queueUrl), sns (with path and topics) or webhook (with path and authToken)")
	case TransportSQS, TransportSNS, TransportWebhook:
	default:
		return config.FieldErrorf("transport", "%q is not one of sqs, sns, webhook", c.Transport)
	}
	// Keys of other transports.
	notFor := func(key string, set bool, users string) {
		if set && !strings.Contains(users, t) {
			errs = append(errs, config.FieldErrorf(key, "not used by transport %s (only by %s)", t, users))
		}
	}
	notFor("queueUrl", c.QueueURL != "", "sqs")
	notFor("region", c.Region != "", "sqs")
	notFor("endpoint", c.Endpoint != "", "sqs")
	notFor("pollers", c.Pollers != nil, "sqs")
	notFor("batchSize", c.BatchSize != nil, "sqs")
	notFor("waitTime", c.WaitTime != nil, "sqs")
	notFor("visibilityTimeout", c.VisibilityTimeout != nil, "sqs")
	notFor("path", c.Path != "", "sns and webhook")
	notFor("maxBodySize", c.MaxBodySize != 0, "sns and webhook")
	notFor("topics", c.Topics != nil, "sns")
	notFor("verifySignatures", c.VerifySignatures != nil, "sns")
	notFor("authToken", c.AuthToken != "", "webhook")

	switch t {
	case TransportSQS:
		errs = append(errs, c.validateSQS()...)
	case TransportSNS, TransportWebhook:
		if err := sources.CheckPath(c.Path); err != nil {
			errs = append(errs, err)
		}
		if c.MaxBodySize < 0 {
			errs = append(errs, config.FieldErrorf("maxBodySize", "must be positive"))
		}
	}
	switch t {
	case TransportSNS:
		if len(c.Topics) == 0 {
			errs = append(errs, config.FieldErrorf("topics", "required: list the ARNs of the SNS topics to accept, such as arn:aws:sns:us-east-1:123456789012:uploads"))
		}
		for i, arn := range c.Topics {
			key := fmt.Sprintf("topics[%d]", i)
			switch {
			case !topicARNRE.MatchString(arn):
				errs = append(errs, config.FieldErrorf(key, "%q is not an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:uploads", arn))
			case slices.Index(c.Topics, arn) < i:
				errs = append(errs, config.FieldErrorf(key, "%q is listed twice", arn))
			}
		}
	case TransportWebhook:
		switch tok := c.AuthToken; {
		case strings.TrimSpace(tok) == "":
			errs = append(errs, config.FieldErrorf("authToken", "required: the token of MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>; use ${ENV} to keep it out of the file"))
		case len(strings.Fields(tok)) > 2 || strings.ContainsAny(tok, "\r\n"):
			errs = append(errs, config.FieldErrorf("authToken", "must be a token, or a scheme and a token (\"Bearer abc\")"))
		}
	}
	return errors.Join(errs...)
}

var _ sources.HTTPConfig = (*Config)(nil)

// HTTPPath is the path the source answers on with transport sns or webhook,
// "" with sqs.
func (c *Config) HTTPPath() string {
	if c.transport() == TransportSQS {
		return ""
	}
	return c.Path
}

// validateSQS checks the keys of transport sqs; a tuning key left out
// takes its default, which is valid.
func (c *Config) validateSQS() []error {
	errs := awsconf.CheckQueue(c.QueueURL, c.Region, c.Endpoint, "uploads")
	return append(errs, awsconf.CheckPolling(orDefault(c.Pollers, DefaultPollers), orDefault(c.BatchSize, DefaultBatchSize),
		orDefault(c.WaitTime, DefaultWaitTime), orDefault(c.VisibilityTimeout, DefaultVisibilityTimeout))...)
}

// Build makes the source: a *Queue (a sources.Source) for transport sqs, an
// *Endpoint (a sources.HTTPSource) for sns and webhook. It does not reach
// the queue: Run does, and retries while it cannot.
func (c *Config) Build(ctx context.Context, deps sources.Deps) (any, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("build s3 source %q: %w", deps.Name, err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.transport() == TransportSQS {
		q, err := newQueue(ctx, c, log)
		if err != nil {
			return nil, fmt.Errorf("build s3 source %q: %w", deps.Name, err)
		}
		return q, nil
	}
	e := &Endpoint{
		path:      c.Path,
		transport: c.transport(),
		maxBody:   deps.BodyLimit(c.MaxBodySize),
		log:       log.With("transport", c.transport()),
		client:    &http.Client{Timeout: 10 * time.Second},
		trustURL:  trustAWSURL,
		now:       time.Now,
	}
	switch e.transport {
	case TransportSNS:
		e.topics = make(map[string]bool, len(c.Topics))
		for _, t := range c.Topics {
			e.topics[t] = true
		}
		e.verify = c.VerifySignatures == nil || *c.VerifySignatures
		e.certs = newCertCache()
		if !e.verify {
			e.log.Warn("SNS signature verification is off: anyone who can reach the path and knows a topic ARN can inject events")
		}
	case TransportWebhook:
		tok := c.AuthToken
		if len(strings.Fields(tok)) == 1 {
			tok = "Bearer " + strings.TrimSpace(tok)
		}
		e.token = sha256.Sum256([]byte(tok))
	}
	return e, nil
}

// orDefault returns *p, or def when p is nil.
func orDefault[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
