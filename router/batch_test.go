package router

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/junctionhq/junction/config"
	_ "github.com/junctionhq/junction/sinks/webhook" // the batching sink under test
)

// batchServer is a webhook destination that reads batches with sdk-go. It
// refuses (400) every batch holding the event "poison", fails (503) the
// first batch holding "flaky", and records the ids of the batches it
// accepts.
type batchServer struct {
	mu       sync.Mutex
	requests int
	accepted map[string]int
	flakyHit bool
	notBatch int
}

func (b *batchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests++
	if !cehttp.IsHTTPBatch(r.Header) {
		b.notBatch++
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	events, err := cehttp.NewEventsFromHTTPRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, e := range events {
		switch {
		case e.ID() == "poison":
			http.Error(w, "poison", http.StatusBadRequest)
			return
		case e.ID() == "flaky" && !b.flakyHit:
			b.flakyHit = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	for _, e := range events {
		b.accepted[e.ID()]++
	}
	w.WriteHeader(http.StatusOK)
}

func (b *batchServer) snapshot() (requests int, accepted map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	accepted = map[string]int{}
	for k, v := range b.accepted {
		accepted[k] = v
	}
	return b.requests, accepted
}

// TestBatchingWebhookSink: events to a webhook sink with a batch key arrive
// in fewer requests than events; an event that makes its batch fail for
// good is given up on alone (dropped here: onExhausted: drop), one that
// makes it fail for a while is retried, and every other event is accepted
// exactly once.
func TestBatchingWebhookSink(t *testing.T) {
	srv := &batchServer{accepted: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	p := compile(t, fmt.Sprintf(`
sinks:
  - name: hook
    type: webhook
    url: %s/batch
    concurrency: 4
    batch: {maxEvents: 20, maxWait: 100ms}
routes:
  - name: r
    to: [hook]
    delivery: {retry: 10, backoffDelay: 50ms, maxDelay: 200ms, onExhausted: drop}
`, hs.URL))
	r := startRouter(t, p)
	if got := r.sinkOrder[0].plan.Plugin.Concurrency; got != 20 {
		t.Errorf("effective concurrency %d, want maxEvents (20)", got)
	}
	var events []*event.Event
	want := map[string]bool{}
	for i := range 98 {
		id := fmt.Sprintf("e%d", i)
		events = append(events, newEvent(id, "t", map[string]any{"n": i}))
		want[id] = true
	}
	events = append(events, newEvent("poison", "t", nil), newEvent("flaky", "t", nil))
	want["flaky"] = true
	if err := r.Ingester("src").Ingest(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "99 events accepted and poison dropped", func() bool {
		_, acc := srv.snapshot()
		return len(acc) == len(want) && value(r.metrics.Deliveries.WithLabelValues("r", "hook", OutcomeDropped)) == 1
	})
	time.Sleep(300 * time.Millisecond) // time for a duplicate to show
	requests, acc := srv.snapshot()
	for id := range want {
		if acc[id] != 1 {
			t.Errorf("%s accepted %d times, want 1", id, acc[id])
		}
	}
	if acc["poison"] != 0 {
		t.Errorf("poison accepted")
	}
	srv.mu.Lock()
	if srv.notBatch != 0 {
		t.Errorf("%d requests were not batches", srv.notBatch)
	}
	srv.mu.Unlock()
	if requests >= 50 {
		t.Errorf("%d requests for 100 events: not batched", requests)
	}
	if got := value(r.metrics.Deliveries.WithLabelValues("r", "hook", OutcomeDelivered)); got != 99 {
		t.Errorf("delivered = %v, want 99", got)
	}
	if got := value(r.metrics.Deliveries.WithLabelValues("r", "hook", OutcomeRetried)); got < 1 {
		t.Errorf("retried = %v: the batch failed with 503 was not retried", got)
	}
	t.Logf("%d requests for 100 events", requests)
}

func TestBatchKeyRefused(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`
sinks:
  - name: a
    type: test-recorder
    batch: {maxEvents: 10}
routes:
  - {name: r, to: [a], delivery: {onExhausted: drop}}
`), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(cfg)
	want := `test.yaml:5:12: sink "a": batch: sink type "test-recorder" cannot send batches (types that can: webhook)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("compile error:\n%v\nwant %q", err, want)
	}
}
