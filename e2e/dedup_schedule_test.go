package e2e

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
)

// dedupConfig is base's ingress with a dedup window on the http source,
// and a webhook sink hook at url.
func dedupConfig(url string) string {
	return configHead + fmt.Sprintf(`sources:
  - {name: events, type: http, path: /events, dedup: 10m}
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`, url)
}

// TestDedupAcrossRestart: an event sent again after a restart, within the
// window, is answered 202 and delivered once; counted as a duplicate.
func TestDedupAcrossRestart(t *testing.T) {
	hook := newSink(t, ok)
	j := start(t, dedupConfig(hook.url))
	url := j.ingest + "/events"
	for _, id := range []string{"a", "b", "a"} {
		if code := binaryEvent(t, url, id, "t", `{}`); code != 202 {
			t.Fatalf("send %s: %d", id, code)
		}
	}
	plugintest.Eventually(t, 10*time.Second, "a and b delivered", func() bool { return hook.count() == 2 })
	if n := j.metric("junction_events_duplicate_total", `source="events"`); n != 1 {
		t.Errorf("duplicates before the restart: %v, want 1", n)
	}
	j.stop()
	j.restart()
	if n := j.metric("junction_events_duplicate_total", `source="events"`); n != 0 {
		t.Errorf("duplicates at start: %v, want 0 (a fresh counter)", n)
	}
	for _, id := range []string{"a", "b", "c"} {
		if code := binaryEvent(t, url, id, "t", `{}`); code != 202 {
			t.Fatalf("send %s after restart: %d", id, code)
		}
	}
	plugintest.Eventually(t, 10*time.Second, "c delivered", func() bool { return hook.count() == 3 })
	time.Sleep(500 * time.Millisecond)
	if ids := hook.ids(); hook.count() != 3 || ids["a"] != 1 || ids["b"] != 1 || ids["c"] != 1 {
		t.Errorf("delivered %v, want a, b and c once each", ids)
	}
	if n := j.metric("junction_events_duplicate_total", `source="events"`); n != 2 {
		t.Errorf("duplicates after the restart: %v, want 2", n)
	}
}

// scheduleTicks returns the ticks (Unix seconds) of the events whose id
// starts with name-, sorted, and how many events each tick had.
func scheduleTicks(s *sink, name string) ([]int64, map[int64]int) {
	count := map[int64]int{}
	for id, n := range s.ids() {
		if rest, ok := strings.CutPrefix(id, name+"-"); ok {
			if sec, err := strconv.ParseInt(rest, 10, 64); err == nil {
				count[sec] += n
			}
		}
	}
	var ticks []int64
	for sec := range count {
		ticks = append(ticks, sec)
	}
	sort.Slice(ticks, func(i, k int) bool { return ticks[i] < ticks[k] })
	return ticks, count
}

// checkTicks fails unless ticks are consecutive seconds, each once.
func checkTicks(t *testing.T, ticks []int64, count map[int64]int, atLeast int) {
	t.Helper()
	if len(ticks) < atLeast {
		t.Fatalf("%d ticks %v, want at least %d", len(ticks), ticks, atLeast)
	}
	for i, sec := range ticks {
		if count[sec] != 1 {
			t.Errorf("tick %d delivered %d times", sec, count[sec])
		}
		if i > 0 && sec != ticks[i-1]+1 {
			t.Errorf("ticks %v: a second missing after %d", ticks, ticks[i-1])
		}
	}
}

// TestScheduleEverySecond: a schedule source with every: 1s delivers one
// event a second to a webhook, each tick once, with its id and time.
func TestScheduleEverySecond(t *testing.T) {
	hook := newSink(t, ok)
	start(t, configHead+fmt.Sprintf(`sources:
  - name: beat
    type: schedule
    every: 1s
    event: {type: com.example.beat, source: /beat, subject: s, data: {n: 1}}
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`, hook.url))
	plugintest.Eventually(t, 10*time.Second, "4 ticks", func() bool { return hook.count() >= 4 })
	ticks, count := scheduleTicks(hook, "beat")
	checkTicks(t, ticks, count, 4)
	e := hook.received()[0]
	if e.Type() != "com.example.beat" || e.Source() != "/beat" || e.Subject() != "s" || string(e.Data()) != `{"n":1}` ||
		e.ID() != "beat-"+strconv.FormatInt(e.Time().Unix(), 10) || e.Time().Nanosecond() != 0 {
		t.Errorf("tick event: %v", e)
	}
}

// TestClusterDedupAndSchedule: two replicas on the 3-node cluster run the
// same config: a schedule source every 1s, and an http source with dedup
// that receives each event on both replicas at the same time. Each tick is
// delivered once, each event once, and the duplicates are counted once.
func TestClusterDedupAndSchedule(t *testing.T) {
	nodes := startCluster(t)
	hook := newSink(t, ok)
	cfg := fmt.Sprintf(`
http: {listen: "{{HTTP}}"}
admin: {listen: "{{ADMIN}}"}
journal: {url: %q, replicas: 3, stream: %s}
sources:
  - {name: events, type: http, path: /events, dedup: 10m}
  - name: beat
    type: schedule
    every: 1s
    event: {type: com.example.beat, source: /beat}
sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 4}
routes:
  - name: r
    to: [hook]
    delivery: {timeout: 2s, backoffDelay: 50ms}
`, urls(nodes), fmt.Sprintf("E2E_%d", rand.Int64()), hook.url)
	a, b := start(t, cfg), start(t, cfg)
	began := time.Now()

	const n = 100
	var wg sync.WaitGroup
	for _, j := range []*junction{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				id := "e-" + strconv.Itoa(i)
				for {
					code := binaryEvent(t, j.ingest+"/events", id, "t", `{}`)
					if code == 202 {
						break
					}
					if code != 503 {
						t.Errorf("send %s: %d", id, code)
						return
					}
					time.Sleep(100 * time.Millisecond) // retry, as a producer does
				}
			}
		}()
	}
	wg.Wait()
	plugintest.Eventually(t, 20*time.Second, "every event delivered", func() bool {
		ids := hook.ids()
		for i := range n {
			if ids["e-"+strconv.Itoa(i)] == 0 {
				return false
			}
		}
		return true
	})
	// At least 5 s of ticks.
	if wait := 6*time.Second - time.Since(began); wait > 0 {
		time.Sleep(wait)
	}
	time.Sleep(time.Second) // deliveries in flight
	ids := hook.ids()
	for i := range n {
		if c := ids["e-"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("event e-%d delivered %d times", i, c)
		}
	}
	dupes := a.metric("junction_events_duplicate_total", `source="events"`) + b.metric("junction_events_duplicate_total", `source="events"`)
	if dupes != n {
		t.Errorf("duplicates counted by the replicas: %v, want %d", dupes, n)
	}
	ticks, count := scheduleTicks(hook, "beat")
	checkTicks(t, ticks, count, 5)
	t.Logf("%d events sent to both replicas: each delivered once, %v duplicates counted; %d ticks, each once", n, dupes, len(ticks))
}

// TestScheduleCatchUpAfterDowntime: with catchUp, the last tick missed
// while junction was down is emitted once on start, the others not.
func TestScheduleCatchUpAfterDowntime(t *testing.T) {
	hook := newSink(t, ok)
	j := start(t, configHead+fmt.Sprintf(`sources:
  - name: beat
    type: schedule
    every: 1s
    catchUp: true
    event: {type: com.example.beat, source: /beat}
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`, hook.url))
	plugintest.Eventually(t, 10*time.Second, "2 ticks", func() bool { return hook.count() >= 2 })
	j.stop()
	stopped := time.Now().Unix() // ticks up to this one may be delivered after the restart
	time.Sleep(3500 * time.Millisecond)
	restarted := time.Now().Unix()
	j.restart()
	plugintest.Eventually(t, 10*time.Second, "ticks after the restart", func() bool {
		ticks, _ := scheduleTicks(hook, "beat")
		return ticks[len(ticks)-1] >= restarted+1
	})
	ticks, count := scheduleTicks(hook, "beat")
	first := int64(0) // the first tick after the stop
	for _, sec := range ticks {
		if count[sec] != 1 {
			t.Errorf("tick %d delivered %d times", sec, count[sec])
		}
		if sec > stopped && first == 0 {
			first = sec
		}
	}
	// Of the ticks missed while down, only the last (that of the start's
	// second, when it had begun) comes.
	if first < restarted-1 || first > restarted+1 {
		t.Errorf("ticks %v: the first after the stop (%d) is %d, want the last missed one (about %d)", ticks, stopped, first, restarted)
	}
	if !strings.Contains(j.stderr.String(), "catching up on a tick missed while down") {
		t.Error("no catch-up in the log")
	}
}
