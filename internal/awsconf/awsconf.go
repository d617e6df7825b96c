// Package awsconf holds the AWS client configuration shared by the sqs
// source and sink, the s3 source and the lambda sink: credentials from the
// AWS default chain, the region (from the config, the queue URL, the AWS
// configuration, else us-east-1), an endpoint override, and the SDK's
// retry, logging and connection settings; and the checks of the config keys
// that name them (queueUrl, region, endpoint) and of an SQS consumer's
// polling keys.
package awsconf

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"
)

// DefaultRegion is used when neither the config, the resource's URL or ARN
// nor the AWS configuration (AWS_REGION, profiles) names a region.
const DefaultRegion = "us-east-1"

// Options are the settings of a client.
type Options struct {
	// Region is the configured region; "" takes the AWS configuration's,
	// else DefaultRegion.
	Region string
	// Endpoint overrides the service's endpoint, for compatible services.
	// It wins over the AWS configuration's endpoints.
	Endpoint string
	// MaxAttempts is how many times the SDK tries a call (1: no retry). The
	// SDK has no client-side retry quota, which would otherwise refuse
	// requests after an outage.
	MaxAttempts int
	// MaxIdleConns bounds the keep-alive connections.
	MaxIdleConns int
	// Transport, if set, remembers the HTTP transport the SDK builds, to
	// close its idle connections.
	Transport *Transport
}

// Load loads the AWS configuration: credentials from the default chain,
// the region as documented on Options.Region, the SDK's own logging off
// (errors reach Junction's log instead; the SDK would print warnings on
// standard error, such as a long poll cut by shutdown).
func Load(ctx context.Context, o Options) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithLogger(logging.Nop{}),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.RateLimiter = ratelimit.None
			})
		}),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = o.MaxIdleConns
			t.MaxIdleConnsPerHost = o.MaxIdleConns
			if o.Transport != nil {
				o.Transport.set(t)
			}
		})),
	}
	if o.Region != "" {
		opts = append(opts, awsconfig.WithRegion(o.Region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return cfg, nil
}

// NewSQS makes an SQS client for queueURL: the region is o.Region, else
// the one in an AWS queue URL, else as Load.
func NewSQS(ctx context.Context, queueURL string, o Options) (*sqs.Client, error) {
	if o.Region == "" {
		o.Region = QueueRegion(queueURL)
	}
	cfg, err := Load(ctx, o)
	if err != nil {
		return nil, err
	}
	return sqs.NewFromConfig(cfg, func(so *sqs.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	}), nil
}

// awsHostRE matches the host of an AWS queue URL and captures the region.
var awsHostRE = regexp.MustCompile(`^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

// QueueRegion is the region of an AWS queue URL
// (https://sqs.<region>.amazonaws.com/...), "" for another URL.
func QueueRegion(queueURL string) string {
	if u, err := url.Parse(queueURL); err == nil {
		if m := awsHostRE.FindStringSubmatch(u.Hostname()); m != nil {
			return m[1]
		}
	}
	return ""
}

// Transport remembers the HTTP transport the SDK builds. The zero value
// is ready to use.
type Transport struct {
	mu sync.Mutex
	t  *http.Transport
}

func (tr *Transport) set(t *http.Transport) {
	tr.mu.Lock()
	tr.t = t
	tr.mu.Unlock()
}

// CloseIdle closes the transport's idle connections, if it was built.
func (tr *Transport) CloseIdle() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.t != nil {
		tr.t.CloseIdleConnections()
	}
}
