package awsconf

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/junctionhq/junction/config"
)

// Defaults of an SQS consumer's keys pollers, batchSize, waitTime and
// visibilityTimeout.
const (
	DefaultPollers           = 2
	DefaultBatchSize         = 10
	DefaultWaitTime          = 20 * time.Second
	DefaultVisibilityTimeout = 30 * time.Second
)

// Limits of SQS itself, and of the pollers of one consumer.
const (
	maxBatchSize  = 10
	maxWaitTime   = 20 * time.Second
	maxVisibility = 12 * time.Hour
	maxPollers    = 100
)

var regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// CheckClient returns a config.FieldError for the key region if it is set
// and not a region name, and for the key endpoint if it is set and not an
// http(s) URL; sample is the endpoint the error suggests, such as
// http://127.0.0.1:4566.
func CheckClient(region, endpoint, sample string) []error {
	var errs []error
	if region != "" && !regionRE.MatchString(region) {
		errs = append(errs, config.FieldErrorf("region", "%q is not a region name such as us-east-1", region))
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, config.FieldErrorf("endpoint", "%q is not an http or https URL such as %s", endpoint, sample))
		}
	}
	return errs
}

// CheckQueue returns a config.FieldError for each of the keys queueUrl,
// region and endpoint of an SQS client that is wrong: queueUrl is required
// and must be http(s) with a host and a queue name as its last path
// segment (name is the queue name of the error's sample URL, such as
// orders).
func CheckQueue(queueURL, region, endpoint, name string) []error {
	var errs []error
	if err := checkQueueURL(queueURL, name); err != nil {
		errs = append(errs, config.FieldErrorf("queueUrl", "%v", err))
	}
	return append(errs, CheckClient(region, endpoint, "http://127.0.0.1:4566")...)
}

func checkQueueURL(s, name string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/%s", s, name)
	}
	if QueueName(s) == "" {
		return fmt.Errorf("%q has no queue name (the last path segment)", s)
	}
	return nil
}

// QueueName is the last path segment of a queue URL, "" when it has none.
func QueueName(queueURL string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return ""
	}
	p := strings.TrimRight(u.Path, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return ""
}

// CheckPolling returns a config.FieldError for each of the keys pollers,
// batchSize, waitTime and visibilityTimeout of an SQS consumer that is out
// of its range.
func CheckPolling(pollers, batchSize int, waitTime, visibility time.Duration) []error {
	var errs []error
	if pollers < 1 || pollers > maxPollers {
		errs = append(errs, config.FieldErrorf("pollers", "must be between 1 and %d", maxPollers))
	}
	if batchSize < 1 || batchSize > maxBatchSize {
		errs = append(errs, config.FieldErrorf("batchSize", "must be between 1 and %d (an SQS limit)", maxBatchSize))
	}
	if waitTime < 0 || waitTime > maxWaitTime || waitTime%time.Second != 0 {
		errs = append(errs, config.FieldErrorf("waitTime", "must be whole seconds between 0s and 20s (an SQS limit)"))
	}
	if visibility < time.Second || visibility > maxVisibility || visibility%time.Second != 0 {
		errs = append(errs, config.FieldErrorf("visibilityTimeout", "must be whole seconds between 1s and 12h (an SQS limit)"))
	}
	return errs
}
