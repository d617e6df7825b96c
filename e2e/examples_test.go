package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/otlptest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// bigOrder is the event the quickstart README sends.
func bigOrder(t *testing.T, j *junction, id string) {
	t.Helper()
	code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": id, "ce-source": "/shop", "ce-type": "com.example.order.created",
	}, `{"orderId":"o-1","amount":250,"customerId":"c-42"}`)
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
}

// consoleLines returns the JSON lines a log sink printed.
func consoleLines(s string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s, "\n") {
		var m map[string]any
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// consoleMatches returns the JSON lines of s that hold every key and value
// of kv (key, value, key, value ...).
func consoleMatches(s string, kv ...string) []map[string]any {
	var out []map[string]any
lines:
	for _, l := range consoleLines(s) {
		for i := 0; i+1 < len(kv); i += 2 {
			if l[kv[i]] != kv[i+1] {
				continue lines
			}
		}
		out = append(out, l)
	}
	return out
}

// consoleLine is the first of consoleMatches, or nil.
func consoleLine(s string, kv ...string) map[string]any {
	if m := consoleMatches(s, kv...); len(m) > 0 {
		return m[0]
	}
	return nil
}

func TestQuickstartDelivers(t *testing.T) {
	billing := newSink(t, ok)
	j := startFile(t, "../examples/quickstart/junction.yaml", "BILLING_URL="+billing.url)
	bigOrder(t, j, "order-1")
	plugintest.Eventually(t, 10*time.Second, "the big order at billing", func() bool { return billing.count() == 1 })
	e := billing.received()[0]
	if e.Type() != "com.example.order.big" || e.Subject() != "c-42" || string(e.Data()) != `{"id":"o-1","total":250}` {
		t.Errorf("billing got %s", e)
	}
	plugintest.Eventually(t, 5*time.Second, "the event on the console", func() bool { return len(consoleLines(j.stdout.String())) == 1 })
	line := consoleLines(j.stdout.String())[0]
	if line["id"] != "order-1" || line["type"] != "com.example.order.created" {
		t.Errorf("console printed %v", line)
	}
}

func TestQuickstartDeadLetters(t *testing.T) {
	j := startFile(t, "../examples/quickstart/junction.yaml", "BILLING_URL=http://"+freePort(t)+"/hook")
	bigOrder(t, j, "order-2")
	var dl map[string]any
	plugintest.Eventually(t, 15*time.Second, "a dead letter on stderr", func() bool {
		dl = consoleLine(j.stderr.String(), "id", "order-2")
		return dl != nil
	})
	if dl["junctionroute"] != "big-orders" || dl["junctionsink"] != "billing" || fmt.Sprint(dl["junctionattempts"]) != "4" ||
		!strings.Contains(fmt.Sprint(dl["junctionerror"]), "connection refused") {
		t.Errorf("dead letter: %v", dl)
	}
	var ev event.Event
	b, _ := json.Marshal(dl)
	if err := json.Unmarshal(b, &ev); err != nil || ev.Type() != "com.example.order.big" {
		t.Errorf("dead letter is not the routed event: %v %v", err, ev)
	}
}

// TestNightlyScheduleExample: the example validates without a warning, and
// runs: with NIGHTLY_CRON set to every minute, the next minute's event is
// printed on the console.
func TestNightlyScheduleExample(t *testing.T) {
	const cfg = "../examples/nightly-schedule/config.yaml"
	out, err := exec.Command(binary, "validate", "--config", cfg).CombinedOutput()
	if err != nil || string(out) != "../examples/nightly-schedule/config.yaml: ok: 1 source, 2 sinks, 2 routes\n" {
		t.Fatalf("junction validate: %v\n%s", err, out)
	}
	reports := newSink(t, ok)
	j := startFile(t, cfg, "NIGHTLY_CRON=* * * * *", "REPORTS_URL="+reports.url)
	var line map[string]any
	plugintest.Eventually(t, 70*time.Second, "the minute's event on the console", func() bool {
		line = consoleLine(j.stdout.String(), "type", "com.example.report.nightly")
		return line != nil
	})
	tick, err := time.Parse(time.RFC3339, fmt.Sprint(line["time"]))
	if err != nil || tick.Second() != 0 || line["id"] != "nightly-"+strconv.FormatInt(tick.Unix(), 10) ||
		line["source"] != "/junction/nightly" || line["subject"] != "daily-report" {
		t.Errorf("console printed %v", line)
	}
	plugintest.Eventually(t, 10*time.Second, "the event at the reports webhook", func() bool { return reports.count() == 1 })
}

// TestQuickstartReceiver runs the quickstart's receiver as the README says
// and sees the big order arrive there, transformed.
func TestQuickstartReceiver(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "receiver")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/quickstart/receiver").CombinedOutput(); err != nil {
		t.Fatalf("build the receiver: %v\n%s", err, out)
	}
	addr := freePort(t)
	out := &plugintest.LogBuffer{}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "RECEIVER_LISTEN="+addr)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	plugintest.Eventually(t, 10*time.Second, "the receiver listening", func() bool { return strings.Contains(out.String(), "receiver listening") })
	j := startFile(t, "../examples/quickstart/junction.yaml", "BILLING_URL=http://"+addr+"/hook")
	bigOrder(t, j, "order-1")
	plugintest.Eventually(t, 10*time.Second, "the big order at the receiver", func() bool {
		s := out.String()
		return strings.Contains(s, "ce-type: com.example.order.big") && strings.Contains(s, `body: {"id":"o-1","total":250}`)
	})
}

// TestTracingExample runs examples/tracing with a collector started here:
// a request with a traceparent goes to the partner sink signed, is verified
// by the signed source and reaches the receiver (whose first attempt
// fails), all in the caller's trace; a request to /hooks/signed with a
// wrong signature is refused.
func TestTracingExample(t *testing.T) {
	rec := otlptest.Start(t)
	receiver := newHeaderSink(t)
	receiver.failing.Store(true)
	j := startFile(t, "../examples/tracing/junction.yaml", "OTLP_ENDPOINT="+rec.URL(), "RECEIVER_URL="+receiver.url, fastSpans)
	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	trace := traceOf(caller)
	code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": "order-1", "ce-source": "/shop", "ce-type": "com.example.order.created",
		"traceparent": caller,
	}, `{"orderId":"o-1","amount":250}`)
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	plugintest.Eventually(t, 10*time.Second, "a failed attempt at the receiver", func() bool { return len(receiver.requests()) >= 1 })
	receiver.failing.Store(false)
	plugintest.Eventually(t, 10*time.Second, "the event at the receiver", func() bool { return receiver.delivered() == 1 })
	want := []string{"ingest events", "route orders", "deliver partner", "ingest signed", "route verified", "deliver receiver"}
	plugintest.Eventually(t, 10*time.Second, "every span in the caller's trace", func() bool {
		names := map[string]bool{}
		for _, s := range rec.Spans() {
			if s.TraceID == trace {
				names[s.Name] = true
			}
		}
		for _, n := range want {
			if !names[n] {
				return false
			}
		}
		return len(rec.Named("deliver receiver", trace)) >= 2
	})
	// The chain: each hop a child of the one before.
	byName := map[string]otlptest.Span{}
	for _, s := range rec.Named("", trace) {
		byName[s.Name] = s
	}
	for i := 1; i < len(want); i++ {
		if want[i] == "deliver receiver" {
			continue // two attempts; checked below
		}
		if got, parent := byName[want[i]], byName[want[i-1]]; got.Parent != parent.SpanID {
			t.Errorf("span %q: parent %s, want %q (%s)", want[i], got.Parent, want[i-1], parent.SpanID)
		}
	}
	for _, s := range rec.Named("deliver receiver", trace) {
		if s.Parent != byName["route verified"].SpanID {
			t.Errorf("deliver receiver span %v: not a child of route verified", s)
		}
	}
	for i, h := range receiver.requests() {
		if traceOf(h.Get("traceparent")) != trace || traceOf(h.Get("ce-traceparent")) != trace {
			t.Errorf("request %d: traceparent %q, ce-traceparent %q: want trace %s", i, h.Get("traceparent"), h.Get("ce-traceparent"), trace)
		}
	}
	code, _ = post(t, j.ingest+"/hooks/signed", "application/json", map[string]string{
		"webhook-id": "msg_x", "webhook-timestamp": strconv.FormatInt(time.Now().Unix(), 10), "webhook-signature": "v1,AAAA",
		"ce-id": "forged", "ce-source": "/x", "ce-type": "t",
	}, `{}`)
	if code != 401 {
		t.Errorf("a wrong signature at /hooks/signed: %d, want 401", code)
	}
}
