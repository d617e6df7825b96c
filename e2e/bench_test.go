package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBenchCommand runs `junction bench` briefly against Junction and
// against the baseline forwarder, and checks its JSON summary: every event
// accepted is delivered, none lost, and the journal stored each one.
func TestBenchCommand(t *testing.T) {
	for _, target := range []string{"junction", "baseline"} {
		t.Run(target, func(t *testing.T) {
			args := []string{"bench", "--duration", "1s", "--connections", "4", "--routes", "20", "--size", "256", "--json"}
			if target == "baseline" {
				args = append(args, "--baseline")
			}
			var res struct {
				Sent, Accepted, Delivered, Lost, Duplicates int64
				IngestEPS                                   float64            `json:"ingest_eps"`
				DeliveredEPS                                float64            `json:"delivered_eps"`
				E2E                                         map[string]float64 `json:"e2e_ms"`
				RSS                                         float64            `json:"rss_mb"`
				Target                                      string
				Routes                                      int
				JournalEntries                              int64 `json:"journal_entries"`
				JournalMessages                             int64 `json:"journal_messages"`
			}
			stderr := runBench(t, &res, args...)
			if res.Target != target || res.Routes != 20 {
				t.Errorf("target %q routes %d, want %q and 20", res.Target, res.Routes, target)
			}
			if res.Accepted == 0 || res.Accepted > res.Sent || res.Delivered != res.Accepted || res.Lost != 0 {
				t.Errorf("sent %d accepted %d delivered %d lost %d: want every accepted event delivered", res.Sent, res.Accepted, res.Delivered, res.Lost)
			}
			if res.DeliveredEPS <= 0 || res.IngestEPS <= 0 || res.RSS <= 0 {
				t.Errorf("rates %v/%v and resident set %v must be positive", res.IngestEPS, res.DeliveredEPS, res.RSS)
			}
			if p50, p99 := res.E2E["p50"], res.E2E["p99"]; p50 <= 0 || p99 < p50 || res.E2E["p999"] < p99 {
				t.Errorf("latency percentiles out of order: %v", res.E2E)
			}
			if !strings.Contains(stderr, "junction bench") {
				t.Errorf("no progress on standard error:\n%s", stderr)
			}
			switch target {
			case "junction":
				// Each accepted event is one journal entry (one route
				// matches, one sink); some share messages.
				if res.JournalEntries < res.Accepted || res.JournalMessages == 0 || res.JournalMessages > res.JournalEntries {
					t.Errorf("journal: %d entries in %d messages for %d accepted events", res.JournalEntries, res.JournalMessages, res.Accepted)
				}
			case "baseline":
				if res.JournalEntries != 0 {
					t.Errorf("the baseline reported %d journal entries", res.JournalEntries)
				}
			}
		})
	}
}

// TestLoadTestExample runs the load-test example as its README does: a
// junction serve process driven by junction bench --url, the bench playing
// the sink the config points at.
func TestLoadTestExample(t *testing.T) {
	sinkAddr := freePort(t)
	j := startFile(t, "../examples/load-test/junction.yaml", "BENCH_SINK_URL=http://"+sinkAddr+"/")
	var res struct {
		Accepted, Delivered, Lost int64
		Target                    string
	}
	runBench(t, &res, "bench", "--url", j.ingest+"/events", "--sink", sinkAddr, "--duration", "1s", "--connections", "4", "--json")
	if res.Target != "url" || res.Accepted == 0 || res.Delivered != res.Accepted || res.Lost != 0 {
		t.Fatalf("target %q: accepted %d delivered %d lost %d", res.Target, res.Accepted, res.Delivered, res.Lost)
	}
	// A request the load generator gave up on when its time ran out may
	// have been journaled (and delivered) all the same: at least once, so
	// the journal holds at least the accepted events.
	entries, msgs := j.metric("junction_journal_entries_total"), j.metric("junction_journal_messages_total")
	if entries < float64(res.Accepted) || msgs < 1 || msgs > entries {
		t.Errorf("journal: %v entries in %v messages for %d accepted events", entries, msgs, res.Accepted)
	}
	// The sink's 200 comes before the router counts the delivery.
	waitFor(t, 10*time.Second, "every accepted event counted delivered on route bench", func() bool {
		return j.metric("junction_deliveries_total", `route="bench"`, `outcome="delivered"`) >= float64(res.Accepted)
	})
	if got := j.metric("junction_deliveries_total", `sink="archive"`); got != 0 {
		t.Errorf("the routes that never match delivered %v events", got)
	}
}

// runBench runs junction with args (a bench --json command), decodes the
// JSON summary on the last line of its standard output into res and
// returns its standard error.
func runBench(t *testing.T, res any, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("junction %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), res); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, stdout.String())
	}
	return stderr.String()
}
