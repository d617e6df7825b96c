package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
)

// arrival is one request a protectServer received.
type arrival struct {
	at     time.Time
	id     string
	status int
}

// protectServer is a webhook destination (binary mode) that records every
// request and answers as its mode says: "fail" 503 to all; "ok" 200 to all;
// "split" 200 to events with an even number in their id, 400 (permanent) to
// the others.
type protectServer struct {
	mode     atomic.Value
	mu       sync.Mutex
	arrivals []arrival
}

func newProtectServer(t *testing.T, mode string) (*protectServer, string) {
	p := &protectServer{}
	p.mode.Store(mode)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func (p *protectServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("ce-id")
	status := http.StatusOK
	switch p.mode.Load().(string) {
	case "fail":
		status = http.StatusServiceUnavailable
	case "split":
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "e"))
		if n%2 == 1 {
			status = http.StatusBadRequest
		}
	}
	p.mu.Lock()
	p.arrivals = append(p.arrivals, arrival{at: time.Now(), id: id, status: status})
	p.mu.Unlock()
	w.WriteHeader(status)
}

func (p *protectServer) got() []arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]arrival(nil), p.arrivals...)
}

// answered counts, per event id, the requests answered with status (any
// status when 0).
func (p *protectServer) answered(status int) map[string]int {
	out := map[string]int{}
	for _, a := range p.got() {
		if status == 0 || a.status == status {
			out[a.id]++
		}
	}
	return out
}

func ingestN(t *testing.T, r *Router, n int) {
	t.Helper()
	var evs []*event.Event
	for i := range n {
		evs = append(evs, newEvent(fmt.Sprintf("e%d", i), "t", map[string]int{"k": i % 3}))
	}
	if err := r.Ingester("src").Ingest(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// deadLetterAttempts maps the ids of the events in the dead-letter store to
// the attempts recorded with them.
func deadLetterAttempts(t *testing.T, r *Router) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, dl := range deadLetters(t, r) {
		var e event.Event
		if err := journal.DecodeEvent(dl.Data, &e); err != nil {
			t.Fatal(err)
		}
		out[e.ID()] = dl.Attempts
	}
	return out
}

// TestRateLimitSpacesDeliveries: a sink with rateLimit 5/s (burst 1) gets
// N events no faster than the rate: between the first and the last arrival
// at least (N-burst-1)/5 s (one interval of slack for the first request's
// own latency). The waits outlast the journal's ack wait (1s), yet no
// delivery is handed out twice and none spends an attempt waiting: every
// event arrives once, and the dead letters (400 to the odd ones) record 1
// attempt.
func TestRateLimitSpacesDeliveries(t *testing.T) {
	const n, burst, perSec = 8, 1, 5
	srv, url := newProtectServer(t, "split")
	p := compile(t, fmt.Sprintf(`
journal: {ackWait: 1s}
sinks:
  - name: slow
    type: webhook
    url: %s
    concurrency: 4
    rateLimit: {rate: %d/s, burst: %d}
routes:
  - {name: r, to: [slow], delivery: {retry: 3, backoffDelay: 10ms}}
`, url, perSec, burst))
	r := startRouter(t, p)
	if c, rl := r.sinkOrder[0].protection(); c != "" || rl != "5/s" {
		t.Errorf("protection() = %q, %q; want no circuit and 5/s", c, rl)
	}
	ingestN(t, r, n)
	eventually(t, 20*time.Second, "every event answered", func() bool { return len(srv.answered(0)) == n })
	eventually(t, 5*time.Second, "the dead letters stored", func() bool { return len(deadLetters(t, r)) == n/2 })

	got := srv.got()
	if len(got) != n {
		t.Errorf("%d requests for %d events; want one each: %v", len(got), n, srv.answered(0))
	}
	first, last := got[0].at, got[0].at
	for _, a := range got {
		if a.at.Before(first) {
			first = a.at
		}
		if a.at.After(last) {
			last = a.at
		}
	}
	if span, least := last.Sub(first), time.Duration(n-burst-1)*time.Second/perSec; span < least {
		t.Errorf("%d events arrived within %v; at %d/s (burst %d) it takes at least %v", n, span, perSec, burst, least)
	}
	for id, attempts := range deadLetterAttempts(t, r) {
		if attempts != 1 {
			t.Errorf("dead letter %s records %d attempts; want 1 (waiting for the rate limit is not an attempt)", id, attempts)
		}
	}
	if th := value(r.metrics.Throttled.WithLabelValues("slow")); th < n-burst-4 {
		t.Errorf("junction_sink_throttled_total = %v; want at least %d", th, n-burst-4)
	}
}

// TestCircuitBreaker: a sink that fails (503) trips its circuit
// (junction_sink_circuit_open 1); while it is open nothing reaches the sink
// but one probe per openFor; once the sink answers again the probe closes
// the circuit (metric 0) and every event gets through: the even ones
// delivered once each, the odd ones (400) dead-lettered with as many
// attempts recorded as the sink received requests for them, so the
// deliveries held back while the circuit was open spent none. Both with
// and without orderBy (the keyed lane holds deliveries back in place).
func TestCircuitBreaker(t *testing.T) {
	for _, orderBy := range []string{"", "orderBy: data.k, "} {
		name := "unordered"
		if orderBy != "" {
			name = "ordered"
		}
		t.Run(name, func(t *testing.T) { testCircuitBreaker(t, orderBy) })
	}
}

func testCircuitBreaker(t *testing.T, orderBy string) {
	const n, concurrency = 12, 2
	const openFor = 300 * time.Millisecond
	srv, url := newProtectServer(t, "fail")
	p := compile(t, fmt.Sprintf(`
sinks:
  - name: flaky
    type: webhook
    url: %s
    concurrency: %d
    circuitBreaker: {failureRatio: 0.5, minRequests: 4, openFor: %v, window: 10s}
routes:
  - {name: r, %sto: [flaky], delivery: {retry: 1000, backoffPolicy: constant, backoffDelay: 10ms}}
`, url, concurrency, openFor, orderBy))
	r := startRouter(t, p)
	gauge := r.metrics.CircuitOpen.WithLabelValues("flaky")
	if v := value(gauge); v != 0 {
		t.Fatalf("junction_sink_circuit_open = %v before any delivery; want 0", v)
	}
	ingestN(t, r, n)
	eventually(t, 10*time.Second, "the circuit to open", func() bool { return value(gauge) == 1 })
	if c, rl := r.sinkOrder[0].protection(); c == CircuitClosed || rl != "" {
		t.Errorf("protection() = %q, %q while the metric says open; want open or half-open and no rate limit", c, rl)
	}
	n0 := len(srv.got())
	eventually(t, 10*time.Second, "three probes", func() bool { return len(srv.got()) >= n0+3 })
	heldBack := value(r.metrics.HeldBack.WithLabelValues("flaky"))
	got := srv.got()
	if heldBack < 1 {
		t.Errorf("junction_sink_held_back_total = %v while the circuit was open; want deliveries held back", heldBack)
	}
	// got[n0] may be an attempt let through before the circuit opened;
	// from then on only probes, each openFor after the last one failed.
	for i := n0 + 1; i+1 < len(got); i++ {
		if gap := got[i+1].at.Sub(got[i].at); gap < openFor {
			t.Errorf("requests %d and %d reached the open circuit's sink %v apart; want at least openFor (%v)", i, i+1, gap, openFor)
		}
	}

	srv.mode.Store("split")
	eventually(t, 20*time.Second, "the circuit to close", func() bool { return value(gauge) == 0 })
	if c, _ := r.sinkOrder[0].protection(); c != CircuitClosed {
		t.Errorf("protection() = %q after recovery; want closed", c)
	}
	eventually(t, 20*time.Second, "every event through", func() bool {
		return len(srv.answered(http.StatusOK))+len(srv.answered(http.StatusBadRequest)) == n
	})
	eventually(t, 5*time.Second, "the dead letters stored", func() bool { return len(deadLetters(t, r)) == n/2 })
	for id, times := range srv.answered(http.StatusOK) {
		if times != 1 {
			t.Errorf("event %s delivered %d times; want 1", id, times)
		}
	}
	requests := srv.answered(0)
	dls := deadLetterAttempts(t, r)
	for id, attempts := range dls {
		if attempts != requests[id] {
			t.Errorf("dead letter %s records %d attempts, and the sink had %d requests for it; attempts were spent without a request", id, attempts, requests[id])
		}
	}
	if got := value(r.metrics.Deliveries.WithLabelValues("r", "flaky", OutcomeDelivered)); got != n/2 {
		t.Errorf("delivered = %v; want %d", got, n/2)
	}
}

// BenchmarkGuardAdmit: the cost a rate limit and a circuit breaker add to
// each attempt when neither holds it back.
func BenchmarkGuardAdmit(b *testing.B) {
	cfg, err := config.Parse("bench.yaml", []byte(`
sinks:
  - {name: s, type: log, rateLimit: 1000000/s, circuitBreaker: {}}
routes:
  - {name: r, to: [s], delivery: {onExhausted: drop}}
`), os.LookupEnv)
	if err != nil {
		b.Fatal(err)
	}
	g := newGuard(cfg.Sinks[0], newMetrics(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		done, _, ok := g.admit(ctx)
		if !ok {
			b.Fatal("held back")
		}
		done(nil)
	}
}

// TestGuardCircuit: the circuit breaker's states as the dispatcher sees
// them: failures that retrying may fix open it, permanent ones do not;
// while open nothing is admitted and the consumer is paused for what is
// left of openFor; then one probe is admitted (and the consumer paused
// while it is out), and its success closes the circuit.
func TestGuardCircuit(t *testing.T) {
	const openFor = 200 * time.Millisecond
	cfg, err := config.Parse("x.yaml", []byte(fmt.Sprintf(`
sinks:
  - {name: s, type: log, circuitBreaker: {failureRatio: 0.5, minRequests: 4, openFor: %v}}
routes:
  - {name: r, to: [s], delivery: {onExhausted: drop}}
`, openFor)), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	g := newGuard(cfg.Sinks[0], m, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	attempt := func(err error) {
		t.Helper()
		done, _, ok := g.admit(ctx)
		if !ok {
			t.Fatalf("attempt not admitted with the circuit %s", g.breaker.State())
		}
		done(err)
	}
	state := func() string { c, _ := g.state(); return c }
	permanent := sinks.Permanent(errors.New("HTTP 400 Bad Request"))
	retryable := sinks.Retryable(errors.New("HTTP 429 Too Many Requests"), 0)
	for range 10 {
		attempt(permanent) // the event's fault, not the destination's
	}
	attempt(nil)
	attempt(retryable)
	attempt(errors.New("connection refused"))
	if c := state(); c != CircuitClosed || g.paused() != 0 {
		t.Fatalf("circuit %s, paused %v after 11 answers and 2 failures; want closed, 0", c, g.paused())
	}
	// 2 failures of 13 answers so far; 9 more make 11 of 22, half.
	for k := 1; k <= 9; k++ {
		attempt(retryable)
		if c := state(); k < 9 && c != CircuitClosed {
			t.Fatalf("circuit %s after %d failures of %d answers; want closed", c, 2+k, 13+k)
		}
	}
	if c := state(); c != CircuitOpen || value(m.CircuitOpen.WithLabelValues("s")) != 1 {
		t.Fatalf("circuit %s, metric %v after 11 failures of 22; want open, 1", c, value(m.CircuitOpen.WithLabelValues("s")))
	}
	if p := g.paused(); p <= 0 || p > openFor {
		t.Errorf("paused() = %v while open; want what is left of openFor (%v)", p, openFor)
	}
	if _, again, ok := g.admit(ctx); ok || again <= 0 {
		t.Errorf("admit while open = %v, again in %v; want held back", ok, again)
	}
	eventually(t, 5*time.Second, "half-open after openFor", func() bool { return state() == CircuitHalfOpen })
	if p := g.paused(); p != 0 {
		t.Errorf("paused() = %v half-open before the probe; want 0", p)
	}
	probe, _, ok := g.admit(ctx)
	if !ok {
		t.Fatal("the probe was not admitted")
	}
	if _, _, ok := g.admit(ctx); ok {
		t.Error("a second delivery admitted while the probe is out")
	}
	if p := g.paused(); p <= 0 {
		t.Errorf("paused() = %v while the probe is out; want more than 0", p)
	}
	probe(nil)
	if c := state(); c != CircuitClosed || value(m.CircuitOpen.WithLabelValues("s")) != 0 {
		t.Errorf("circuit %s, metric %v after the probe succeeded; want closed, 0", c, value(m.CircuitOpen.WithLabelValues("s")))
	}
	if h := value(m.HeldBack.WithLabelValues("s")); h != 2 {
		t.Errorf("junction_sink_held_back_total = %v; want 2", h)
	}
}
