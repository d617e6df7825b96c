package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/otlptest"
)

// fastSpans has the binary send its spans every 100 ms (the SDK's
// default is 5 s).
const fastSpans = "OTEL_BSP_SCHEDULE_DELAY=100"

// startEnv is start with extra environment variables.
func startEnv(t testing.TB, text string, env ...string) *junction {
	t.Helper()
	dir := t.TempDir()
	cfg, ingest, admin := writeConfig(t, dir, text)
	j := &junction{t: t, dir: dir, cfg: cfg, ingest: ingest, admin: admin, env: env}
	j.restart()
	t.Cleanup(j.stop)
	return j
}

// headerSink is a webhook receiver on loopback that keeps each request's
// headers and answers 503 while failing is set, else 200.
type headerSink struct {
	url     string
	failing atomic.Bool
	mu      sync.Mutex
	reqs    []http.Header
	ok      int
}

func newHeaderSink(t testing.TB) *headerSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &headerSink{url: "http://" + ln.Addr().String() + "/hook"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Header.Clone())
		if !s.failing.Load() {
			s.ok++
		}
		s.mu.Unlock()
		if s.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *headerSink) requests() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.reqs...)
}

func (s *headerSink) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok
}

// traceOf returns the trace id of a traceparent, "" when it is not one.
func traceOf(tp string) string {
	if p := strings.Split(tp, "-"); len(p) == 4 {
		return p[1]
	}
	return ""
}

// TestTracingAcrossRestart: a delivery that fails, then is retried by the
// next process after a restart, keeps the trace of the request that
// brought its event: the attempts of both processes are children of the
// same route span, in the caller's trace, and the sink receives that trace
// in traceparent.
func TestTracingAcrossRestart(t *testing.T) {
	rec := otlptest.Start(t)
	hook := newHeaderSink(t)
	hook.failing.Store(true)
	j := startEnv(t, httpSource+fmt.Sprintf(`telemetry:
  otlp: {endpoint: %q}
sinks:
  - name: hook
    type: webhook
    url: %q
routes:
  - name: r
    to: [hook]
    delivery: {backoffDelay: 300ms, maxDelay: 300ms}
`, rec.URL(), hook.url), fastSpans)
	const caller = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	trace := traceOf(caller)
	code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": "r1", "ce-source": "/test", "ce-type": "t", "traceparent": caller,
	}, `{"n":1}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, body)
	}
	waitFor(t, 15*time.Second, "a failed attempt's span", func() bool {
		for _, s := range rec.Named("deliver ", trace) {
			if s.Error {
				return true
			}
		}
		return false
	})
	j.stop()
	before := len(rec.Named("deliver ", trace))
	hook.failing.Store(false)
	j.restart()
	waitFor(t, 20*time.Second, "the delivery after the restart", func() bool { return hook.delivered() == 1 })
	waitFor(t, 10*time.Second, "the span of the successful attempt", func() bool {
		for _, s := range rec.Named("deliver ", trace) {
			if !s.Error {
				return true
			}
		}
		return false
	})
	routes := rec.Named("route ", trace)
	if len(routes) != 1 {
		t.Fatalf("route spans in the trace: %v", routes)
	}
	deliver := rec.Named("deliver ", trace)
	if len(deliver) <= before {
		t.Fatalf("no deliver span after the restart: %d before, %d after", before, len(deliver))
	}
	for _, s := range deliver {
		if s.Parent != routes[0].SpanID {
			t.Errorf("deliver span %v: not a child of the route span %s", s, routes[0].SpanID)
		}
	}
	reqs := hook.requests()
	for i, h := range reqs {
		if traceOf(h.Get("traceparent")) != trace {
			t.Errorf("request %d: traceparent %q, want trace %s", i, h.Get("traceparent"), trace)
		}
	}
	t.Logf("%d attempts, %d deliver spans (%d before the restart), all children of route span %s in trace %s",
		len(reqs), len(deliver), before, routes[0].SpanID, trace)
}
