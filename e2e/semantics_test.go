package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// orderedConfig routes every event to sink hook (concurrency 8), ordered by
// data.customer.
func orderedConfig(url string) string {
	return base + fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 8}
routes:
  - name: orders
    to: [hook]
    orderBy: data.customer
    delivery: {backoffDelay: 50ms, maxDelay: 200ms}
`, url)
}

// orderEvent posts event n of customer c (binary mode); it returns the
// status.
func orderEvent(t testing.TB, url, c string, n int) int {
	t.Helper()
	return binaryEvent(t, url, fmt.Sprintf("%s-%d", c, n), "com.example.order", fmt.Sprintf(`{"customer":%q,"n":%d}`, c, n))
}

// checkOrder checks each customer's events as a receiver that drops what
// is not above the last junctionseq it processed would see them: 0..n-1, in
// the order accepted. What it drops must be repeats (after a crash, a
// delivery made and not yet acknowledged comes again, with its number).
func checkOrder(t *testing.T, got []event.Event, customers, n int) {
	t.Helper()
	type seen struct{ n, seq int }
	by := map[string][]seen{}
	for _, e := range got {
		var d struct {
			Customer string
			N        int
		}
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			t.Fatalf("event %s: %v", e.ID(), err)
		}
		v, ok := e.Extensions()["junctionseq"]
		if !ok {
			t.Fatalf("event %s without junctionseq", e.ID())
		}
		seq, err := types.ToInteger(v)
		if err != nil {
			s, _ := types.ToString(v)
			n, perr := strconv.Atoi(s)
			if perr != nil {
				t.Fatalf("event %s: junctionseq %v is not an integer", e.ID(), v)
			}
			seq = int32(n)
		}
		by[d.Customer] = append(by[d.Customer], seen{d.N, int(seq)})
	}
	for c := range customers {
		key := fmt.Sprint("c", c)
		seqOf := map[int]int{}
		last, want, repeats := -1, 0, 0
		for _, s := range by[key] {
			if first, ok := seqOf[s.n]; ok && first != s.seq {
				t.Errorf("%s: event %d came with junctionseq %d, then %d", key, s.n, first, s.seq)
			}
			seqOf[s.n] = s.seq
			if s.seq <= last {
				if s.n >= want {
					t.Fatalf("%s: event %d (junctionseq %d) not above %d, and never processed: %v", key, s.n, s.seq, last, by[key])
				}
				repeats++
				continue
			}
			if s.n != want {
				t.Fatalf("%s: event %d came where %d was due: %v", key, s.n, want, by[key])
			}
			last, want = s.seq, want+1
		}
		if want != n {
			t.Errorf("%s: %d of %d events arrived", key, want, n)
		}
		if repeats > 0 {
			t.Logf("%s: %d repeats dropped by junctionseq", key, repeats)
		}
	}
}

// TestOrderedDelivery: 10 customers, 20 events each, posted customer by
// customer in parallel, to a sink with concurrency 8 that fails customer
// c0's first attempts: each customer's events arrive in order with an
// increasing junctionseq, and c0's failures hold back only c0.
func TestOrderedDelivery(t *testing.T) {
	t.Parallel()
	const customers, n = 10, 20
	var mu sync.Mutex
	inFlight := map[string]bool{}
	overlap := 0
	c0Fails := 0
	hook := newSink(t, func(call int, e *event.Event) int {
		var d struct{ Customer string }
		json.Unmarshal(e.Data(), &d)
		mu.Lock()
		if inFlight[d.Customer] {
			overlap++
		}
		inFlight[d.Customer] = true
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		inFlight[d.Customer] = false
		if d.Customer == "c0" && c0Fails < 5 {
			c0Fails++
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	j := start(t, orderedConfig(hook.url))
	var wg sync.WaitGroup
	for c := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if code := orderEvent(t, j.ingest+"/events", fmt.Sprint("c", c), i); code != http.StatusAccepted {
					t.Errorf("POST: %d", code)
				}
			}
		}()
	}
	wg.Wait()
	waitCount(t, hook, customers*n, 30*time.Second)
	checkOrder(t, hook.received(), customers, n)
	mu.Lock()
	defer mu.Unlock()
	if overlap > 0 {
		t.Errorf("%d attempts started while another of the same customer was in flight", overlap)
	}
}

// TestOrderedAcrossKill9: junction is killed (-9) twice while ordered
// deliveries flow; after each restart every customer's events still arrive
// in order, none lost.
func TestOrderedAcrossKill9(t *testing.T) {
	t.Parallel()
	const customers, n = 6, 60
	hook := newSink(t, func(call int, e *event.Event) int {
		time.Sleep(3 * time.Millisecond)
		return http.StatusOK
	})
	j := start(t, orderedConfig(hook.url))
	for i := range n {
		for c := range customers {
			if code := orderEvent(t, j.ingest+"/events", fmt.Sprint("c", c), i); code != http.StatusAccepted {
				t.Fatalf("POST: %d", code)
			}
		}
		if i == n/3 || i == 2*n/3 {
			j.kill()
			j.restart()
		}
	}
	waitFor(t, 60*time.Second, "every customer's last event", lastOrders(hook, customers, n))
	checkOrder(t, hook.received(), customers, n)
}

// lastOrders says whether every customer's last order event (n-1) has
// arrived at s.
func lastOrders(s *sink, customers, n int) func() bool {
	return func() bool {
		last := map[string]bool{}
		for _, e := range s.received() {
			var d struct {
				Customer string
				N        int
			}
			if e.Type() == "com.example.order" && json.Unmarshal(e.Data(), &d) == nil && d.N == n-1 {
				last[d.Customer] = true
			}
		}
		return len(last) == customers
	}
}

// TestDelayAndDeliverAt: a route with delay: 2s and one with deliverAt
// from the event; junction is killed (-9) while they wait; each arrives no
// earlier than due, soon after.
func TestDelayAndDeliverAt(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	hook := newSink(t, func(call int, e *event.Event) int {
		mu.Lock()
		arrived[e.ID()+"/"+e.Type()] = time.Now()
		mu.Unlock()
		return http.StatusOK
	})
	j := start(t, base+fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - name: later
    filter: type == "later"
    to: [hook]
    delay: 3s
  - name: remind
    filter: type == "remind"
    to: [hook]
    deliverAt: data.remindAt
`, hook.url))
	start := time.Now()
	due := map[string]time.Time{}
	for i := range 5 {
		id := fmt.Sprint("l", i)
		// Due 3 s after acceptance, which is after the request was sent.
		due[id+"/later"] = time.Now().Add(3 * time.Second)
		if binaryEvent(t, j.ingest+"/events", id, "later", `{}`) != http.StatusAccepted {
			t.Fatal("POST later")
		}
	}
	for i, d := range []time.Duration{2 * time.Second, 4 * time.Second, -time.Hour} {
		id := fmt.Sprint("m", i)
		at := start.Add(d)
		if binaryEvent(t, j.ingest+"/events", id, "remind", fmt.Sprintf(`{"remindAt":%q}`, at.UTC().Format(time.RFC3339Nano))) != http.StatusAccepted {
			t.Fatal("POST remind")
		}
		due[id+"/remind"] = at
	}
	// A null deliverAt is now.
	if binaryEvent(t, j.ingest+"/events", "m-null", "remind", `{"remindAt":null}`) != http.StatusAccepted {
		t.Fatal("POST remind")
	}
	due["m-null/remind"] = start
	j.kill()
	time.Sleep(500 * time.Millisecond)
	j.restart()
	waitFor(t, 20*time.Second, "every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) == len(due)
	})
	mu.Lock()
	defer mu.Unlock()
	for id, at := range arrived {
		late := at.Sub(due[id])
		t.Logf("%s arrived %v after due", id, late.Round(time.Millisecond))
		if late < 0 {
			t.Errorf("%s arrived %v before due", id, -late)
		}
		if late > 3*time.Second && due[id].After(start) {
			t.Errorf("%s arrived %v after due", id, late)
		}
	}
	// kill -9 may repeat a delivery in flight (at least once): counted,
	// not failed.
	t.Logf("%d duplicates after kill -9", hook.duplicates())
}

// TestPriorityFirst: with a backlog of 200 events of priority 0 at a slow
// sink (concurrency 1), gold events posted after them are delivered long
// before the backlog ends.
func TestPriorityFirst(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	hook := newSink(t, func(call int, e *event.Event) int {
		<-release
		time.Sleep(5 * time.Millisecond)
		return http.StatusOK
	})
	j := start(t, base+fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 1}
routes:
  - name: r
    to: [hook]
    priority: 'data.tier == "gold" ? 9 : 0'
`, hook.url))
	for i := range 200 {
		if binaryEvent(t, j.ingest+"/events", fmt.Sprint("low-", i), "t", `{"tier":"basic"}`) != http.StatusAccepted {
			t.Fatal("POST")
		}
	}
	for i := range 3 {
		if binaryEvent(t, j.ingest+"/events", fmt.Sprint("gold-", i), "t", `{"tier":"gold"}`) != http.StatusAccepted {
			t.Fatal("POST")
		}
	}
	once.Do(func() { close(release) })
	waitCount(t, hook, 203, 30*time.Second)
	for i, e := range hook.received() {
		if e.ID()[:4] == "gold" && i > 10 {
			t.Errorf("%s delivered as number %d of 203, want among the first few", e.ID(), i+1)
		}
	}
}

// TestExampleOrderedOrders runs examples/ordered-orders: a customer's
// events arrive in order with increasing junctionseq.
func TestExampleOrderedOrders(t *testing.T) {
	t.Parallel()
	hook := newSink(t, nil)
	j := startFile(t, "../examples/ordered-orders/junction.yaml", "FULFILMENT_URL="+hook.url)
	for n := range 5 {
		code, body := post(t, j.ingest+"/orders", "application/json", map[string]string{
			"ce-specversion": "1.0", "ce-id": fmt.Sprint("c1-", n), "ce-source": "/shop", "ce-type": "com.example.order.updated",
		}, fmt.Sprintf(`{"customerId":"c-1","step":%d}`, n))
		if code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", code, body)
		}
	}
	waitCount(t, hook, 5, 10*time.Second)
	last := int32(0)
	for i, e := range hook.received() {
		if e.ID() != fmt.Sprint("c1-", i) {
			t.Errorf("event %d is %s", i, e.ID())
		}
		seq, err := types.ToInteger(e.Extensions()["junctionseq"])
		if err != nil || seq <= last {
			t.Errorf("event %s: junctionseq %v (%v) after %d", e.ID(), e.Extensions()["junctionseq"], err, last)
		}
		last = seq
	}
}

// TestExampleReminders runs examples/reminders with a 2 s follow-up delay.
func TestExampleReminders(t *testing.T) {
	t.Parallel()
	hook := newSink(t, nil)
	j := startFile(t, "../examples/reminders/junction.yaml", "NOTIFY_URL="+hook.url, "FOLLOW_UP_DELAY=2s")
	t0 := time.Now()
	at := t0.Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	code, body := post(t, j.ingest+"/reminders", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": "r-1", "ce-source": "/calendar", "ce-type": "com.example.reminder",
	}, fmt.Sprintf(`{"remindAt":%q,"text":"stand-up"}`, at))
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, body)
	}
	code, body = post(t, j.ingest+"/reminders", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": "s-1", "ce-source": "/signup", "ce-type": "com.example.signup",
	}, `{}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, body)
	}
	if hook.count() != 0 {
		t.Fatal("delivered before due")
	}
	waitCount(t, hook, 2, 10*time.Second)
	if d := time.Since(t0); d < 2*time.Second {
		t.Errorf("both delivered %v after posting, want at least 2s", d)
	}
	if got := hook.received(); got[0].ID() != "r-1" || got[1].ID() != "s-1" {
		t.Errorf("delivered %s then %s, want r-1 (due at 1.5s) then s-1 (2s)", got[0].ID(), got[1].ID())
	}
}

// TestFailingKeyBlocksOnlyItself: customer c0's events fail for a while
// and keep coming, many times the sink's window (maxPending: 10): the
// other customers' events all arrive meanwhile (c0's are parked in the
// journal), then c0's arrive, in order.
func TestFailingKeyBlocksOnlyItself(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	failing.Store(true)
	hook := newSink(t, func(call int, e *event.Event) int {
		var d struct{ Customer string }
		json.Unmarshal(e.Data(), &d)
		if d.Customer == "c0" && failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	j := start(t, base+fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 4, maxPending: 10}
routes:
  - name: orders
    to: [hook]
    orderBy: data.customer
    delivery: {backoffDelay: 50ms, maxDelay: 200ms}
`, hook.url))
	const customers, n = 4, 50
	for i := range n {
		for c := range customers {
			if code := orderEvent(t, j.ingest+"/events", fmt.Sprint("c", c), i); code != http.StatusAccepted {
				t.Fatalf("POST: %d", code)
			}
		}
	}
	waitFor(t, 30*time.Second, "the other customers while c0 fails", func() bool { return hook.count() >= (customers-1)*n })
	failing.Store(false)
	waitFor(t, 30*time.Second, "c0's events", func() bool { return hook.distinct() >= customers*n })
	checkOrder(t, hook.received(), customers, n)
}
