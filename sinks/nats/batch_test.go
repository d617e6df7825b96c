package natssink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/sinks"
)

// TestDeliverBatchJetStream publishes a batch to a JetStream stream on the
// local server: each good event is stored once (also when the batch is
// sent again), and the two bad ones fail permanently on their own.
func TestDeliverBatchJetStream(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	s := build(t, fmt.Sprintf("url: %s\nsubject: '%q + tenant'", natstest.URL(), prefix+"."))
	var events []*event.Event
	for i := range 20 {
		events = append(events, newEvent(fmt.Sprintf("b-%d", i)))
	}
	_ = events[4].SetData("application/octet-stream", make([]byte, 2<<20)) // over max_payload
	events[9].SetSubject("a\nb")                                           // not in a header
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := range 2 {
		errs := s.DeliverBatch(ctx, events)
		if len(errs) != len(events) {
			t.Fatalf("%d results for %d events", len(errs), len(events))
		}
		for i, err := range errs {
			bad := i == 4 || i == 9
			if perm, _ := sinks.Classify(err); bad && (err == nil || !perm) || !bad && err != nil {
				t.Errorf("round %d, event %d: %v (permanent %v)", round, i, err, perm)
			}
		}
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 18 {
		t.Errorf("%d messages stored, want 18 (the batch sent twice is deduplicated)", info.State.Msgs)
	}
	if m := lastMsg(t, js, stream, prefix+".acme"); m.Header.Get("ce-id") != "b-19" {
		t.Errorf("last message %v, want b-19 (the order of the batch)", m.Header)
	}
}

func TestDeliverBatchCore(t *testing.T) {
	nc, _ := natstest.Connect(t)
	subject := "corebatch" + natstest.Suffix()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	s := build(t, fmt.Sprintf("url: %s\nsubject: '%q'\njetstream: false", natstest.URL(), subject))
	var events []*event.Event
	for i := range 10 {
		events = append(events, newEvent(fmt.Sprintf("c-%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, err := range s.DeliverBatch(ctx, events) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	for i := range 10 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if id := m.Header.Get("ce-id"); id != fmt.Sprintf("c-%d", i) {
			t.Errorf("message %d is %s", i, id)
		}
	}
}

// TestBatchingNATS runs the sink under sinks.Batching as the router does.
func TestBatchingNATS(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	var batches []int
	done := make(chan struct{}, 1)
	s := sinks.Batching(build(t, fmt.Sprintf("url: %s\nsubject: '%q'", natstest.URL(), prefix+".x")),
		sinks.BatchOptions{MaxEvents: 25, MaxWait: 5 * time.Second, OnBatch: func(n int) { batches = append(batches, n); done <- struct{}{} }})
	errc := make(chan error, 25)
	for i := range 25 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errc <- s.Deliver(ctx, newEvent(fmt.Sprintf("n-%d", i)))
		}()
	}
	for range 25 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	<-done
	if len(batches) != 1 || batches[0] != 25 {
		t.Errorf("batches %v, want one of 25", batches)
	}
	st, _ := js.Stream(context.Background(), stream)
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 25 {
		t.Errorf("%d messages stored, want 25", info.State.Msgs)
	}
}
