package router

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
)

// Per-sink protection: a rate limit and a circuit breaker (the sink's
// rateLimit and circuitBreaker keys) that stand between the journal and the
// sink. Neither spends a delivery's attempts:
//
//   - throttled, a delivery waits for its token before its attempt starts
//     (so the wait is not part of the attempt's timeout), its journal
//     message held and reported in progress; the workers waiting, the
//     consumer fetches no more than its window;
//   - while the circuit is open the consumer fetches nothing
//     (ConsumeOptions.Paused) and the deliveries already fetched go back to
//     the journal as attempts not made (Delivery.Release); after openFor one
//     delivery goes as the probe, and its success closes the circuit.
//
// Only failures that retrying may fix count against the circuit: network
// errors, timeouts, 408, 429 and 5xx (what sinks.Classify calls
// retryable). A permanent failure (any other 4xx) is the event's fault, not
// the destination's: it counts as an answer, like a success.
//
// It wraps the attempt rather than the Sink: a decorator's Deliver runs
// inside the attempt's timeout and cannot hand a delivery back unattempted.

// Circuit states, as protection reports them.
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half-open"
)

// errNotAttempted is given to the circuit breaker for an admitted attempt
// that was not made (shutdown came first): it counts neither way.
var errNotAttempted = errors.New("attempt not made")

// halfOpenRelease is how soon a delivery that found the probe out goes
// again.
const halfOpenRelease = 250 * time.Millisecond

// guard is one sink's protection; nil when it has none.
type guard struct {
	sink string
	log  *slog.Logger

	limiter   *rate.Limiter
	rateText  string
	throttled prometheus.Counter

	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor  time.Duration
	open     prometheus.Gauge
	heldBack prometheus.Counter
	mu       sync.Mutex
	// openedAt is when the circuit last opened.
	openedAt time.Time
}

// newGuard makes the protection of a sink from its config; nil when it has
// neither a rate limit nor a circuit breaker.
func newGuard(p config.Plugin, m *Metrics, log *slog.Logger) *guard {
	if p.RateLimit == nil && p.CircuitBreaker == nil {
		return nil
	}
	g := &guard{sink: p.Name, log: log}
	if rl := p.RateLimit; rl != nil {
		g.limiter = rate.NewLimiter(rate.Limit(rl.PerSecond), rl.Burst)
		g.rateText = rl.Text
		g.throttled = m.Throttled.WithLabelValues(p.Name)
	}
	if cb := p.CircuitBreaker; cb != nil {
		g.openFor = time.Duration(cb.OpenFor)
		g.open = m.CircuitOpen.WithLabelValues(p.Name)
		g.open.Set(0)
		g.heldBack = m.HeldBack.WithLabelValues(p.Name)
		window := time.Duration(cb.Window)
		ratio, minReq := cb.FailureRatio, uint32(cb.MinRequests)
		g.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:         p.Name,
			MaxRequests:  1,
			Interval:     window,
			BucketPeriod: window / 10,
			Timeout:      g.openFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				answered := c.TotalSuccesses + c.TotalFailures
				return answered >= minReq && float64(c.TotalFailures) >= ratio*float64(answered)
			},
			IsSuccessful: func(err error) bool {
				permanent, _ := sinks.Classify(err)
				return err == nil || permanent
			},
			IsExcluded:    func(err error) bool { return errors.Is(err, errNotAttempted) },
			OnStateChange: g.changed,
		})
	}
	return g
}

// changed logs and counts a change of the circuit's state. The breaker
// calls it holding its lock: it must not call the breaker.
func (g *guard) changed(_ string, from, to gobreaker.State) {
	log := g.log.With("from", stateName(from), "to", stateName(to))
	switch to {
	case gobreaker.StateOpen:
		g.mu.Lock()
		g.openedAt = time.Now()
		g.mu.Unlock()
		log.Warn("circuit open: deliveries wait in the journal", "open_for", g.openFor)
		g.open.Set(1)
	case gobreaker.StateHalfOpen:
		log.Info("circuit half-open: one delivery goes as a probe")
	case gobreaker.StateClosed:
		log.Info("circuit closed: deliveries flow again")
		g.open.Set(0)
	}
}

func stateName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateOpen:
		return CircuitOpen
	case gobreaker.StateHalfOpen:
		return CircuitHalfOpen
	}
	return CircuitClosed
}

// state is the circuit's state ("" without a circuit breaker) and the rate
// limit as written ("" without one).
func (g *guard) state() (circuit, rateLimit string) {
	if g == nil {
		return "", ""
	}
	if g.breaker != nil {
		circuit = stateName(g.breaker.State())
	}
	return circuit, g.rateText
}

// paused is how long the sink takes no more deliveries: what is left of
// openFor while the circuit is open, a short while while the probe is out,
// else 0.
func (g *guard) paused() time.Duration {
	if g == nil || g.breaker == nil {
		return 0
	}
	switch g.breaker.State() {
	case gobreaker.StateOpen:
		g.mu.Lock()
		left := time.Until(g.openedAt.Add(g.openFor))
		g.mu.Unlock()
		return max(left, time.Millisecond)
	case gobreaker.StateHalfOpen:
		if c := g.breaker.Counts(); c.Requests > c.TotalExclusions {
			return halfOpenRelease
		}
	}
	return 0
}

// admit asks whether an attempt may start now. With the circuit open (or
// its probe out) it returns ok false and how soon to try again; otherwise
// it waits for a rate-limit token, then asks the circuit breaker again (it
// may have opened during the wait), and returns done, to be called with
// the attempt's error. ok is false also when ctx ends while waiting.
func (g *guard) admit(ctx context.Context) (done func(error), again time.Duration, ok bool) {
	if wait := g.paused(); wait > 0 {
		return g.holdBack(wait)
	}
	if g.limiter != nil && !g.limiter.Allow() {
		r := g.limiter.Reserve()
		if wait := r.Delay(); wait > 0 {
			g.throttled.Inc()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return nil, 0, false
			}
		}
	}
	if g.breaker == nil {
		return func(error) {}, 0, true
	}
	done, err := g.breaker.Allow()
	if err != nil {
		return g.holdBack(g.paused())
	}
	return done, 0, true
}

// holdBack counts a delivery held back by the circuit, to go again after
// wait (at least halfOpenRelease).
func (g *guard) holdBack(wait time.Duration) (func(error), time.Duration, bool) {
	g.heldBack.Inc()
	return nil, max(wait, halfOpenRelease), false
}

// admit is the sink runtime's gate before an attempt (see guard.admit):
// when the attempt may not start, the delivery goes back to the journal
// as an attempt not made, and ok is false.
func (s *sinkRuntime) admit(ctx context.Context, d *journal.Delivery) (done func(ctx context.Context, err error), ok bool) {
	if s.guard == nil {
		return func(context.Context, error) {}, true
	}
	bdone, again, ok := s.guard.admit(ctx)
	if !ok {
		s.log.Debug("delivery held back: circuit open or shutting down", "route", d.Route, "seq", d.Seq, "again_in", again)
		s.settled(d, d.Release(again))
		return nil, false
	}
	return func(ctx context.Context, err error) {
		if ctx.Err() != nil && err != nil {
			err = errNotAttempted // cut short by shutdown: not the destination's fault
		}
		bdone(err)
	}, true
}

// protection is the sink's circuit state ("closed", "open", "half-open";
// "" without a circuitBreaker) and its rate limit as written ("200/s"; ""
// without a rateLimit), for the status API.
func (s *sinkRuntime) protection() (circuit string, rateLimit string) {
	return s.guard.state()
}
