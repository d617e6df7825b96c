package config

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff policies.
const (
	BackoffExponential = "exponential"
	BackoffLinear      = "linear"
	BackoffConstant    = "constant"
)

// Delivery is a delivery policy. Every field is optional: a route's policy
// overrides its sink's, which overrides DefaultPolicy.
type Delivery struct {
	// Retry is the number of retries after the first attempt.
	Retry         *int           `yaml:"retry"`
	BackoffPolicy string         `yaml:"backoffPolicy"`
	BackoffDelay  *time.Duration `yaml:"backoffDelay"`
	MaxDelay      *time.Duration `yaml:"maxDelay"`
	Timeout       *time.Duration `yaml:"timeout"`
	DeadLetter    Ref            `yaml:"deadLetter"`
}

// Policy is a complete delivery policy.
type Policy struct {
	Retry         int
	BackoffPolicy string
	BackoffDelay  time.Duration
	MaxDelay      time.Duration
	Timeout       time.Duration
	// DeadLetter is the dead-letter sink's name, or "".
	DeadLetter string
}

// DefaultPolicy applies where neither route nor sink says otherwise.
var DefaultPolicy = Policy{
	Retry:         5,
	BackoffPolicy: BackoffExponential,
	BackoffDelay:  500 * time.Millisecond,
	MaxDelay:      time.Minute,
	Timeout:       10 * time.Second,
}

// Apply returns p with the fields d sets replaced.
func (d Delivery) Apply(p Policy) Policy {
	if d.Retry != nil {
		p.Retry = *d.Retry
	}
	if d.BackoffPolicy != "" {
		p.BackoffPolicy = d.BackoffPolicy
	}
	if d.BackoffDelay != nil {
		p.BackoffDelay = *d.BackoffDelay
	}
	if d.MaxDelay != nil {
		p.MaxDelay = *d.MaxDelay
	}
	if d.Timeout != nil {
		p.Timeout = *d.Timeout
	}
	if d.DeadLetter.Name != "" {
		p.DeadLetter = d.DeadLetter.Name
	}
	return p
}

// MaxRetry bounds Delivery.Retry.
const MaxRetry = 1000

func (d Delivery) validate(path string) error {
	var errs []error
	if d.Retry != nil && (*d.Retry < 0 || *d.Retry > MaxRetry) {
		errs = append(errs, FieldErrorf(path+".retry", "must be between 0 and %d", MaxRetry))
	}
	switch d.BackoffPolicy {
	case "", BackoffExponential, BackoffLinear, BackoffConstant:
	default:
		errs = append(errs, FieldErrorf(path+".backoffPolicy", "must be exponential, linear or constant, not %q", d.BackoffPolicy))
	}
	if d.BackoffDelay != nil && *d.BackoffDelay <= 0 {
		errs = append(errs, FieldErrorf(path+".backoffDelay", "must be positive"))
	}
	if d.MaxDelay != nil && *d.MaxDelay <= 0 {
		errs = append(errs, FieldErrorf(path+".maxDelay", "must be positive"))
	}
	if d.Timeout != nil && (*d.Timeout <= 0 || *d.Timeout > time.Hour) {
		errs = append(errs, FieldErrorf(path+".timeout", "must be between 1ms and 1h"))
	}
	if len(errs) == 0 {
		return nil
	}
	return multiField(errs)
}

type multiField []error

func (m multiField) Error() string { return fmt.Sprint([]error(m)) }
func (m multiField) Unwrap() []error {
	return m
}

// Backoff returns the delay before retry number n (1 for the first retry),
// following the policy, with up to 20% jitter, capped at MaxDelay.
func (p Policy) Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := p.BackoffDelay
	switch p.BackoffPolicy {
	case BackoffLinear:
		d = p.BackoffDelay * time.Duration(n)
	case BackoffConstant:
	default:
		for i := 1; i < n && d < p.MaxDelay; i++ {
			d *= 2
		}
	}
	if d > p.MaxDelay || d <= 0 {
		d = p.MaxDelay
	}
	// Jitter: between 80% and 100% of the delay, so that retries of many
	// events that failed together spread out.
	d -= time.Duration(rand.Int64N(int64(d)/5 + 1))
	return d
}
