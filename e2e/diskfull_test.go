package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/journal"
)

// The journal refusing writes (SPEC: "Nothing accepted is lost, by
// default"): ingress answers 503 with Retry-After at once, /readyz answers
// 503 within 5 s, both recover on their own within 30 s of the cause being
// gone, every event answered 202 is delivered, nothing is left in the
// journal, and the refusals are logged once per 10 s.

// readyz returns the status of /readyz and its "journal" field.
func readyz(t *testing.T, j *junction) (int, string) {
	t.Helper()
	resp, err := http.Get(j.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Journal any  `json:"journal"`
		Ready   bool `json:"ready"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return resp.StatusCode, fmt.Sprint(body.Journal)
}

// waitReadyz polls /readyz until it answers status, for at most timeout,
// and returns how long that took and the journal's reason then.
func waitReadyz(t *testing.T, j *junction, status int, timeout time.Duration) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	for {
		code, reason := readyz(t, j)
		if code == status {
			return time.Since(start), reason
		}
		if time.Since(start) > timeout {
			t.Fatalf("/readyz still %d (journal: %s) after %v; want %d", code, reason, timeout, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLines counts the lines of the log that contain s.
func logLines(j *junction, s string) int {
	return strings.Count(j.stderr.String(), s)
}

// checkJournalEmpty opens the journal of a stopped junction and checks that
// no delivery is left in it.
func checkJournalEmpty(t *testing.T, dir string) {
	t.Helper()
	jr, err := journal.Open(context.Background(), journal.Options{Dir: dir})
	if err != nil {
		t.Fatalf("open the journal after the test: %v", err)
	}
	defer jr.Close()
	p, err := jr.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > 0 {
		t.Errorf("deliveries left in the journal after everything was delivered: %v", p)
	}
}

// TestDiskFullJournal fills the filesystem of journal.dir (a 20 MiB tmpfs)
// while events are posted: ingress answers 503 with Retry-After at once and
// no request hangs, /readyz answers 503 within 5 s; once the filler is
// removed, /readyz and ingest recover within 30 s without a restart, every
// event answered 202 reaches the sink, and the journal ends empty.
func TestDiskFullJournal(t *testing.T) {
	mnt := plugintest.MountTmpfs(t, "20m")
	hook := newSink(t, ok)
	dataDir := filepath.Join(mnt, "data")
	cfg := strings.Replace(httpSource, `journal: {dir: "{{DATA}}"}`, fmt.Sprintf(`journal: {dir: %q, minFreeSpace: 4MiB, deadLetterMaxBytes: 2MiB}`, dataDir), 1) + fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`, hook.url)
	j := start(t, cfg)
	load := startLoad("d", 4, time.Millisecond, j.ingest+"/events")
	defer load.stop()
	plugintest.Eventually(t, 10*time.Second, "events accepted before the disk fills", func() bool { return load.acceptedCount() >= 200 })

	filler := plugintest.FillDisk(t, mnt)
	full := time.Now()
	toReadyz, reason := waitReadyz(t, j, http.StatusServiceUnavailable, 5*time.Second)
	notReady := full.Add(toReadyz)
	t.Logf("disk full: /readyz 503 after %v (journal: %s)", toReadyz.Round(time.Millisecond), reason)
	if !strings.Contains(reason, "disk full") && !strings.Contains(reason, "journal store") {
		t.Errorf("/readyz journal reason %q; want it to say the disk is full or the store cannot write", reason)
	}
	// Requests in flight when the disk filled are answered too (503), well
	// before the write timeout.
	plugintest.Eventually(t, 5*time.Second, "a request sent after the disk filled answered 503", func() bool {
		_, ok := load.firstAnswered(http.StatusServiceUnavailable, full)
		return ok
	})
	first, _ := load.firstAnswered(http.StatusServiceUnavailable, full)
	t.Logf("first 503 for a request sent %v after the disk filled, answered in %v", first.sent.Sub(full).Round(time.Millisecond), first.took.Round(time.Millisecond))
	var inFlight time.Duration
	for _, a := range load.sentBetween(full.Add(-time.Second), full) {
		inFlight = max(inFlight, a.took)
	}
	t.Logf("requests sent in the second before the disk filled: the slowest answered in %v", inFlight.Round(time.Millisecond))
	time.Sleep(5 * time.Second) // refusals go on
	if code, reason := readyz(t, j); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d (journal: %s) while the disk is full; want 503", code, reason)
	}
	freed := time.Now()
	refused := load.sentBetween(notReady, freed)
	var slowRefusal time.Duration
	for _, a := range refused {
		if a.status == http.StatusAccepted {
			t.Errorf("a request sent at %s, after /readyz said 503, was answered 202 with the disk full", a.sent.Format("15:04:05.000"))
		}
		slowRefusal = max(slowRefusal, a.took)
	}
	t.Logf("%d requests while not ready, the slowest answered in %v", len(refused), slowRefusal.Round(time.Millisecond))
	if slowRefusal > 2*time.Second {
		t.Errorf("a refusal took %v once /readyz said 503; want well under journal.writeTimeout (5s)", slowRefusal)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	toReady, _ := waitReadyz(t, j, http.StatusOK, 30*time.Second)
	plugintest.Eventually(t, 30*time.Second-toReady, "an event accepted after the disk was freed", func() bool {
		_, ok := load.firstAnswered(http.StatusAccepted, freed)
		return ok
	})
	first, _ = load.firstAnswered(http.StatusAccepted, freed)
	t.Logf("space freed: /readyz 200 after %v, first 202 for a request sent %v after", toReady.Round(time.Millisecond), first.sent.Sub(freed).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	load.stop()
	slowest := load.check(t)
	t.Logf("%d requests, %d accepted, slowest answer %v (%d, sent %v after the journal filled)", len(load.sentBetween(time.Time{}, time.Now())), load.acceptedCount(),
		slowest.took.Round(time.Millisecond), slowest.status, slowest.sent.Sub(full).Round(time.Millisecond))

	load.waitDelivered(t, hook, 60*time.Second)
	plugintest.Eventually(t, 30*time.Second, "junction_pending_deliveries back to 0", func() bool {
		return j.metric("junction_pending_deliveries", `sink="hook"`) == 0
	})
	lines := logLines(j, "journal append failed")
	window := time.Since(full)
	t.Logf("%d \"journal append failed\" lines in %v (%d \"refused events: journal unavailable\" lines)", lines, window.Round(time.Second), logLines(j, "refused events: journal unavailable"))
	if max := int(window/(10*time.Second)) + 2; lines > max {
		t.Errorf("%d \"journal append failed\" lines in %v; want at most %d (one per 10 s)", lines, window.Round(time.Second), max)
	}
	j.stop()
	checkJournalEmpty(t, dataDir)
}

// TestMaxBytesJournal fills the journal to journal.maxBytes while its sink
// is down: ingress answers 503 with Retry-After, /readyz answers 503 within
// 5 s; once the sink is back and drains it, /readyz and ingest recover
// within 30 s, everything answered 202 is delivered, and the refusals were
// logged once per 10 s.
func TestMaxBytesJournal(t *testing.T) {
	var up atomic.Bool
	hook := newSink(t, func(int, *event.Event) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	cfg := strings.Replace(httpSource, `journal: {dir: "{{DATA}}"}`, `journal: {dir: "{{DATA}}", maxBytes: 256KiB}`, 1) + fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - name: r
    to: [hook]
    delivery: {retry: 1000, backoffPolicy: constant, backoffDelay: 200ms}
`, hook.url)
	j := start(t, cfg)
	load := startLoad("m", 2, time.Millisecond, j.ingest+"/events")
	defer load.stop()
	began := time.Now()
	plugintest.Eventually(t, 30*time.Second, "a request refused by the full journal", func() bool {
		_, ok := load.firstAnswered(http.StatusServiceUnavailable, began)
		return ok
	})
	first, _ := load.firstAnswered(http.StatusServiceUnavailable, began)
	full := first.sent.Add(first.took)
	t.Logf("journal full after %d events; the first 503 took %v", load.acceptedCount(), first.took.Round(time.Millisecond))
	_, reason := waitReadyz(t, j, http.StatusServiceUnavailable, 5*time.Second)
	if d := time.Since(full); d > 5*time.Second {
		t.Errorf("/readyz answered 503 %v after the first refusal; want within 5 s", d)
	} else {
		t.Logf("/readyz 503 %v after the first refusal (journal: %s)", d.Round(time.Millisecond), reason)
	}
	if !strings.Contains(reason, "journal full") {
		t.Errorf("/readyz journal reason %q; want it to say the journal is full", reason)
	}
	time.Sleep(12 * time.Second) // refusals go on for more than one log period
	if code, reason := readyz(t, j); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d (journal: %s) while the journal is full; want 503", code, reason)
	}

	up.Store(true)
	drain := time.Now()
	toReady, _ := waitReadyz(t, j, http.StatusOK, 30*time.Second)
	plugintest.Eventually(t, 30*time.Second-toReady, "an event accepted after the drain", func() bool {
		_, ok := load.firstAnswered(http.StatusAccepted, drain)
		return ok
	})
	t.Logf("sink back: /readyz 200 after %v", toReady.Round(time.Millisecond))
	time.Sleep(time.Second)
	load.stop()
	slowest := load.check(t)
	t.Logf("%d requests, %d accepted, slowest answer %v (%d, sent %v after the journal filled)", len(load.sentBetween(time.Time{}, time.Now())), load.acceptedCount(),
		slowest.took.Round(time.Millisecond), slowest.status, slowest.sent.Sub(full).Round(time.Millisecond))
	load.waitDelivered(t, hook, 60*time.Second)
	plugintest.Eventually(t, 30*time.Second, "junction_pending_deliveries back to 0", func() bool {
		return j.metric("junction_pending_deliveries", `sink="hook"`) == 0
	})
	lines := logLines(j, "journal append failed")
	window := time.Since(full)
	t.Logf("%d \"journal append failed\" lines in %v (%d \"refused events: journal unavailable\" lines)", lines, window.Round(time.Second), logLines(j, "refused events: journal unavailable"))
	if max := int(window/(10*time.Second)) + 2; lines > max {
		t.Errorf("%d \"journal append failed\" lines in %v; want at most %d (one per 10 s)", lines, window.Round(time.Second), max)
	}
	j.stop()
	checkJournalEmpty(t, filepath.Join(j.dir, "data"))
}
