package sinks

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PermanentError is a delivery failure that retrying cannot fix: the event
// goes to the dead-letter sink at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryableError is a delivery failure worth retrying, optionally no sooner
// than After (the destination's Retry-After).
type RetryableError struct {
	Err   error
	After time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Failure is a classified delivery failure whose text is made for users
// (one bounded line naming the destination, as the sink writes it): Error
// is Msg, and Unwrap gives Err, the classification (Permanent, Retryable)
// that Classify reads.
type Failure struct {
	Msg string
	Err error
}

func (e *Failure) Error() string { return e.Msg }
func (e *Failure) Unwrap() error { return e.Err }

// Permanent marks err as permanent.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Retryable marks err as retryable no sooner than after (0: the policy's
// backoff decides).
func Retryable(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err, After: after}
}

// Classify tells whether err is permanent and, if retryable, the delay the
// destination asked for (0 if none). Unclassified errors are retryable.
func Classify(err error) (permanent bool, after time.Duration) {
	var p *PermanentError
	if errors.As(err, &p) {
		return true, 0
	}
	var r *RetryableError
	if errors.As(err, &r) {
		return false, r.After
	}
	return false, 0
}

// MaxRetryAfter bounds a delay asked for with Retry-After.
const MaxRetryAfter = time.Hour

// HTTPStatusError classifies an HTTP answer: nil for 2xx; retryable for 408,
// 429 and 5xx (honouring Retry-After in seconds or as an HTTP date); any
// other status is permanent. now is used for Retry-After dates.
func HTTPStatusError(status int, header http.Header, now time.Time) error {
	if status >= 200 && status < 300 {
		return nil
	}
	var err error = &StatusError{Status: status}
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500 && status < 600:
		return Retryable(err, RetryAfter(header.Get("Retry-After"), now))
	default:
		return Permanent(err)
	}
}

// StatusError is a destination's answer that is not a success, by its
// status code (HTTP, or a broker's code); its text is "HTTP 503 Service
// Unavailable".
type StatusError struct{ Status int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// StatusOf returns the status code of the StatusError in err's chain, or 0.
func StatusOf(err error) int {
	var s *StatusError
	if errors.As(err, &s) {
		return s.Status
	}
	return 0
}

// RetryAfter parses a Retry-After header value (delay in seconds or an HTTP
// date), capped at MaxRetryAfter; 0 when absent or invalid.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}
