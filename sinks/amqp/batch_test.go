package amqpsink

import (
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/sinks"
)

// TestDeliverBatch publishes a batch on the local RabbitMQ: every routable
// event arrives once; two that no queue takes (mandatory) fail permanently
// on their own, though other messages are confirmed around them; the
// channel serves single deliveries after that.
func TestDeliverBatch(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	x := a.Exchange(amqptest.Unique("batchx"), "topic")
	q := a.Queue(amqptest.Unique("batchq"), nil)
	if err := a.Ch.QueueBind(q, "orders.#", x, false, nil); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, toExchange(u, x, "type"), nil)
	var events []*event.Event
	for i := range 20 {
		e := testEvent(fmt.Sprintf("b-%d", i))
		e.SetType("orders.created")
		if i == 3 || i == 11 {
			e.SetType("nowhere")
		}
		events = append(events, e)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	errs := s.DeliverBatch(ctx, events)
	if len(errs) != 20 {
		t.Fatalf("%d results", len(errs))
	}
	for i, err := range errs {
		perm, _ := sinks.Classify(err)
		if i == 3 || i == 11 {
			if err == nil || !perm || !strings.Contains(err.Error(), `no queue bound for routing key "nowhere" (312 NO_ROUTE)`) {
				t.Errorf("event %d: %v (permanent %v), want unroutable", i, err, perm)
			}
		} else if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	seen := map[string]int{}
	for range 18 {
		d, ok := a.Get(q)
		if !ok {
			t.Fatal("fewer than 18 messages")
		}
		seen[d.MessageId]++
	}
	if _, ok := a.Get(q); ok || len(seen) != 18 {
		t.Errorf("%d distinct messages, or more than 18", len(seen))
	}
	e := testEvent("after")
	e.SetType("orders.after")
	if err := s.Deliver(ctx, e); err != nil {
		t.Errorf("a single delivery after the batch: %v", err)
	}
}

// TestDeliverBatchNacks: a queue that takes 5 messages and rejects the
// rest: the first 5 of a batch of 8 are confirmed, the last 3 nacked
// (retryable).
func TestDeliverBatchNacks(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("full"), amqp.Table{"x-max-length": int64(5), "x-overflow": "reject-publish"})
	s := newSink(t, toQueue(u, q), nil)
	var events []*event.Event
	for i := range 8 {
		events = append(events, testEvent(fmt.Sprintf("n-%d", i)))
	}
	for i, err := range s.DeliverBatch(ctxTimeout(t, 10*time.Second), events) {
		perm, _ := sinks.Classify(err)
		switch {
		case i < 5 && err != nil:
			t.Errorf("event %d: %v", i, err)
		case i >= 5 && (err == nil || perm || !strings.Contains(err.Error(), "basic.nack")):
			t.Errorf("event %d: %v (permanent %v), want a retryable nack", i, err, perm)
		}
	}
	if n := a.Count(q); n != 5 {
		t.Errorf("%d messages in the queue, want 5", n)
	}
}

// TestBatchingAMQP runs the sink under sinks.Batching as the router does.
func TestBatchingAMQP(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("batching"), nil)
	s := sinks.Batching(newSink(t, toQueue(u, q), nil),
		sinks.BatchOptions{MaxEvents: 40, MaxWait: 5 * time.Second})
	errc := make(chan error, 40)
	for i := range 40 {
		go func() { errc <- s.Deliver(ctxTimeout(t, 10*time.Second), testEvent(fmt.Sprintf("m-%d", i))) }()
	}
	for range 40 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if n := a.Count(q); n != 40 {
		t.Errorf("%d messages in the queue, want 40", n)
	}
}
