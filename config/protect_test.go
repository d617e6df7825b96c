package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  string
	}{
		{in: "200/s", want: 200},
		{in: " 30 / m ", want: 0.5},
		{in: "3600/h", want: 1},
		{in: "0.5/s", want: 0.5},
		{in: "1000000/s", want: 1000000},
		{in: "1000001/s", err: "over 1000000/s"},
		{in: "200", err: "invalid rate"},
		{in: "200/d", err: "invalid rate"},
		{in: "-1/s", err: "invalid rate"},
		{in: "1e3/s", err: "invalid rate"},
		{in: "NaN/s", err: "invalid rate"},
		{in: "./s", err: "invalid rate"},
		{in: "0/s", err: "must be more than 0"},
		{in: "0.000/h", err: "must be more than 0"},
	} {
		got, err := ParseRate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRate(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestSinkProtection: the forms of rateLimit and circuitBreaker and their
// defaults.
func TestSinkProtection(t *testing.T) {
	src := `
sinks:
  - {name: a, type: log, rateLimit: 200/s, circuitBreaker: {}}
  - {name: b, type: log, rateLimit: {rate: 30/m, burst: 7}, circuitBreaker: {failureRatio: 0.25, minRequests: 4, openFor: 2s, window: 10s}}
  - {name: c, type: log, rateLimit: 5/s}
  - {name: d, type: log}
routes:
  - {name: r, to: [a, b, c, d], delivery: {onExhausted: drop}}
`
	cfg, err := Parse("x.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, d := cfg.Sinks[0], cfg.Sinks[1], cfg.Sinks[2], cfg.Sinks[3]
	if rl := a.RateLimit; rl == nil || rl.PerSecond != 200 || rl.Burst != 20 || rl.Text != "200/s" {
		t.Errorf("a: rateLimit %+v; want 200/s, burst 20", rl)
	}
	want := CircuitBreaker{FailureRatio: 0.5, MinRequests: 20, OpenFor: Duration(30 * time.Second), Window: Duration(time.Minute)}
	if cb := a.CircuitBreaker; cb == nil || *cb != want {
		t.Errorf("a: circuitBreaker %+v; want the defaults %+v", cb, want)
	}
	if rl := b.RateLimit; rl == nil || rl.PerSecond != 0.5 || rl.Burst != 7 || rl.Text != "30/m" {
		t.Errorf("b: rateLimit %+v; want 30/m, burst 7", rl)
	}
	want = CircuitBreaker{FailureRatio: 0.25, MinRequests: 4, OpenFor: Duration(2 * time.Second), Window: Duration(10 * time.Second)}
	if cb := b.CircuitBreaker; cb == nil || *cb != want {
		t.Errorf("b: circuitBreaker %+v; want %+v", cb, want)
	}
	if rl := c.RateLimit; rl == nil || rl.Burst != 1 {
		t.Errorf("c: rateLimit %+v; want burst 1 (a tenth of 5/s, at least 1)", rl)
	}
	if d.RateLimit != nil || d.CircuitBreaker != nil {
		t.Errorf("d: protection %+v %+v; want none", d.RateLimit, d.CircuitBreaker)
	}
}
