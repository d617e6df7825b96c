package sqssink

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sinks"
)

// TestDeliverBatch sends a batch of 24 events through the SQS server: the
// 23 good ones in chunks of 10 entries, each stored once; one too long for
// SQS fails permanently alone.
func TestDeliverBatch(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "batchmode")
	proxyURL, calls, entries := countingProxy(t)
	s := build(t, q, func(c *Config) { c.Endpoint = proxyURL })
	var events []*event.Event
	for i := range 23 {
		events = append(events, testEvent(t, fmt.Sprintf("evt-%d", i)))
	}
	big := testEvent(t, "big")
	big.SetData("text/plain", strings.Repeat("x", 1100<<10))
	events = append(events[:7], append([]*event.Event{big}, events[7:]...)...)

	errs := s.DeliverBatch(deliverCtx(t), events)
	if len(errs) != len(events) {
		t.Fatalf("%d results for %d events", len(errs), len(events))
	}
	for i, err := range errs {
		if events[i] == big {
			if perm, _ := sinks.Classify(err); err == nil || !perm {
				t.Errorf("too long: %v, want permanent", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", events[i].ID(), err)
		}
	}
	// 23 in 3 calls of up to 10, and the big one alone.
	if calls.Load() != 4 {
		t.Errorf("%d SendMessageBatch calls, want 4", calls.Load())
	}
	if entries.Load() != 24 {
		t.Errorf("%d entries sent, want 24", entries.Load())
	}
	ids := map[string]int{}
	for _, m := range receive(t, c, q, 23) {
		var e event.Event
		if err := json.Unmarshal([]byte(*m.Body), &e); err != nil {
			t.Fatal(err)
		}
		ids[e.ID()]++
	}
	for i := range 23 {
		if id := fmt.Sprintf("evt-%d", i); ids[id] != 1 {
			t.Errorf("%s received %d times", id, ids[id])
		}
	}
}

// TestBatchingSQS runs the sink under sinks.Batching as the router does
// with batch: {maxEvents: 30}: 30 concurrent deliveries go out as one batch
// of 3 SendMessageBatch calls.
func TestBatchingSQS(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "batching")
	proxyURL, calls, _ := countingProxy(t)
	s := sinks.Batching(build(t, q, func(c *Config) { c.Endpoint = proxyURL }), sinks.BatchOptions{MaxEvents: 30, MaxWait: 5 * time.Second})
	errc := make(chan error, 30)
	for i := range 30 {
		go func() { errc <- s.Deliver(deliverCtx(t), testEvent(t, fmt.Sprintf("evt-%d", i))) }()
	}
	for range 30 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if calls.Load() != 3 {
		t.Errorf("%d SendMessageBatch calls, want 3", calls.Load())
	}
	if got := len(receive(t, c, q, 30)); got != 30 {
		t.Errorf("%d messages received, want 30", got)
	}
}
