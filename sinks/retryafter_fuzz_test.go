package sinks

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzRetryAfter: a destination's Retry-After header, whatever it holds,
// gives a delay between 0 and MaxRetryAfter, and a number of seconds within
// the cap is taken as it is.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", " 5 ", "-1", "9223372036854775807", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "1.5", "+3"} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := RetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("RetryAfter(%q) = %v, outside [0, %v]", v, d, MaxRetryAfter)
		}
		if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && secs > 0 && secs <= int64(MaxRetryAfter/time.Second) && d != time.Duration(secs)*time.Second {
			t.Fatalf("RetryAfter(%q) = %v, want %ds", v, d, secs)
		}
	})
}
