package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

// TestDefaultPolicySurvivesLongOutage: with no delivery keys at all, a
// webhook sink down for five minutes under load loses nothing. The old
// default (5 retries, about 30 s) dropped every event older than that.
func TestDefaultPolicySurvivesLongOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a five-minute outage; skipped with -short")
	}
	t.Parallel()
	outage := 5 * time.Minute
	if v := os.Getenv("JUNCTION_E2E_OUTAGE"); v != "" { // for trying it by hand
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		outage = d
	}
	addr := freePort(t) // nothing listens here during the outage
	j := start(t, httpSource+fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: "http://%s/hook"}
routes:
  - {name: r, to: [hook]}
`, addr))
	began := time.Now()
	p := startLoad("o", 2, 50*time.Millisecond, j.ingest+"/events") // about 40 events/s
	time.Sleep(outage)
	p.stop()
	accepted := p.acceptedCount()
	if accepted < int(outage.Seconds())*10 {
		codes, _ := p.summary()
		t.Fatalf("only %d events accepted during the outage (answers %v)", accepted, codes)
	}
	if dropped := j.metric("junction_deliveries_total", `outcome="dropped"`); dropped != 0 {
		t.Fatalf("%v deliveries dropped during the outage", dropped)
	}
	if dl := j.metric("junction_deliveries_total", `outcome="dead_lettered"`); dl != 0 {
		t.Fatalf("%v deliveries dead-lettered during the outage", dl)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("sink port taken: %v", err)
	}
	hook := serveSink(t, ln, ok)
	// Backoff is capped at 5 minutes: every event is tried again within
	// about that long after the sink is back.
	p.waitDelivered(t, hook, 7*time.Minute)
	t.Logf("outage of %v: %d events accepted, all delivered %v after the sink came back (%d deliveries, %d duplicates), %v in all",
		outage, accepted, time.Since(began)-outage, hook.count(), hook.duplicates(), time.Since(began).Round(time.Second))
	plugintest.Eventually(t, 5*time.Second, "pending gauge at 0", func() bool {
		return j.metric("junction_pending_deliveries", `sink="hook"`) == 0
	})
	if dropped := j.metric("junction_deliveries_total", `outcome="dropped"`); dropped != 0 {
		t.Errorf("%v deliveries dropped", dropped)
	}
}

// TestKill9FiveTimesUnderLoad kills junction with SIGKILL five times in a
// row while events pour in, restarting it each time: every event answered
// 202 reaches the sink.
func TestKill9FiveTimesUnderLoad(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	hook := newSink(t, func(int, *event.Event) int {
		if slow.Load() {
			time.Sleep(5 * time.Millisecond) // keep a backlog in the journal
		}
		return http.StatusOK
	})
	j := start(t, httpSource+fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 2}
routes:
  - {name: r, to: [hook]}
`, hook.url))
	p := startLoad("k", 8, 0, j.ingest+"/events")
	for i := range 5 {
		target := p.acceptedCount() + 200
		plugintest.Eventually(t, 20*time.Second, "events flowing", func() bool { return p.acceptedCount() >= target })
		j.kill()
		t.Logf("kill %d: %d accepted, %d delivered", i+1, p.acceptedCount(), hook.count())
		j.restart()
	}
	p.stop()
	if hook.distinct() >= p.acceptedCount() {
		t.Fatalf("all %d accepted events were delivered before the last kill: no backlog was crashed", p.acceptedCount())
	}
	slow.Store(false)
	p.waitDelivered(t, hook, 90*time.Second)
	t.Logf("five kills: %d events accepted, all delivered; %d deliveries (%d duplicates, at-least-once)", p.acceptedCount(), hook.count(), hook.duplicates())
}

// TestExhaustedKeptInDeadLetterStore: a route without a dead-letter sink
// whose policy gives up keeps the event in the journal's dead-letter store,
// listed by the admin API across a restart; only onExhausted: drop drops.
func TestExhaustedKeptInDeadLetterStore(t *testing.T) {
	var fixed atomic.Bool
	failing := newSink(t, func(int, *event.Event) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: failing, type: webhook, url: %q}
routes:
  - name: kept
    filter: type == "keep"
    to: [failing]
    delivery: {retry: 1, backoffDelay: 50ms}
  - name: dropped
    filter: type == "drop"
    to: [failing]
    delivery: {retry: 1, backoffDelay: 50ms, onExhausted: drop}
`, failing.url))
	binaryEvent(t, j.ingest+"/events", "k1", "keep", `{"n":1}`)
	binaryEvent(t, j.ingest+"/events", "d1", "drop", `{"n":2}`)
	plugintest.Eventually(t, 10*time.Second, "one dead-lettered and one dropped", func() bool {
		return j.metric("junction_deliveries_total", `outcome="dead_lettered"`) == 1 &&
			j.metric("junction_deliveries_total", `outcome="dropped"`) == 1
	})
	j.stop()
	j.restart()
	var list struct {
		DeadLetters []struct {
			ID, Route, Sink, Reason, Error string
			Attempts                       int
			Time                           time.Time
			Event                          map[string]any
		}
	}
	getJSON(t, j.admin+"/api/v1/deadletters", &list)
	if len(list.DeadLetters) != 1 {
		t.Fatalf("dead letters = %+v, want one", list.DeadLetters)
	}
	dl := list.DeadLetters[0]
	if dl.ID == "" || dl.Route != "kept" || dl.Sink != "failing" || dl.Attempts != 2 || dl.Reason != "exhausted" ||
		!strings.Contains(dl.Error, "500") || dl.Time.IsZero() || dl.Event["id"] != "k1" || dl.Event["data"] == nil {
		t.Errorf("dead letter = %+v", dl)
	}
	plugintest.Eventually(t, 5*time.Second, "junction_deadletters at 1", func() bool {
		return j.metric("junction_deadletters ") == 1
	})
	getJSON(t, j.admin+"/api/v1/deadletters?route=dropped", &list)
	if len(list.DeadLetters) != 0 {
		t.Errorf("route with onExhausted: drop has dead letters: %+v", list.DeadLetters)
	}

	// The sink is fixed: redrive sends the event again and empties the store.
	fixed.Store(true)
	code, body := post(t, j.admin+"/api/v1/deadletters/redrive", "application/json", nil, `{"ids": ["`+dl.ID+`"]}`)
	if code != http.StatusOK || !strings.Contains(body, `"redriven":1`) {
		t.Fatalf("redrive: %d %s", code, body)
	}
	plugintest.Eventually(t, 10*time.Second, "redriven event delivered", func() bool { return failing.ids()["k1"] == 1 })
	getJSON(t, j.admin+"/api/v1/deadletters", &list)
	if len(list.DeadLetters) != 0 {
		t.Errorf("dead letters after redrive: %+v", list.DeadLetters)
	}
	if code, body := post(t, j.admin+"/api/v1/deadletters/redrive", "application/json", nil, `{"ids": ["x"]}`); code != http.StatusBadRequest {
		t.Errorf("redrive of a bad id: %d %s", code, body)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
