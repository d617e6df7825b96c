package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
)

// flaky is a sink type for these tests: each event's first `failures`
// attempts are answered 503, the next ones succeed.
type flaky struct {
	Failures int `yaml:"failures"`
	mu       sync.Mutex
	seen     map[string]int
}

func (*flaky) Validate() error { return nil }
func (f *flaky) Build(context.Context, sinks.Deps) (sinks.Sink, error) {
	f.seen = map[string]int{}
	return f, nil
}
func (f *flaky) Deliver(_ context.Context, e *event.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[e.ID()]++
	if f.seen[e.ID()] <= f.Failures {
		return sinks.HTTPStatusError(http.StatusServiceUnavailable, http.Header{}, time.Now())
	}
	return nil
}
func (*flaky) Close() error { return nil }

func init() {
	sinks.Register("test-flaky", func() sinks.Config { return &flaky{} })
}

// getTrace asks GET /api/v1/events/{id} of the admin API at base.
func getTrace(t *testing.T, base, id, query string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/events/" + url.PathEscape(id) + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("GET %s: body not JSON: %v", id, err)
	}
	return resp.StatusCode, doc
}

// deliveryOf returns the delivery to sink of route in a trace, or nil.
func deliveryOf(doc map[string]any, route, sink string) map[string]any {
	routes, _ := doc["routes"].([]any)
	for _, r := range routes {
		r := r.(map[string]any)
		if r["route"] != route {
			continue
		}
		for _, d := range r["deliveries"].([]any) {
			if d := d.(map[string]any); d["sink"] == sink {
				return d
			}
		}
	}
	return nil
}

// outcomes lists the outcomes of a delivery's attempts.
func outcomes(d map[string]any) []string {
	var out []string
	if d == nil {
		return nil
	}
	for _, a := range d["attempts"].([]any) {
		out = append(out, fmt.Sprint(a.(map[string]any)["outcome"]))
	}
	return out
}

// TestEventTrace: the trace of an event shows when and by which source it
// was accepted, its routes, and each delivery's attempts with their
// outcome, status and error; several events with one id are told apart by
// source; a redrive shows; unknown ids are 404.
func TestEventTrace(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: flaky, type: test-flaky, failures: 1}
  - {name: never, type: test-recorder, fail: permanent}
routes:
  - {name: r1, filter: 'type == "t"', to: [flaky], delivery: {retry: 3, backoffDelay: 10ms}}
  - {name: r2, filter: 'type == "perm"', to: [never]}
`)
	r := startRouter(t, p)
	admin := httptest.NewServer(r.adminHandler())
	defer admin.Close()
	a, b := newEvent("dup", "none", nil), newEvent("dup", "none", nil)
	a.SetSource("/a")
	b.SetSource("/b")
	odd := newEvent("a/b c?d%", "t", nil)
	if err := r.Ingester("in").Ingest(context.Background(), []*event.Event{
		newEvent("e1", "t", nil), newEvent("e2", "perm", nil), newEvent("e3", "none", nil), a, b, odd,
	}); err != nil {
		t.Fatal(err)
	}

	var doc map[string]any
	eventually(t, 10*time.Second, "e1 delivered after a retry", func() bool {
		_, doc = getTrace(t, admin.URL, "e1", "")
		return deliveryOf(doc, "r1", "flaky")["state"] == "delivered"
	})
	if doc["id"] != "e1" || doc["source"] != "/test" || doc["type"] != "t" || doc["sourceName"] != "in" || doc["acceptedAt"] == nil {
		t.Errorf("e1 trace head: %v", doc)
	}
	d := deliveryOf(doc, "r1", "flaky")
	if got := strings.Join(outcomes(d), ","); got != "retried,delivered" {
		t.Fatalf("e1 attempts %s, want retried,delivered: %v", got, d)
	}
	first := d["attempts"].([]any)[0].(map[string]any)
	if first["status"] != 503.0 || first["error"] != "HTTP 503 Service Unavailable" || first["attempt"] != 1.0 || first["at"] == nil || first["durationMs"] == nil {
		t.Errorf("first attempt %v", first)
	}
	second := d["attempts"].([]any)[1].(map[string]any)
	if status, ok := second["status"]; !ok || status != nil || second["error"] != "" || second["attempt"] != 2.0 {
		t.Errorf("second attempt %v, want status null and error \"\"", second)
	}

	eventually(t, 10*time.Second, "e2 dead-lettered", func() bool {
		_, doc = getTrace(t, admin.URL, "e2", "")
		return deliveryOf(doc, "r2", "never")["state"] == "dead_lettered"
	})
	_, doc = getTrace(t, admin.URL, "e3", "")
	if doc["unrouted"] != true || len(doc["routes"].([]any)) != 0 {
		t.Errorf("e3: %v, want unrouted", doc)
	}
	eventually(t, 10*time.Second, "odd id delivered", func() bool {
		_, doc = getTrace(t, admin.URL, odd.ID(), "")
		return deliveryOf(doc, "r1", "flaky")["state"] == "delivered"
	})

	code, doc := getTrace(t, admin.URL, "dup", "")
	if evs, _ := doc["events"].([]any); code != 200 || len(evs) != 2 {
		t.Errorf("dup: %d %v, want two events", code, doc)
	}
	code, doc = getTrace(t, admin.URL, "dup", "?source=/b")
	if code != 200 || doc["source"] != "/b" {
		t.Errorf("dup from /b: %d %v", code, doc)
	}
	code, doc = getTrace(t, admin.URL, "dup", "?source=/c")
	if code != 404 || doc["error"] == nil {
		t.Errorf("dup from /c: %d %v, want 404", code, doc)
	}
	code, doc = getTrace(t, admin.URL, "unknown", "")
	if code != 404 || !strings.Contains(fmt.Sprint(doc["error"]), `"unknown"`) {
		t.Errorf("unknown: %d %v, want 404 naming it", code, doc)
	}

	// A redrive shows in the trace, then the new attempt.
	resp, err := http.Post(admin.URL+"/api/v1/deadletters/redrive", "application/json", bytes.NewReader([]byte(`{"route":"r2"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, 10*time.Second, "e2 redriven and dead-lettered again", func() bool {
		_, doc = getTrace(t, admin.URL, "e2", "")
		return strings.Join(outcomes(deliveryOf(doc, "r2", "never")), ",") == "dead_lettered,redriven,dead_lettered"
	})
	resp, err = http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	if !strings.Contains(metrics.String(), "\njunction_trace_dropped_total 0\n") {
		t.Errorf("/metrics has no junction_trace_dropped_total 0")
	}
}

// TestTraceOff: with journal.trace: false, events flow and the API says
// the event log is off.
func TestTraceOff(t *testing.T) {
	p := compile(t, `
journal: {trace: false}
sinks:
  - {name: out, type: test-recorder}
routes:
  - {name: r, to: [out]}
`)
	r := startRouter(t, p)
	admin := httptest.NewServer(r.adminHandler())
	defer admin.Close()
	if err := r.Ingester("in").Ingest(context.Background(), []*event.Event{newEvent("x", "t", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "delivered", func() bool { return len(recorderNamed("out").got()) == 1 })
	code, doc := getTrace(t, admin.URL, "x", "")
	if code != 404 || !strings.Contains(fmt.Sprint(doc["error"]), "journal.trace: false") {
		t.Errorf("%d %v, want 404 saying the event log is off", code, doc)
	}
}

// TestEventIDTooLong: an id past the bound is a 400 with a JSON error.
func TestEventIDTooLong(t *testing.T) {
	r := startRouter(t, compile(t, "sinks: []\n"))
	admin := httptest.NewServer(r.adminHandler())
	defer admin.Close()
	code, doc := getTrace(t, admin.URL, strings.Repeat("x", maxEventIDLen+1), "")
	if code != 400 || doc["error"] == nil {
		t.Errorf("%d %v, want 400", code, doc)
	}
}

// FuzzTrace: records of any content (the event log is shared by replicas
// of any version) build a trace without a panic, each delivery in a state
// of the contract.
func FuzzTrace(f *testing.F) {
	f.Add("accepted", "r", "s", "delivered", "/a", 1)
	f.Add("attempt", "", "", "", "", 0)
	f.Add("redriven", "r", "s", "redriven", "/b", -3)
	r := &Router{plan: &Plan{Routes: []*Route{{Name: "r", To: []string{"s", "t"}}}}}
	f.Fuzz(func(t *testing.T, kind, route, sink, outcome, source string, attempt int) {
		recs := []journal.TraceRecord{
			{Kind: journal.TraceAccepted, ID: "x", Source: source, Routes: []string{route, "r"}},
			{Kind: kind, ID: "x", Source: source, Route: route, Sink: sink, Outcome: outcome, Attempt: attempt, At: time.Unix(int64(attempt), 0)},
			{Kind: kind, ID: "x", Source: "/other", Route: route, Sink: sink, Outcome: outcome},
		}
		for _, tr := range r.traces(recs) {
			for _, rt := range tr.Routes {
				for _, d := range rt.Deliveries {
					switch d.State {
					case StatePending, OutcomeDelivered, OutcomeDeadLettered, OutcomeDropped:
					default:
						t.Fatalf("state %q", d.State)
					}
				}
			}
		}
	})
}
