package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

func ok(int, *event.Event) int { return http.StatusOK }

func TestModesFilterAndTransform(t *testing.T) {
	hook := newSink(t, ok)
	other := newSink(t, ok)
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: billing, type: webhook, url: %q}
  - {name: all, type: webhook, url: %q, format: structured}
routes:
  - name: big-orders
    filter: type == "com.example.order.created" && data.amount > 100
    transform:
      attributes:
        type: '"com.example.order.big"'
        subject: data.customerId
        tenant: '"t-" + data.customerId'
      data: '{"id": data.orderId, "total": data.amount}'
    to: [billing]
  - name: everything
    to: [all]
`, hook.url, other.url))
	url := j.ingest + "/events"

	// Binary mode: matches.
	if code := binaryEvent(t, url, "b1", "com.example.order.created", `{"orderId":"o1","amount":150,"customerId":"c7"}`); code != 202 {
		t.Fatalf("binary: %d", code)
	}
	// Binary mode: filtered out by amount.
	if code := binaryEvent(t, url, "b2", "com.example.order.created", `{"orderId":"o2","amount":50,"customerId":"c7"}`); code != 202 {
		t.Fatalf("binary small: %d", code)
	}
	// Structured mode: matches.
	code, body := post(t, url, "application/cloudevents+json", nil,
		`{"specversion":"1.0","id":"s1","source":"/shop","type":"com.example.order.created","datacontenttype":"application/json","data":{"orderId":"o3","amount":500,"customerId":"c9"}}`)
	if code != 202 {
		t.Fatalf("structured: %d %s", code, body)
	}
	// Batch mode: two events, one matching.
	code, body = post(t, url, "application/cloudevents-batch+json", nil,
		`[{"specversion":"1.0","id":"x1","source":"/shop","type":"com.example.order.created","data":{"orderId":"o4","amount":101,"customerId":"c1"}},
		  {"specversion":"1.0","id":"x2","source":"/shop","type":"com.example.other","data":{"amount":1000}}]`)
	if code != 202 {
		t.Fatalf("batch: %d %s", code, body)
	}

	plugintest.Eventually(t, 10*time.Second, "3 big orders at billing and 5 events at all", func() bool {
		return hook.count() == 3 && other.count() == 5
	})
	byID := map[string]event.Event{}
	for _, e := range hook.received() {
		byID[e.ID()] = e
	}
	for id, want := range map[string]struct {
		subject, tenant, data string
	}{
		"b1": {"c7", "t-c7", `{"id":"o1","total":150}`},
		"s1": {"c9", "t-c9", `{"id":"o3","total":500}`},
		"x1": {"c1", "t-c1", `{"id":"o4","total":101}`},
	} {
		e, found := byID[id]
		if !found {
			t.Errorf("event %s did not reach billing", id)
			continue
		}
		if e.Type() != "com.example.order.big" || e.Subject() != want.subject || e.Extensions()["tenant"] != want.tenant {
			t.Errorf("event %s: type %q subject %q tenant %v", id, e.Type(), e.Subject(), e.Extensions()["tenant"])
		}
		var got, exp any
		json.Unmarshal(e.Data(), &got)
		json.Unmarshal([]byte(want.data), &exp)
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("event %s data = %s, want %s", id, e.Data(), want.data)
		}
	}
	// The untransformed route sees the original events.
	for _, e := range other.received() {
		if e.Type() == "com.example.order.big" {
			t.Errorf("route everything got a transformed event %s", e.ID())
		}
	}
	if got := j.metric("junction_events_received_total", `source="events"`); got != 5 {
		t.Errorf("junction_events_received_total = %v, want 5", got)
	}
	if got := j.metric("junction_deliveries_total", `route="big-orders"`, `outcome="delivered"`); got != 3 {
		t.Errorf("delivered on big-orders = %v, want 3", got)
	}
}

func TestIngressAnswers(t *testing.T) {
	hook := newSink(t, ok)
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: orders, filter: 'type == "order"', to: [hook]}
`, hook.url))
	url := j.ingest + "/events"
	tests := []struct {
		name        string
		url         string
		contentType string
		header      map[string]string
		body        string
		want        int
	}{
		{"unrouted", url, "application/cloudevents+json", nil, `{"specversion":"1.0","id":"u1","source":"/s","type":"nobody.cares"}`, 202},
		{"bad json", url, "application/cloudevents+json", nil, `{"specversion":`, 400},
		{"missing id", url, "application/cloudevents+json", nil, `{"specversion":"1.0","source":"/s","type":"order"}`, 400},
		{"binary missing type", url, "text/plain", map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"}, "x", 400},
		{"bad batch member", url, "application/cloudevents-batch+json", nil, `[{"specversion":"1.0","id":"ok","source":"/s","type":"order"},{"id":"no"}]`, 400},
		{"unsupported type", url, "text/plain", nil, "hello", 415},
		{"too large", url, "application/cloudevents+json", nil, `{"specversion":"1.0","id":"big","source":"/s","type":"order","data":"` + strings.Repeat("x", 2<<20) + `"}`, 413},
		{"unknown path", j.ingest + "/nope", "application/cloudevents+json", nil, `{}`, 404},
	}
	for _, tt := range tests {
		code, body := post(t, tt.url, tt.contentType, tt.header, tt.body)
		if code != tt.want {
			t.Errorf("%s: got %d %q, want %d", tt.name, code, body, tt.want)
		}
		if code >= 400 && (strings.Count(strings.TrimSpace(body), "\n") > 0 || len(body) > 1024 || len(strings.TrimSpace(body)) == 0) {
			t.Errorf("%s: reason is not one bounded line: %q", tt.name, body)
		}
	}
	// Nothing from a rejected batch was journaled: the valid member "ok" never arrives.
	time.Sleep(300 * time.Millisecond)
	for _, e := range hook.received() {
		t.Errorf("sink got %s from a rejected request", e.ID())
	}
	if got := j.metric("junction_events_unrouted_total"); got != 1 {
		t.Errorf("junction_events_unrouted_total = %v, want 1", got)
	}
	if got := j.metric("junction_events_rejected_total", `reason="malformed"`); got < 4 {
		t.Errorf("rejected malformed = %v, want at least 4", got)
	}
}

func TestRetriesThenDelivered(t *testing.T) {
	hook := newSink(t, func(call int, _ *event.Event) int {
		if call <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	j := start(t, hookConfig(hook.url, "{retry: 5, backoffDelay: 50ms, maxDelay: 200ms}"))
	binaryEvent(t, j.ingest+"/events", "e1", "t", `{}`)
	plugintest.Eventually(t, 10*time.Second, "delivery after two 503s", func() bool { return hook.count() == 1 })
	plugintest.Eventually(t, 5*time.Second, "metrics", func() bool {
		return j.metric("junction_deliveries_total", `outcome="delivered"`) == 1
	})
	if got := j.metric("junction_deliveries_total", `outcome="retried"`); got != 2 {
		t.Errorf("retried = %v, want 2", got)
	}
	if got := hook.callCount(); got != 3 {
		t.Errorf("sink saw %d calls, want 3", got)
	}
}

func TestExhaustedAndPermanentGoToDeadLetter(t *testing.T) {
	failing := newSink(t, func(int, *event.Event) int { return http.StatusInternalServerError })
	refusing := newSink(t, func(int, *event.Event) int { return http.StatusBadRequest })
	dead := newSink(t, ok)
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: failing, type: webhook, url: %q}
  - {name: refusing, type: webhook, url: %q}
  - {name: dead, type: webhook, url: %q}
routes:
  - name: to-failing
    filter: type == "fail"
    to: [failing]
    delivery: {retry: 2, backoffDelay: 50ms, maxDelay: 100ms, deadLetter: dead}
  - name: to-refusing
    filter: type == "refuse"
    to: [refusing]
    delivery: {retry: 5, backoffDelay: 50ms, deadLetter: dead}
`, failing.url, refusing.url, dead.url))
	binaryEvent(t, j.ingest+"/events", "f1", "fail", `{"n":1}`)
	binaryEvent(t, j.ingest+"/events", "r1", "refuse", `{"n":2}`)
	plugintest.Eventually(t, 10*time.Second, "two dead letters", func() bool { return dead.count() == 2 })
	for _, e := range dead.received() {
		ext := e.Extensions()
		switch e.ID() {
		case "f1":
			if ext["junctionroute"] != "to-failing" || ext["junctionsink"] != "failing" || fmt.Sprint(ext["junctionattempts"]) != "3" ||
				!strings.Contains(fmt.Sprint(ext["junctionerror"]), "500") {
				t.Errorf("dead letter f1 extensions: %v", ext)
			}
		case "r1":
			if ext["junctionroute"] != "to-refusing" || fmt.Sprint(ext["junctionattempts"]) != "1" || !strings.Contains(fmt.Sprint(ext["junctionerror"]), "400") {
				t.Errorf("dead letter r1 extensions: %v", ext)
			}
		default:
			t.Errorf("unexpected dead letter %s", e.ID())
		}
		if string(e.Data()) == "" || e.Type() == "" {
			t.Errorf("dead letter %s lost its content: %s", e.ID(), e)
		}
	}
	if got := failing.callCount(); got != 3 {
		t.Errorf("failing sink saw %d attempts, want 3", got)
	}
	if got := refusing.callCount(); got != 1 {
		t.Errorf("refusing sink saw %d attempts, want 1 (400 is permanent)", got)
	}
	plugintest.Eventually(t, 5*time.Second, "dead_lettered metric", func() bool {
		return j.metric("junction_deliveries_total", `outcome="dead_lettered"`) == 2
	})
}

func TestSinkDownThenUp(t *testing.T) {
	addr := freePort(t) // nothing listens here yet
	j := start(t, hookConfig("http://"+addr+"/hook", "{retry: 100, backoffDelay: 50ms, maxDelay: 300ms}"))
	const n = 20
	for i := range n {
		if code := binaryEvent(t, j.ingest+"/events", fmt.Sprintf("d%d", i), "t", `{}`); code != 202 {
			t.Fatalf("event %d: %d", i, code)
		}
	}
	plugintest.Eventually(t, 10*time.Second, "retries while the sink is down", func() bool {
		return j.metric("junction_deliveries_total", `outcome="retried"`) >= n
	})
	// Every accepted event waits in the journal, counted by the gauges:
	// due, or waiting for its retry in the delay stream.
	plugintest.Eventually(t, 5*time.Second, "pending and delayed gauges at 20", func() bool {
		return j.metric("junction_pending_deliveries", `sink="hook"`)+j.metric("junction_delayed_deliveries") == n
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("sink port taken: %v", err)
	}
	hook := serveSink(t, ln, ok)
	plugintest.Eventually(t, 20*time.Second, "all events after the sink came up", func() bool { return hook.count() >= n })
	if got := hook.distinct(); got != n {
		t.Fatalf("distinct events delivered = %d, want %d", got, n)
	}
	plugintest.Eventually(t, 5*time.Second, "pending gauge at 0", func() bool {
		return j.metric("junction_pending_deliveries", `sink="hook"`) == 0
	})
}

// TestCrashLosesNothing drives events, kills junction with SIGKILL mid-stream,
// starts it again, and checks that every event answered 202 reaches the sink.
func TestCrashLosesNothing(t *testing.T) {
	// The sink is slow until the crash, so that a backlog of accepted but
	// undelivered events is in the journal when the process dies.
	var slow atomic.Bool
	slow.Store(true)
	hook := newSink(t, func(int, *event.Event) int {
		if slow.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		return http.StatusOK
	})
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 2}
routes:
  - name: r
    to: [hook]
    delivery: {retry: 100, backoffDelay: 50ms, maxDelay: 500ms, timeout: 2s}
`, hook.url))
	var mu sync.Mutex
	accepted := map[string]bool{}
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("c%d", next.Add(1))
				req, _ := http.NewRequest(http.MethodPost, j.ingest+"/events", strings.NewReader(`{"k":"`+id+`"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("ce-specversion", "1.0")
				req.Header.Set("ce-id", id)
				req.Header.Set("ce-source", "/crash")
				req.Header.Set("ce-type", "t")
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(accepted) }
	plugintest.Eventually(t, 10*time.Second, "events flowing", func() bool { return count() >= 300 })
	j.kill()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	before := hook.count()
	slow.Store(false)
	j.restart()

	mu.Lock()
	want := len(accepted)
	mu.Unlock()
	if before >= want {
		t.Fatalf("all %d accepted events were delivered before the kill: the test did not crash with a backlog", want)
	}
	missing := func() []string {
		got := map[string]bool{}
		for _, e := range hook.received() {
			got[e.ID()] = true
		}
		var out []string
		for id := range accepted {
			if !got[id] {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		t.Fatalf("%d of %d accepted events never reached the sink after kill -9 and restart (e.g. %v)", len(m), want, m[:min(5, len(m))])
	}
	dups := hook.count() - want
	t.Logf("crash test: %d events accepted, %d delivered before the kill, %d deliveries in all, %d duplicates (at-least-once)", want, before, hook.count(), dups)
}

// TestBatchMembersRetriedOneByOne sends one batch-mode request, whose events
// share one journal message, to a sink that fails some of them: each event
// is retried or dead-lettered on its own, and the others are delivered
// once.
func TestBatchMembersRetriedOneByOne(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	release := make(chan struct{}) // no answer before the journal is checked
	hook := newSink(t, func(_ int, e *event.Event) int {
		<-release
		mu.Lock()
		defer mu.Unlock()
		calls[e.ID()]++
		switch {
		case strings.HasPrefix(e.ID(), "flaky") && calls[e.ID()] <= 2:
			return http.StatusServiceUnavailable
		case strings.HasPrefix(e.ID(), "bad"):
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	dead := newSink(t, ok)
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 4}
  - {name: dead, type: webhook, url: %q}
routes:
  - name: r
    filter: type == "order"
    to: [hook]
    delivery: {retry: 5, backoffDelay: 50ms, maxDelay: 200ms, deadLetter: dead}
`, hook.url, dead.url))
	var members []string
	ids := []string{}
	for i := range 20 {
		id := fmt.Sprintf("ok-%d", i)
		switch i % 5 {
		case 1:
			id = fmt.Sprintf("flaky-%d", i)
		case 3:
			id = fmt.Sprintf("bad-%d", i)
		}
		ids = append(ids, id)
		members = append(members, fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/shop","type":"order","data":{"n":%d}}`, id, i))
	}
	code, body := post(t, j.ingest+"/events", "application/cloudevents-batch+json", nil, "["+strings.Join(members, ",")+"]")
	if code != http.StatusAccepted {
		t.Fatalf("batch: %d %s", code, body)
	}
	// The request's 20 deliveries went into one journal message.
	e, m := j.metric("junction_journal_entries_total"), j.metric("junction_journal_messages_total")
	close(release)
	if e != 20 || m != 1 {
		t.Fatalf("journal: %v entries in %v messages, want 20 in 1", e, m)
	}
	plugintest.Eventually(t, 15*time.Second, "16 deliveries and 4 dead letters", func() bool {
		return hook.count() == 16 && dead.count() == 4
	})
	time.Sleep(300 * time.Millisecond) // room for a wrong extra call
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		want := 1
		if strings.HasPrefix(id, "flaky") {
			want = 3
		}
		if calls[id] != want {
			t.Errorf("%s: %d calls, want %d", id, calls[id], want)
		}
	}
	for _, e := range dead.received() {
		if !strings.HasPrefix(e.ID(), "bad") || fmt.Sprint(e.Extensions()["junctionattempts"]) != "1" {
			t.Errorf("dead letter %s with junctionattempts %v, want the bad events after 1 attempt", e.ID(), e.Extensions()["junctionattempts"])
		}
	}
	if got := j.metric("junction_deliveries_total", `outcome="retried"`); got != 8 {
		t.Errorf("retried = %v, want 8 (4 flaky events, 2 each)", got)
	}
	if got := j.metric("junction_deliveries_total", `outcome="dead_lettered"`); got != 4 {
		t.Errorf("dead_lettered = %v, want 4", got)
	}
}
