package router

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/otlptest"
	_ "github.com/junctionhq/junction/sources/http" // the ingress under test
)

// hookServer is a webhook receiver that answers 503 to the first `fail`
// requests of each event, then 202, and keeps each request's headers.
type hookServer struct {
	mu      sync.Mutex
	fail    int
	seen    map[string]int
	headers []http.Header
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.headers = append(h.headers, r.Header.Clone())
	id := r.Header.Get("Ce-Id")
	h.seen[id]++
	if h.seen[id] <= h.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (h *hookServer) got() []http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]http.Header(nil), h.headers...)
}

// traceID and spanID read a traceparent.
func traceID(tp string) string {
	if p := strings.Split(tp, "-"); len(p) == 4 {
		return p[1]
	}
	return ""
}

func spanID(tp string) string {
	if p := strings.Split(tp, "-"); len(p) == 4 {
		return p[2]
	}
	return ""
}

// tracingRouter runs an http source on /events, a webhook sink to hook
// (retried quickly) and one route, with telemetry to rec when it is set.
func tracingRouter(t *testing.T, hook *hookServer, rec *otlptest.Receiver) *Router {
	t.Helper()
	// Spans are sent every 50 ms instead of every 5 s.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	telemetry := ""
	if rec != nil {
		telemetry = fmt.Sprintf("telemetry:\n  otlp:\n    endpoint: %s\n    serviceName: junction-test\n", rec.URL())
	}
	p := compile(t, telemetry+fmt.Sprintf(`
sources:
  - {name: src, type: http, path: /events}
sinks:
  - name: hook
    type: webhook
    url: %s/hook
routes:
  - name: r
    to: [hook]
    delivery: {retry: 5, backoffDelay: 10ms, maxDelay: 20ms, onExhausted: drop}
`, hs.URL))
	return startRouter(t, p)
}

func post(t *testing.T, r *Router, body string, header map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.IngressAddr()+"/events", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /events: %d", resp.StatusCode)
	}
}

// TestTracingSpans: a request with a traceparent header gives, in its
// trace, an ingest span (child of the caller's span), a route span (child
// of the ingest span) and one deliver span per attempt (children of the
// route span, the failed one marked as an error); the sink receives each
// attempt's span as its traceparent header, and the route span's context as
// the event's traceparent extension, which it did not have.
func TestTracingSpans(t *testing.T) {
	rec := otlptest.Start(t)
	hook := &hookServer{fail: 1, seen: map[string]int{}}
	r := tracingRouter(t, hook, rec)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	trace := traceID(caller)
	post(t, r, `{"specversion":"1.0","id":"e1","source":"/t","type":"t"}`, map[string]string{"traceparent": caller})

	eventually(t, 10*time.Second, "ingest, route and two deliver spans", func() bool {
		return len(rec.Named("ingest ", trace)) == 1 && len(rec.Named("route ", trace)) == 1 && len(rec.Named("deliver ", trace)) == 2
	})
	ingest, route, deliver := rec.Named("ingest ", trace)[0], rec.Named("route ", trace)[0], rec.Named("deliver ", trace)
	if ingest.Name != "ingest src" || ingest.Parent != spanID(caller) || ingest.Service != "junction-test" {
		t.Errorf("ingest span %v: want ingest src, child of the caller's span %s", ingest, spanID(caller))
	}
	if route.Name != "route r" || route.Parent != ingest.SpanID {
		t.Errorf("route span %v: want route r, child of the ingest span", route)
	}
	failed := 0
	for _, d := range deliver {
		if d.Name != "deliver hook" || d.Parent != route.SpanID || d.Attrs["junction.route"] != "r" || d.Attrs["cloudevents.event_id"] != "e1" {
			t.Errorf("deliver span %v: want deliver hook, child of the route span", d)
		}
		if d.Error {
			failed++
			if d.Attrs["junction.attempt"] != "1" {
				t.Errorf("the failed attempt is attempt %s, want 1", d.Attrs["junction.attempt"])
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d deliver spans are errors, want the first attempt's only", failed)
	}
	got := hook.got()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	spans := map[string]bool{deliver[0].SpanID: true, deliver[1].SpanID: true}
	for i, h := range got {
		tp := h.Get("traceparent")
		if traceID(tp) != trace || !spans[spanID(tp)] {
			t.Errorf("request %d: traceparent %q, want a deliver span of trace %s", i, tp, trace)
		}
		if ext := h.Get("ce-traceparent"); traceID(ext) != trace || spanID(ext) != route.SpanID {
			t.Errorf("request %d: ce-traceparent %q, want the route span %s", i, ext, route.SpanID)
		}
	}
}

// TestTracingEventExtension: without a header, an event's own
// traceparent extension is the parent, and the sink gets the extension
// unchanged.
func TestTracingEventExtension(t *testing.T) {
	rec := otlptest.Start(t)
	hook := &hookServer{seen: map[string]int{}}
	r := tracingRouter(t, hook, rec)
	const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	post(t, r, `{"specversion":"1.0","id":"e2","source":"/t","type":"t","traceparent":"`+own+`","tracestate":"v=1"}`, nil)
	trace := traceID(own)
	eventually(t, 10*time.Second, "ingest, route and deliver spans", func() bool {
		return len(rec.Named("ingest ", trace)) == 1 && len(rec.Named("route ", trace)) == 1 && len(rec.Named("deliver ", trace)) == 1
	})
	if in := rec.Named("ingest ", trace)[0]; in.Parent != spanID(own) {
		t.Errorf("ingest span %v: want a child of %s", in, spanID(own))
	}
	h := hook.got()[0]
	if h.Get("ce-traceparent") != own || h.Get("ce-tracestate") != "v=1" {
		t.Errorf("ce-traceparent %q, ce-tracestate %q: want the event's own", h.Get("ce-traceparent"), h.Get("ce-tracestate"))
	}
	if d := rec.Named("deliver ", trace)[0]; spanID(h.Get("traceparent")) != d.SpanID {
		t.Errorf("traceparent %q, want the deliver span %s", h.Get("traceparent"), d.SpanID)
	}
}

// TestTracingOff: without telemetry no span is made, and the caller's
// trace context still reaches the sink as it came, across a retry.
func TestTracingOff(t *testing.T) {
	hook := &hookServer{fail: 1, seen: map[string]int{}}
	r := tracingRouter(t, hook, nil)
	if r.tracing.on() {
		t.Fatal("tracing is on without telemetry")
	}
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	post(t, r, `{"specversion":"1.0","id":"e3","source":"/t","type":"t"}`, map[string]string{"traceparent": caller, "tracestate": "a=b"})
	eventually(t, 10*time.Second, "two attempts", func() bool { return len(hook.got()) == 2 })
	for i, h := range hook.got() {
		if h.Get("traceparent") != caller || h.Get("tracestate") != "a=b" || h.Get("ce-traceparent") != caller {
			t.Errorf("request %d: traceparent %q, tracestate %q, ce-traceparent %q: want the caller's", i, h.Get("traceparent"), h.Get("tracestate"), h.Get("ce-traceparent"))
		}
	}
	// And nothing without one.
	post(t, r, `{"specversion":"1.0","id":"e4","source":"/t","type":"t"}`, nil)
	eventually(t, 10*time.Second, "e4's attempts", func() bool { return len(hook.got()) == 4 })
	if h := hook.got()[3]; h.Get("traceparent") != "" || h.Get("ce-traceparent") != "" {
		t.Errorf("without a trace context: traceparent %q, ce-traceparent %q", h.Get("traceparent"), h.Get("ce-traceparent"))
	}
}

// TestTracingBatchOwnTraces: in a batch request, an event whose own
// traceparent extension names another trace than the request's gets its
// route span in its own trace, linked to the request's ingest span.
func TestTracingBatchOwnTraces(t *testing.T) {
	rec := otlptest.Start(t)
	hook := &hookServer{seen: map[string]int{}}
	r := tracingRouter(t, hook, rec)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.IngressAddr()+"/events", bytes.NewBufferString(
		`[{"specversion":"1.0","id":"b1","source":"/t","type":"t"},{"specversion":"1.0","id":"b2","source":"/t","type":"t","traceparent":"`+own+`"}]`))
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	req.Header.Set("traceparent", caller)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST batch: %d", resp.StatusCode)
	}
	eventually(t, 10*time.Second, "a route span in each trace", func() bool {
		return len(rec.Named("route ", traceID(caller))) == 1 && len(rec.Named("route ", traceID(own))) == 1 && len(rec.Named("ingest ", "")) == 1
	})
	ingest := rec.Named("ingest ", "")[0]
	if ingest.TraceID != traceID(caller) {
		t.Errorf("ingest span %v: want the request's trace", ingest)
	}
	if b := rec.Named("route ", traceID(caller))[0]; b.Parent != ingest.SpanID || b.Attrs["cloudevents.event_id"] != "b1" {
		t.Errorf("route span of b1 %v: want a child of the ingest span", b)
	}
	b2 := rec.Named("route ", traceID(own))[0]
	if b2.Parent != spanID(own) || len(b2.Links) != 1 || b2.Links[0] != ingest.TraceID+"-"+ingest.SpanID {
		t.Errorf("route span of b2 %v, links %v: want a child of its own parent, linked to the ingest span", b2, b2.Links)
	}
}
