// Package backoff is Junction's one backoff: capped exponential steps with
// one jitter, used by delivery retries (config.Policy), the reconnect loops
// of the queue connectors and their pollers.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exponential is base doubled n-1 times (n counts from 1), capped at max.
// It never overflows: doubling stops at max.
func Exponential(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		if d > max/2 {
			return max
		}
		d *= 2
	}
	return min(d, max)
}

// Jitter returns a random duration between 80 % and 100 % of d, so that
// retries of many things that failed together spread out, and no wait is
// longer than the step it was drawn from.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - rand.N(d/5+1)
}

// Delay is the jittered exponential wait before retry n (from 1) between
// base and max, for callers that count their attempts themselves.
func Delay(n int, base, max time.Duration) time.Duration { return Jitter(Exponential(n, base, max)) }

// Backoff is a stateful exponential backoff with jitter for loops that
// retry until a success: Next returns the wait before the next attempt,
// from Min doubling up to Max; Reset starts again at Min. The zero state is
// reset.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next advances the step and returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	if b.Min <= 0 || b.Exponential() < b.Max {
		b.n++
	}
	return Jitter(b.Exponential())
}

// Exponential is the current step before jitter (0 after Reset).
func (b *Backoff) Exponential() time.Duration {
	if b.n == 0 {
		return 0
	}
	return Exponential(b.n, b.Min, b.Max)
}

// Reset starts the backoff again at Min, after a success.
func (b *Backoff) Reset() { b.n = 0 }
