package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRouteTestsCommand runs the binary's `junction test` on the
// quickstart's route tests (exit 0) and on a failing test (exit 1, the
// difference shown).
func TestRouteTestsCommand(t *testing.T) {
	out, err := exec.Command(binary, "test", "-c", "../examples/quickstart/junction.yaml", "../examples/quickstart/tests.yaml").CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), "3 tests passed\n") {
		t.Fatalf("quickstart tests: %v\n%s", err, out)
	}
	failing := filepath.Join(t.TempDir(), "tests.yaml")
	os.WriteFile(failing, []byte(`tests:
  - name: big orders go to billing
    event: {specversion: "1.0", id: "1", source: /shop, type: com.example.order.created,
            datacontenttype: application/json, data: {amount: 250, orderId: o-1}}
    expect:
      console: [{id: "1"}]
      billing: [{data: {total: 25}}]
`), 0o644)
	out, err = exec.Command(binary, "test", failing, "--config", "../examples/quickstart/junction.yaml").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("failing test: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"FAIL  big orders go to billing (" + failing + ":2)",
		"sink billing, event 1: data.total: expected 25, got 250", "1 of 1 test failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestRoutesTestAPI posts an event to a running junction's
// POST /api/v1/routes/test: the answer shows what billing would receive,
// and nothing reaches billing nor is counted as received.
func TestRoutesTestAPI(t *testing.T) {
	billing := newSink(t, ok)
	j := startFile(t, "../examples/quickstart/junction.yaml", "BILLING_URL="+billing.url)
	code, body := post(t, j.admin+"/api/v1/routes/test", "application/json", nil, `{"source": "events", "event":
		{"specversion": "1.0", "id": "t-1", "source": "/shop", "type": "com.example.order.created",
		 "datacontenttype": "application/json", "data": {"orderId": "o-1", "amount": 250, "customerId": "c-42"}}}`)
	if code != 200 {
		t.Fatalf("routes/test: %d %s", code, body)
	}
	var out struct {
		Routes []struct {
			Route      string `json:"route"`
			Matched    bool   `json:"matched"`
			Deliveries []struct {
				Sink  string         `json:"sink"`
				Event map[string]any `json:"event"`
			} `json:"deliveries"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(out.Routes) != 2 || out.Routes[1].Route != "big-orders" || !out.Routes[1].Matched || len(out.Routes[1].Deliveries) != 1 {
		t.Fatalf("answer %s", body)
	}
	d := out.Routes[1].Deliveries[0]
	if data, _ := json.Marshal(d.Event["data"]); d.Sink != "billing" || d.Event["type"] != "com.example.order.big" ||
		d.Event["subject"] != "c-42" || string(data) != `{"id":"o-1","total":250}` {
		t.Errorf("billing would receive %v", d)
	}
	code, body = post(t, j.admin+"/api/v1/routes/test", "application/json", nil, `{"specversion": "1.0", "id": "t-2"}`)
	if code != 400 || !strings.Contains(body, `"error":"event: missing required attribute source, type"`) {
		t.Errorf("bad event: %d %s", code, body)
	}
	// A real event afterwards: once it is at billing, the test event
	// would have been too, had it been routed.
	bigOrder(t, j, "real-1")
	waitFor(t, 10*time.Second, "the real order at billing", func() bool { return billing.count() == 1 })
	if ids := billing.ids(); ids["real-1"] != 1 || len(ids) != 1 {
		t.Errorf("billing received %v, want only real-1", ids)
	}
	if n := j.metric("junction_events_received_total", `source="events"`); n != 1 {
		t.Errorf("received %v events, want 1 (the real one)", n)
	}
}
