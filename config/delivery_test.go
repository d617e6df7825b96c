package config

import (
	"testing"
	"time"
)

func TestDefaultPolicyNeverGivesUpWithinADay(t *testing.T) {
	p := DefaultPolicy
	// A sink down for 90 s (or 5 min, or 23 h): the old default (5 retries)
	// gave up after about 30 s; the new one keeps retrying.
	for _, tc := range []struct {
		attempt    int
		age, delay time.Duration
		want       bool
	}{
		{attempt: 6, age: 31 * time.Second, delay: time.Second, want: true},
		{attempt: 1000, age: 23 * time.Hour, delay: 5 * time.Minute, want: true},
		{attempt: 10, age: 24*time.Hour - time.Minute, delay: 2 * time.Minute, want: false},
		{attempt: 1, age: 25 * time.Hour, delay: 0, want: false},
	} {
		if got := p.Retries(tc.attempt, tc.age, tc.delay); got != tc.want {
			t.Errorf("Retries(%d, %v, %v) = %v, want %v", tc.attempt, tc.age, tc.delay, got, tc.want)
		}
	}
	if p.Backoff(100) > 5*time.Minute {
		t.Errorf("backoff not capped at 5m: %v", p.Backoff(100))
	}
}

func TestRetryCountBoundsWhenSet(t *testing.T) {
	p := DefaultPolicy
	p.Retry = 0
	if p.Retries(1, 0, time.Millisecond) {
		t.Error("retry: 0 allows a second attempt")
	}
	p.Retry = 3
	if !p.Retries(3, 0, time.Second) || p.Retries(4, 0, time.Second) {
		t.Error("retry: 3 must allow retries after attempts 1-3 and none after the 4th")
	}
}

func TestGivesUpAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Delivery
		want time.Duration
	}{
		{"default", Delivery{}, 24 * time.Hour},
		{"retry 5 exponential", Delivery{Retry: ptr(5)}, 500*time.Millisecond + time.Second + 2*time.Second + 4*time.Second + 8*time.Second},
		{"retry 0", Delivery{Retry: ptr(0)}, 0},
		{"maxAge below retries", Delivery{Retry: ptr(1000), MaxAge: ptr(Duration(10 * time.Minute))}, 10 * time.Minute},
		{"constant", Delivery{Retry: ptr(3), BackoffPolicy: BackoffConstant, BackoffDelay: ptr(time.Second)}, 3 * time.Second},
	} {
		if got := tc.d.Apply(DefaultPolicy).GivesUpAfter(); got != tc.want {
			t.Errorf("%s: GivesUpAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDeliveryValidate(t *testing.T) {
	for _, tc := range []struct {
		d    Delivery
		want string
	}{
		{Delivery{MaxAge: ptr(Duration(0))}, "[d.maxAge: must be between 1ms and 365d]"},
		{Delivery{MaxAge: ptr(Duration(400 * 24 * time.Hour))}, "[d.maxAge: must be between 1ms and 365d]"},
		{Delivery{OnExhausted: "ignore"}, `[d.onExhausted: must be keep or drop, not "ignore"]`},
		{Delivery{OnExhausted: "drop", DeadLetter: Ref{Name: "dead"}}, `[d.onExhausted: drop contradicts deadLetter "dead": say one or the other]`},
	} {
		err := tc.d.validate("d")
		if err == nil || err.Error() != tc.want {
			t.Errorf("validate(%+v) = %v, want %s", tc.d, err, tc.want)
		}
	}
	if err := (Delivery{MaxAge: ptr(Duration(time.Hour)), OnExhausted: "keep"}).validate("d"); err != nil {
		t.Errorf("valid delivery refused: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"14d": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90s": 90 * time.Second, "24h": 24 * time.Hour, "0": 0,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "1x", "-1d", "3d-", "99999999d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
	if s := Duration(14 * 24 * time.Hour).String(); s != "14d" {
		t.Errorf("String = %q", s)
	}
}

func ptr[T any](v T) *T { return &v }
