package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// RateLimit is a sink's `rateLimit` key: on average at most PerSecond
// deliveries a second, Burst of them at once. Written `rateLimit: 200/s`
// or `rateLimit: {rate: 200/s, burst: 20}`.
type RateLimit struct {
	// PerSecond is the rate in deliveries per second.
	PerSecond float64
	// Text is the rate as written ("200/s", "30/m").
	Text string
	// Burst is how many deliveries may start at once after a quiet time;
	// by default a tenth of a second's worth, at least 1.
	Burst int
}

// CircuitBreaker is a sink's `circuitBreaker` key: the circuit opens when,
// within Window, at least MinRequests attempts were made and FailureRatio
// of them failed (retryably: the destination down, overloaded or timing
// out); while it is open nothing is attempted, and after OpenFor one probe
// goes, whose success closes it again.
type CircuitBreaker struct {
	FailureRatio float64  `yaml:"failureRatio"`
	MinRequests  int      `yaml:"minRequests"`
	OpenFor      Duration `yaml:"openFor"`
	// Window is how far back attempts count, a rolling window.
	Window Duration `yaml:"window"`
}

// Defaults and bounds of a sink's rateLimit and circuitBreaker keys.
const (
	MaxRatePerSecond           = 1_000_000
	MaxRateBurst               = 1_000_000
	DefaultBreakerFailureRatio = 0.5
	DefaultBreakerMinRequests  = 20
	DefaultBreakerOpenFor      = 30 * time.Second
	DefaultBreakerWindow       = time.Minute
	MinBreakerOpenFor          = 100 * time.Millisecond // the error texts name these four
	MaxBreakerOpenFor          = time.Hour
	MinBreakerWindow           = time.Second
	MaxBreakerWindow           = 24 * time.Hour
	MaxBreakerMinRequests      = 1_000_000
)

// rateUnits are the units a rate may be written per, in seconds.
var rateUnits = map[string]float64{"s": 1, "m": 60, "h": 3600}

// ParseRate reads a rate written as a number of deliveries per second,
// minute or hour ("200/s", "30/m", "0.5/s", "3600/h") and returns it in
// deliveries per second. The number is a plain decimal (no sign, exponent
// or underscore), more than 0, and the rate at most MaxRatePerSecond.
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	num, unit, ok := strings.Cut(t, "/")
	per, known := rateUnits[strings.TrimSpace(unit)]
	num = strings.TrimSpace(num)
	if !ok || !known || !plainDecimal(num) {
		return 0, fmt.Errorf("invalid rate %q (use a number per s, m or h: 200/s, 30/m, 1000/h)", clip(s, 40))
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) {
		return 0, fmt.Errorf("rate %q: the number must be more than 0", clip(s, 40))
	}
	if r := n / per; r > MaxRatePerSecond {
		return 0, fmt.Errorf("rate %q is over %d/s", clip(s, 40), MaxRatePerSecond)
	} else if r <= 0 {
		return 0, fmt.Errorf("rate %q: the number must be more than 0", clip(s, 40))
	} else {
		return r, nil
	}
}

// plainDecimal reports whether s is digits with at most one '.' between
// or after them.
func plainDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && i > 0:
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1 && len(s) <= 32
}

// clip shortens s for an error text.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// DefaultBurst is the burst of a rate without one: a tenth of a second's
// worth, at least 1.
func DefaultBurst(perSecond float64) int {
	return max(1, int(math.Min(perSecond/10, MaxRateBurst)))
}

// rateLimitOf reads a sink's rateLimit key (n is its YAML value); nil when
// it is null or not valid (reported in errs).
func rateLimitOf(n *yaml.Node, where string, errs *Errors) *RateLimit {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		return nil
	}
	var form struct {
		Rate  *yaml.Node `yaml:"rate"`
		Burst *int       `yaml:"burst"`
	}
	rateNode := n
	switch n.Kind {
	case yaml.ScalarNode:
	case yaml.MappingNode:
		if err := Decode(n, &form); err != nil {
			errs.Add(n, where, prefixed("rateLimit", err))
			return nil
		}
		if form.Rate == nil {
			errs.Addf(PosOf(n), where, "rateLimit: missing rate (such as rate: 200/s)")
			return nil
		}
		rateNode = form.Rate
	default:
		errs.Addf(PosOf(n), where, "rateLimit: expected a rate such as 200/s or a mapping with rate and burst, got %s", describe(n))
		return nil
	}
	if rateNode.Kind != yaml.ScalarNode {
		errs.Addf(PosOf(rateNode), where, "rateLimit: expected a rate such as 200/s, got %s", describe(rateNode))
		return nil
	}
	perSec, err := ParseRate(rateNode.Value)
	if err != nil {
		errs.Addf(PosOf(rateNode), where, "rateLimit: %v", err)
		return nil
	}
	rl := &RateLimit{PerSecond: perSec, Text: strings.Join(strings.Fields(rateNode.Value), ""), Burst: DefaultBurst(perSec)}
	if form.Burst != nil {
		if *form.Burst < 1 || *form.Burst > MaxRateBurst {
			errs.Addf(PosOf(Locate(n, "burst")), where, "rateLimit.burst: must be between 1 and %d", MaxRateBurst)
			return nil
		}
		rl.Burst = *form.Burst
	}
	return rl
}

// circuitBreakerOf checks a sink's decoded circuitBreaker key (n is its
// YAML value) and returns it with its defaults set, or nil when it is null
// or not valid.
func circuitBreakerOf(n *yaml.Node, cb *CircuitBreaker, where string, errs *Errors) *CircuitBreaker {
	if cb == nil {
		return nil // null, or not decoded (reported by Decode)
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	ok := true
	bad := func(key, format string, args ...any) {
		errs.Addf(PosOf(Locate(n, key)), where, "circuitBreaker."+key+": "+format, args...)
		ok = false
	}
	has := func(key string) bool { return Locate(n, key) != n }
	if !has("failureRatio") {
		cb.FailureRatio = DefaultBreakerFailureRatio
	} else if !(cb.FailureRatio > 0 && cb.FailureRatio <= 1) {
		bad("failureRatio", "must be more than 0 and at most 1")
	}
	if !has("minRequests") {
		cb.MinRequests = DefaultBreakerMinRequests
	} else if cb.MinRequests < 1 || cb.MinRequests > MaxBreakerMinRequests {
		bad("minRequests", "must be between 1 and %d", MaxBreakerMinRequests)
	}
	if !has("openFor") {
		cb.OpenFor = Duration(DefaultBreakerOpenFor)
	} else if d := time.Duration(cb.OpenFor); d < MinBreakerOpenFor || d > MaxBreakerOpenFor {
		bad("openFor", "must be between 100ms and 1h")
	}
	if !has("window") {
		cb.Window = Duration(DefaultBreakerWindow)
	} else if d := time.Duration(cb.Window); d < MinBreakerWindow || d > MaxBreakerWindow {
		bad("window", "must be between 1s and 24h")
	}
	if !ok {
		return nil
	}
	return cb
}

// prefixed puts key before the messages of config errors from decoding
// key's value.
func prefixed(key string, err error) error {
	var list Errors
	if errors.As(err, &list) {
		for _, e := range list {
			if !strings.HasPrefix(e.Msg, key) {
				e.Msg = key + ": " + e.Msg
			}
		}
		return list
	}
	return err
}

// protectionOf reads a sink's rateLimit and circuitBreaker keys from its
// common keys (cb is the decoded circuitBreaker).
func protectionOf(common *yaml.Node, cb *CircuitBreaker, where string, errs *Errors) (*RateLimit, *CircuitBreaker) {
	var rl *RateLimit
	if n := Locate(common, "rateLimit"); n != common {
		rl = rateLimitOf(n, where, errs)
	}
	if n := Locate(common, "circuitBreaker"); n != common {
		cb = circuitBreakerOf(n, cb, where, errs)
	}
	return rl, cb
}
