package webhooksink

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/junctionhq/junction/sinks"
)

// readBatch parses a recorded request with the CloudEvents SDK, which
// checks that it is in batch mode.
func readBatch(t *testing.T, got received) []event.Event {
	t.Helper()
	if !cehttp.IsHTTPBatch(got.header) {
		t.Fatalf("Content-Type %q: not a CloudEvents batch", got.header.Get("Content-Type"))
	}
	req, err := http.NewRequest(got.method, "http://x"+got.path, bytes.NewReader(got.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = got.header
	events, err := cehttp.NewEventsFromHTTPRequest(req)
	if err != nil {
		t.Fatalf("the SDK cannot read the batch: %v\n%s", err, got.body)
	}
	return events
}

func TestDeliverBatch(t *testing.T) {
	rec := newRecorder(t, "", nil)
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	want := []*event.Event{testEvent(t), testEvent(t), testEvent(t)}
	for i, e := range want {
		e.SetID(fmt.Sprintf("evt-%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := w.DeliverBatch(ctx, want)
	if len(errs) != 3 {
		t.Fatalf("%d results for 3 events", len(errs))
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if rec.count() != 1 {
		t.Fatalf("%d requests, want 1", rec.count())
	}
	got := readBatch(t, rec.last(t))
	if len(got) != 3 {
		t.Fatalf("the batch holds %d events, want 3", len(got))
	}
	for i := range got {
		sameEvent(t, &got[i], want[i])
	}
	if m := rec.last(t).method; m != http.MethodPost {
		t.Errorf("method %s", m)
	}
}

func TestDeliverBatchStatuses(t *testing.T) {
	rec := newRecorder(t, "", nil)
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	events := []*event.Event{testEvent(t), testEvent(t)}
	events[1].SetID("evt-2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rec.status.Store(http.StatusServiceUnavailable)
	rec.retryAfter.Store("7")
	for i, err := range w.DeliverBatch(ctx, events) {
		perm, after := sinks.Classify(err)
		if err == nil || perm || after != 7*time.Second {
			t.Errorf("503 with Retry-After 7, event %d: %v (permanent %v, after %v), want retryable after 7s", i, err, perm, after)
		}
	}
	rec.status.Store(http.StatusBadRequest)
	rec.retryAfter.Store("")
	rec.body.Store("bad batch")
	for i, err := range w.DeliverBatch(ctx, events) {
		want := "POST " + rec.srv.URL + "/hook: HTTP 400 Bad Request: bad batch"
		if perm, _ := sinks.Classify(err); err == nil || !perm || err.Error() != want {
			t.Errorf("400, event %d: %v, want permanent %q", i, err, want)
		}
	}
}

// TestBatchingWebhook runs the webhook sink under sinks.Batching as the
// router does: concurrent deliveries share requests.
func TestBatchingWebhook(t *testing.T) {
	rec := newRecorder(t, "", nil)
	s := sinks.Batching(build(t, cfgFor(rec.srv.URL+"/hook")), sinks.BatchOptions{MaxEvents: 10, MaxWait: 50 * time.Millisecond})
	errc := make(chan error, 25)
	for i := range 25 {
		go func() {
			e := testEvent(t)
			e.SetID(fmt.Sprintf("evt-%d", i))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errc <- s.Deliver(ctx, e)
		}()
	}
	for range 25 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	rec.mu.Lock()
	reqs := append([]received(nil), rec.reqs...)
	rec.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range reqs {
		for _, e := range readBatch(t, r) {
			if seen[e.ID()] {
				t.Errorf("%s delivered twice", e.ID())
			}
			seen[e.ID()] = true
		}
	}
	if len(seen) != 25 || len(reqs) > 5 {
		t.Errorf("%d events in %d requests, want 25 in at most 5", len(seen), len(reqs))
	}
}
