package router

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// TestLiveTail reads GET /api/v1/tail over real HTTP: events accepted
// after it connected arrive as SSE frames, filtered by ?source=.
func TestLiveTail(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: one, type: test-recorder}
routes:
  - {name: all, to: [one]}
`)
	r := startRouter(t, p)
	srv := httptest.NewServer(r.adminHandler())
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/tail?source=a", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	frames := make(chan tailFrame, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var f tailFrame
				if err := json.Unmarshal([]byte(data), &f); err == nil {
					frames <- f
				}
			}
		}
	}()
	eventually(t, 5*time.Second, "the tail subscribed", func() bool { return r.tail.n.Load() == 1 })
	for _, src := range []string{"b", "a"} {
		if err := r.Ingester(src).Ingest(context.Background(), []*event.Event{newEvent("from-"+src, "t", map[string]any{"n": 1})}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case f := <-frames:
		if f.Source != "a" || f.Event == nil || f.Event.ID() != "from-a" {
			t.Fatalf("frame %+v, want the event from source a only", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no frame on the tail")
	}
	cancel()
	eventually(t, 5*time.Second, "the tail unsubscribed", func() bool { return r.tail.n.Load() == 0 })
}

// A tail that does not read loses frames; ingest never waits for it.
func TestTailNeverBlocksIngest(t *testing.T) {
	var h tailHub
	s := h.subscribe("")
	for i := 0; i < 1000; i++ {
		h.publish("x", []*event.Event{newEvent("e", "t", nil)})
	}
	if len(s.frames) != cap(s.frames) || s.dropped.Load() != int64(1000-cap(s.frames)) {
		t.Fatalf("queued %d, dropped %d", len(s.frames), s.dropped.Load())
	}
	for i := 0; i < maxTails-1; i++ {
		if h.subscribe("") == nil {
			t.Fatalf("subscriber %d refused", i+2)
		}
	}
	if h.subscribe("") != nil {
		t.Fatalf("more than %d tails accepted", maxTails)
	}
}
