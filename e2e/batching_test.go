package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/junctionhq/junction/internal/plugintest"
)

const batchingExample = "../examples/batching/junction.yaml"

// batchReceiver is a webhook destination that takes CloudEvents batches
// only (read with sdk-go) and records each request's event ids. It refuses
// (400) every batch that holds the event "refused".
type batchReceiver struct {
	mu       sync.Mutex
	batches  [][]string
	ids      map[string]int
	notBatch int
}

func (b *batchReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	events, err := cehttp.NewEventsFromHTTPRequest(r)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !cehttp.IsHTTPBatch(r.Header) || err != nil {
		b.notBatch++
		http.Error(w, fmt.Sprint("not a batch: ", err), http.StatusUnsupportedMediaType)
		return
	}
	var ids []string
	for _, e := range events {
		if e.ID() == "refused" {
			http.Error(w, "refused", http.StatusBadRequest)
			return
		}
		ids = append(ids, e.ID())
	}
	b.batches = append(b.batches, ids)
	for _, id := range ids {
		b.ids[id]++
	}
	w.WriteHeader(http.StatusOK)
}

func (b *batchReceiver) distinct() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ids)
}

// TestBatchingExample runs examples/batching with the real binary: it
// validates without warnings; 300 events posted in CloudEvents batches and
// one at a time all reach the receiver once, in batch requests of at most
// maxEvents (50); an event that the receiver refuses is dead-lettered
// alone.
func TestBatchingExample(t *testing.T) {
	out, err := exec.Command(binary, "validate", "--config", batchingExample).CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") || !strings.Contains(string(out), ": ok: ") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	rec := &batchReceiver{ids: map[string]int{}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	j := startFile(t, batchingExample, "WAREHOUSE_URL="+srv.URL+"/load")

	const n = 300
	var wg sync.WaitGroup
	// 250 in 5 ingress batches of 50, at once.
	for b := range 5 {
		wg.Go(func() {
			var events []map[string]any
			for i := range 50 {
				events = append(events, map[string]any{"specversion": "1.0", "id": fmt.Sprintf("e-%d", b*50+i), "source": "/shop", "type": "com.example.order.created", "data": map[string]any{"n": i}})
			}
			body, _ := json.Marshal(events)
			if code, msg := post(t, j.ingest+"/events", "application/cloudevents-batch+json", nil, string(body)); code != http.StatusAccepted {
				t.Errorf("batch %d: %d %s", b, code, msg)
			}
		})
	}
	// 50 one at a time, from 10 clients, and the event the receiver refuses.
	for c := range 10 {
		wg.Go(func() {
			for i := range 5 {
				if code := binaryEvent(t, j.ingest+"/events", fmt.Sprintf("e-%d", 250+c*5+i), "com.example.order.created", `{"n":1}`); code != http.StatusAccepted {
					t.Errorf("event: %d", code)
				}
			}
		})
	}
	if code := binaryEvent(t, j.ingest+"/events", "refused", "com.example.order.created", `{"n":0}`); code != http.StatusAccepted {
		t.Errorf("refused event: %d", code)
	}
	wg.Wait()

	plugintest.Eventually(t, 30*time.Second, "300 events at the receiver", func() bool { return rec.distinct() == n })
	plugintest.Eventually(t, 10*time.Second, "the refused event dead-lettered", func() bool {
		return j.metric("junction_deliveries_total", `outcome="dead_lettered"`) == 1
	})
	time.Sleep(time.Second) // time for a duplicate to show
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for id, c := range rec.ids {
		if c != 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
	if rec.notBatch != 0 {
		t.Errorf("%d requests were not CloudEvents batches", rec.notBatch)
	}
	sizes := make([]int, len(rec.batches))
	for i, b := range rec.batches {
		sizes[i] = len(b)
		if len(b) > 50 {
			t.Errorf("a batch of %d events, over maxEvents (50)", len(b))
		}
	}
	if len(rec.batches) > n/5 {
		t.Errorf("%d requests for %d events: hardly batched (sizes %v)", len(rec.batches), n, sizes)
	}
	t.Logf("%d events in %d batch requests: %v", n, len(rec.batches), sizes)
	if c := j.metric("junction_sink_batch_size_count", `sink="warehouse"`); c < float64(len(rec.batches)) {
		t.Errorf("junction_sink_batch_size_count = %v, want at least %d", c, len(rec.batches))
	}
	if d := j.metric("junction_deliveries_total", `sink="warehouse"`, `outcome="delivered"`); d != n {
		t.Errorf("delivered = %v, want %d", d, n)
	}
	plugintest.Eventually(t, 5*time.Second, "the refused event printed by the dead sink", func() bool {
		return consoleLine(j.stderr.String(), "id", "refused") != nil
	})
}
