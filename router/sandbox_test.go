package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
)

const sandboxConfig = `
sources:
  - {name: shop, type: test-idle}
  - {name: crm, type: test-idle}
sinks:
  - {name: sb-billing, type: test-recorder}
  - {name: sb-audit, type: test-recorder}
  - {name: sb-dead, type: test-recorder}
routes:
  - name: big-orders
    filter: type == "com.example.order.created" && data.amount > 100
    transform:
      attributes:
        type: '"com.example.order.big"'
      data: '{"id": data.orderId, "total": data.amount}'
    to: [sb-billing]
  - name: audit
    to: [sb-audit]
    orderBy: data.orderId
    priority: '7'
  - name: crm-only
    sources: [crm]
    to: [sb-audit]
  - name: needs-tier
    filter: data.tier > 1
    to: [sb-audit]
  - name: rename
    filter: type == "com.example.order.created"
    transform:
      attributes:
        type: data.newType
    to: [sb-billing]
    delivery: {deadLetter: sb-dead}
`

func TestTestEvent(t *testing.T) {
	p := compile(t, sandboxConfig)
	e := newEvent("1", "com.example.order.created", map[string]any{"amount": 150, "orderId": "o1"})
	before, _ := json.Marshal(e)
	results, err := TestEvent(p, "", e)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := json.Marshal(e); string(after) != string(before) {
		t.Errorf("TestEvent changed the event:\n%s\nwas\n%s", after, before)
	}
	byRoute := map[string]RouteResult{}
	var order []string
	for _, r := range results {
		byRoute[r.Route] = r
		order = append(order, r.Route)
	}
	if got := strings.Join(order, ","); got != "big-orders,audit,crm-only,needs-tier,rename" {
		t.Fatalf("routes %s, want every route in config order", got)
	}

	big := byRoute["big-orders"]
	if !big.Matched || big.Error != "" || len(big.Deliveries) != 1 || big.Deliveries[0].Sink != "sb-billing" {
		t.Fatalf("big-orders = %+v", big)
	}
	if d := big.Deliveries[0].Event; d.Type() != "com.example.order.big" || d.ID() != "1" || string(d.Data()) != `{"id":"o1","total":150}` {
		t.Errorf("big-orders delivers %s", d)
	}

	audit := byRoute["audit"]
	if !audit.Matched || len(audit.Deliveries) != 1 {
		t.Fatalf("audit = %+v", audit)
	}
	if d := audit.Deliveries[0]; d.Event.Type() != "com.example.order.created" || d.OrderKey != "o1" || d.Priority != 7 || d.NotBefore != nil {
		t.Errorf("audit delivery = %+v, want the event unchanged, key o1, priority 7", d)
	}

	if r := byRoute["crm-only"]; r.Matched || len(r.Deliveries) != 0 {
		t.Errorf("crm-only matched an event from shop (the first source): %+v", r)
	}
	if r := byRoute["needs-tier"]; r.Matched || !strings.Contains(r.Error, "evaluate filter") || len(r.Deliveries) != 0 {
		t.Errorf("needs-tier = %+v, want no match and the filter's error", r)
	}

	rename := byRoute["rename"]
	if !rename.Matched || !strings.HasPrefix(rename.Error, "transform: ") || len(rename.Deliveries) != 1 {
		t.Fatalf("rename = %+v, want a match, the transform's error and the dead letter", rename)
	}
	dl := rename.Deliveries[0]
	if ext := dl.Event.Extensions(); dl.Sink != "sb-dead" || !dl.DeadLetter || ext[ExtRoute] != "rename" ||
		ext[ExtSink] != "sb-billing" || fmt.Sprint(ext[ExtAttempts]) != "0" || !strings.HasPrefix(fmt.Sprint(ext[ExtError]), "transform: ") {
		t.Errorf("rename dead letter = %+v %s", dl, dl.Event)
	}
}

func TestTestEventSources(t *testing.T) {
	p := compile(t, sandboxConfig)
	e := newEvent("2", "other", map[string]any{"tier": 2})
	results, err := TestEvent(p, "crm", e)
	if err != nil {
		t.Fatal(err)
	}
	var matched []string
	for _, r := range results {
		if r.Matched {
			matched = append(matched, r.Route)
		}
	}
	if got := strings.Join(matched, ","); got != "audit,crm-only,needs-tier" {
		t.Errorf("matched %s, want audit,crm-only,needs-tier", got)
	}
	// A sink's name is a source too: a function's replies come from it.
	if _, err := TestEvent(p, "sb-audit", e); err != nil {
		t.Errorf("source sb-audit: %v", err)
	}
	_, err = TestEvent(p, "nope", e)
	if err == nil || err.Error() != `unknown source "nope" (known: shop, crm)` {
		t.Errorf("unknown source: %v", err)
	}
}

func TestParseTestRequest(t *testing.T) {
	const ev = `{"specversion":"1.0","id":"1","source":"/s","type":"t"}`
	tests := []struct {
		name, body, source, err string
	}{
		{name: "structured event", body: ev},
		{name: "wrapped", body: `{"event":` + ev + `,"source":"crm"}`, source: "crm"},
		{name: "wrapped without source", body: `{"event":` + ev + `}`},
		{name: "not JSON", body: `nope`, err: "body: invalid character"},
		{name: "empty", body: ``, err: "body: unexpected end of JSON input"},
		{name: "array", body: `[` + ev + `]`, err: "body: expected a JSON object, got array"},
		{name: "missing attribute", body: `{"specversion":"1.0","id":"1","source":"/s"}`, err: "event: missing required attribute type"},
		{name: "wrapped missing id", body: `{"event":{"specversion":"1.0","source":"/s","type":"t"}}`, err: "event: missing required attribute id"},
		{name: "unknown key", body: `{"event":` + ev + `,"sink":"x"}`, err: `body: unknown key "sink"`},
		{name: "source not a string", body: `{"event":` + ev + `,"source":3}`, err: "source: must be a string"},
		{name: "bad extension", body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","n":1.5}`, err: "event: invalid CloudEvents JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source, e, err := ParseTestRequest([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if source != tt.source || e.ID() != "1" || e.Type() != "t" {
				t.Errorf("got source %q, event %s", source, e)
			}
		})
	}
}

// TestRoutesTestAPI posts events to POST /api/v1/routes/test of a running
// router over HTTP: the answer shows each route, and nothing is journaled,
// counted as received or delivered.
func TestRoutesTestAPI(t *testing.T) {
	p := compile(t, sandboxConfig)
	p.Config.HTTP.MaxBodySize = 4096
	r := startRouter(t, p)
	srv := httptest.NewServer(r.adminHandler())
	defer srv.Close()
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/api/v1/routes/test", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		return resp.StatusCode, out
	}

	const ev = `{"specversion":"1.0","id":"1","source":"/shop","type":"com.example.order.created",
		"datacontenttype":"application/json","data":{"amount":150,"orderId":"o1"}}`
	code, out := post(ev)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, out)
	}
	routes := out["routes"].([]any)
	big := routes[0].(map[string]any)
	want := `{"deliveries":[{"event":{"data":{"id":"o1","total":150},"datacontenttype":"application/json","id":"1","source":"/shop","specversion":"1.0","type":"com.example.order.big"},"sink":"sb-billing"}],"matched":true,"route":"big-orders"}`
	if got, _ := json.Marshal(big); string(got) != want {
		t.Errorf("big-orders:\n%s\nwant\n%s", got, want)
	}
	if crm := routes[2].(map[string]any); crm["matched"] != false || len(crm["deliveries"].([]any)) != 0 {
		t.Errorf("crm-only = %v", crm)
	}

	code, out = post(`{"source": "crm", "event": ` + ev + `}`)
	if crm := out["routes"].([]any)[2].(map[string]any); code != http.StatusOK || crm["matched"] != true {
		t.Errorf("from crm: %d %v", code, out)
	}

	for _, tt := range []struct {
		body string
		code int
		err  string
	}{
		{`{"specversion":"1.0","id":"1","source":"/s"}`, http.StatusBadRequest, "event: missing required attribute type"},
		{`{"source": "nope", "event": ` + ev + `}`, http.StatusBadRequest, `source: unknown source "nope" (known: shop, crm)`},
		{`{"event": ` + ev + `, "padding": "` + strings.Repeat("x", 4096+maxTestBody) + `"}`, http.StatusRequestEntityTooLarge, "body: larger than"},
	} {
		code, out := post(tt.body)
		if msg, _ := out["error"].(string); code != tt.code || !strings.HasPrefix(msg, tt.err) {
			t.Errorf("%.60s: %d %v, want %d %q", tt.body, code, out, tt.code, tt.err)
		}
	}

	// Nothing journaled, received or delivered.
	if _, entries := r.JournalStats(); entries != 0 {
		t.Errorf("%d journal entries, want none", entries)
	}
	if got := value(r.metrics.Received.WithLabelValues("shop")); got != 0 {
		t.Errorf("received = %v, want 0", got)
	}
	// A delivery would take milliseconds: one ingested event shows it does.
	if err := r.Ingester("crm").Ingest(context.Background(), []*event.Event{newEvent("real", "x", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the real event's delivery", func() bool { return len(recorderNamed("sb-audit").got()) >= 1 })
	for _, name := range []string{"sb-billing", "sb-audit", "sb-dead"} {
		for _, e := range recorderNamed(name).got() {
			if e.ID() != "real" {
				t.Errorf("sink %s received test event %s", name, e.ID())
			}
		}
	}
}

func FuzzParseTestRequest(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`))
	f.Add([]byte(`{"event":{"specversion":"1.0","id":"1","source":"/s","type":"t"},"source":"crm"}`))
	f.Add([]byte(`{"event":null}`))
	f.Add([]byte(`{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontentencoding":"base64","data":"e30="}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		source, e, err := ParseTestRequest(body)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error not one line: %q", err)
			}
			return
		}
		if e == nil || e.ID() == "" || e.Type() == "" || e.Source() == "" {
			t.Errorf("accepted an event without its required attributes: %v (source %q)", e, source)
		}
	})
}

// BenchmarkTestEvent measures one route test among 1,000 routes, one of
// which matches and transforms the event: the routing table of the source
// is built per call, as POST /api/v1/routes/test does.
func BenchmarkTestEvent(b *testing.B) {
	var y strings.Builder
	y.WriteString("sinks:\n  - {name: out, type: test-discard}\nroutes:\n")
	for i := 1; i < 1000; i++ {
		fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"other.%d\" && data.n > 0', to: [out]}\n", i, i)
	}
	y.WriteString("  - {name: match, filter: 'type == \"bench\"', transform: {data: '{\"n\": data.n + 1}'}, to: [out]}\n")
	cfg, err := config.Parse("bench.yaml", []byte(y.String()), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	e := newEvent("1", "bench", map[string]any{"n": 1})
	b.ReportAllocs()
	for b.Loop() {
		res, err := TestEvent(p, "", e)
		if err != nil || !res[999].Matched || len(res[999].Deliveries) != 1 {
			b.Fatalf("%v %+v", err, res[999])
		}
	}
}
