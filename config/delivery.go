package config

import (
	"fmt"
	"time"

	"github.com/junctionhq/junction/internal/backoff"
)

// Backoff policies.
const (
	BackoffExponential = "exponential"
	BackoffLinear      = "linear"
	BackoffConstant    = "constant"
)

// What happens to a delivery whose policy is exhausted or that failed
// permanently (Delivery.OnExhausted).
const (
	// OnExhaustedKeep keeps it in the journal's dead-letter store (and sends
	// it to the deadLetter sink, if any). The default.
	OnExhaustedKeep = "keep"
	// OnExhaustedDrop logs, counts and drops it: only when asked for.
	OnExhaustedDrop = "drop"
)

// Delivery is a delivery policy. Every field is optional: a route's policy
// overrides its sink's, which overrides DefaultPolicy.
type Delivery struct {
	// Retry is the number of retries after the first attempt; unset, the
	// count is not bounded (MaxAge is).
	Retry         *int           `yaml:"retry"`
	BackoffPolicy string         `yaml:"backoffPolicy"`
	BackoffDelay  *time.Duration `yaml:"backoffDelay"`
	MaxDelay      *time.Duration `yaml:"maxDelay"`
	Timeout       *time.Duration `yaml:"timeout"`
	// MaxAge bounds how long after its acceptance a delivery is retried.
	MaxAge      *Duration `yaml:"maxAge"`
	DeadLetter  Ref       `yaml:"deadLetter"`
	OnExhausted string    `yaml:"onExhausted"`
}

// Policy is a complete delivery policy.
type Policy struct {
	// Retry is the number of retries after the first attempt; below 0, the
	// count is not bounded and MaxAge alone ends the retries.
	Retry         int
	BackoffPolicy string
	BackoffDelay  time.Duration
	MaxDelay      time.Duration
	Timeout       time.Duration
	// MaxAge: no retry is made later than this after the event was
	// accepted.
	MaxAge time.Duration
	// DeadLetter is the dead-letter sink's name, or "".
	DeadLetter string
	// OnExhausted is OnExhaustedKeep or OnExhaustedDrop.
	OnExhausted string
}

// DefaultPolicy applies where neither route nor sink says otherwise: retry
// for 24 hours (EventBridge's maximum event age), backing off exponentially
// from 500ms up to 5 minutes, then keep the event in the dead-letter store.
var DefaultPolicy = Policy{
	Retry:         -1,
	BackoffPolicy: BackoffExponential,
	BackoffDelay:  500 * time.Millisecond,
	MaxDelay:      5 * time.Minute,
	Timeout:       10 * time.Second,
	MaxAge:        24 * time.Hour,
	OnExhausted:   OnExhaustedKeep,
}

// Retries reports whether a failed attempt number attempt (1 for the
// first) may be followed by another after delay, for an event accepted age
// ago: the retry count is not spent and the next attempt falls within
// MaxAge.
func (p Policy) Retries(attempt int, age, delay time.Duration) bool {
	if p.Retry >= 0 && attempt > p.Retry {
		return false
	}
	return age+delay <= p.MaxAge
}

// GivesUpAfter is the shortest time after which the policy can give up on
// a delivery whose attempts all fail at once with a retryable error: the
// sum of its backoff delays (before jitter), or MaxAge.
func (p Policy) GivesUpAfter() time.Duration {
	if p.Retry < 0 {
		return p.MaxAge
	}
	var total time.Duration
	for n := 1; n <= p.Retry && total < p.MaxAge; n++ {
		total += p.delay(n)
	}
	return min(total, p.MaxAge)
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
	if d.MaxAge != nil {
		p.MaxAge = time.Duration(*d.MaxAge)
	}
	if d.DeadLetter.Name != "" {
		p.DeadLetter = d.DeadLetter.Name
	}
	if d.OnExhausted != "" {
		p.OnExhausted = d.OnExhausted
	}
	return p
}

// MaxMaxAge bounds Delivery.MaxAge.
const MaxMaxAge = 365 * 24 * time.Hour

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
	if d.MaxAge != nil && (*d.MaxAge <= 0 || time.Duration(*d.MaxAge) > MaxMaxAge) {
		errs = append(errs, FieldErrorf(path+".maxAge", "must be between 1ms and 365d"))
	}
	switch d.OnExhausted {
	case "", OnExhaustedKeep, OnExhaustedDrop:
	default:
		errs = append(errs, FieldErrorf(path+".onExhausted", "must be keep or drop, not %q", d.OnExhausted))
	}
	if d.OnExhausted == OnExhaustedDrop && d.DeadLetter.Name != "" {
		errs = append(errs, FieldErrorf(path+".onExhausted", "drop contradicts deadLetter %q: say one or the other", d.DeadLetter.Name))
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
	// Jitter: between 80% and 100% of the delay, so that retries of many
	// events that failed together spread out.
	return backoff.Jitter(p.delay(n))
}

// delay is Backoff before jitter.
func (p Policy) delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := p.BackoffDelay
	switch p.BackoffPolicy {
	case BackoffLinear:
		d = p.BackoffDelay * time.Duration(n)
	case BackoffConstant:
	default:
		d = backoff.Exponential(n, p.BackoffDelay, max(p.MaxDelay, p.BackoffDelay))
	}
	if d > p.MaxDelay || d <= 0 {
		d = p.MaxDelay
	}
	return d
}
