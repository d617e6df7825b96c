package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

const protectionExample = "../examples/sink-protection/junction.yaml"

// TestSinkProtectionExample runs examples/sink-protection with the real
// binary: it validates without warnings; with the partner failing (503)
// the circuit opens (junction_sink_circuit_open 1, logged); once the
// partner answers again the probe closes it (metric 0, logged) and every
// event is delivered exactly once, none dead-lettered, no faster than the
// rate limit. Every retry counted was a request the partner failed:
// deliveries held back while the circuit was open spent no attempt.
func TestSinkProtectionExample(t *testing.T) {
	out, err := exec.Command(binary, "validate", "--config", protectionExample).CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") || !strings.Contains(string(out), ": ok: ") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	var failing atomic.Bool
	failing.Store(true)
	var failed atomic.Int64
	var mu sync.Mutex
	var okTimes []time.Time
	partner := newSink(t, func(_ int, _ *event.Event) int {
		if failing.Load() {
			failed.Add(1)
			return 503
		}
		mu.Lock()
		okTimes = append(okTimes, time.Now())
		mu.Unlock()
		return 200
	})
	j := startFile(t, protectionExample, "PARTNER_URL="+partner.url)
	const circuit = `junction_sink_circuit_open{sink="partner"}`
	if v := j.metric(circuit); v != 0 {
		t.Fatalf("%s = %v at start; want 0", circuit, v)
	}
	const n = 40
	for i := range n {
		code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
			"ce-specversion": "1.0", "ce-id": fmt.Sprintf("p-%d", i), "ce-source": "/shop", "ce-type": "com.example.order.created",
		}, `{"n":1}`)
		if code != 202 {
			t.Fatalf("POST: %d %s", code, body)
		}
	}
	plugintest.Eventually(t, 20*time.Second, "the circuit open", func() bool { return j.metric(circuit) == 1 })
	// The log line is written first, but reaches this process through a
	// pipe: it may come a moment after the metric.
	plugintest.Eventually(t, 5*time.Second, "a log line of the circuit opening", func() bool {
		return logged(j.stderr.String(), "circuit open", "sink=partner", "to=open")
	})
	failing.Store(false)
	plugintest.Eventually(t, 30*time.Second, "the circuit closed", func() bool { return j.metric(circuit) == 0 })
	plugintest.Eventually(t, 30*time.Second, "every event delivered", func() bool { return partner.distinct() == n })
	if d := partner.duplicates(); d != 0 {
		t.Errorf("%d events delivered twice", d)
	}
	// rateLimit {rate: 50/s, burst: 5}: k deliveries take at least
	// (k-5-1)/50 s from the first to the last (one interval of slack for
	// the first one's latency).
	mu.Lock()
	k, span := len(okTimes), okTimes[len(okTimes)-1].Sub(okTimes[0])
	mu.Unlock()
	if least := time.Duration(k-5-1) * time.Second / 50; span < least {
		t.Errorf("%d deliveries within %v; at 50/s (burst 5) they take at least %v", k, span, least)
	}
	plugintest.Eventually(t, 5*time.Second, "a log line of the probe closing the circuit", func() bool {
		return logged(j.stderr.String(), "circuit closed", "sink=partner", "from=half-open", "to=closed")
	})
	retried := j.metric(`junction_deliveries_total{`, `sink="partner"`, `outcome="retried"`)
	if int64(retried) != failed.Load() {
		t.Errorf("retried = %v, and the partner failed %d requests: attempts were counted that were not made", retried, failed.Load())
	}
	if dl := j.metric(`junction_deliveries_total{`, `outcome="dead_lettered"`); dl != 0 {
		t.Errorf("dead_lettered = %v; want 0", dl)
	}
}

// logged reports whether a line of log holds every one of parts.
func logged(log string, parts ...string) bool {
lines:
	for _, l := range strings.Split(log, "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue lines
			}
		}
		return true
	}
	return false
}
