package amqpsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sinks"
)

// newSink decodes src, the sink's own keys, as the loader does and builds
// the sink; it is closed when the test ends.
func newSink(t testing.TB, src string, logs io.Writer) *Sink {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatal(errs)
	}
	if logs == nil {
		logs = io.Discard
	}
	s, err := c.Build(context.Background(), sinks.Deps{Name: "rabbit", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Sink)
}

// toQueue is the config of a sink that publishes to queue q of the broker
// at u through the default exchange.
func toQueue(u, q string) string { return fmt.Sprintf("url: %s\nroutingKey: '%q'\n", u, q) }

// toExchange is the config of a sink that publishes to exchange x of the
// broker at u with routingKey, an expression.
func toExchange(u, x, routingKey string) string {
	return fmt.Sprintf("url: %s\nexchange: %s\nroutingKey: '%s'\n", u, x, routingKey)
}

func testEvent(id string) *event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/shop")
	e.SetType("com.example.order.created")
	e.SetSubject("order 42 ✓")
	e.SetTime(time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC))
	e.SetDataSchema("https://example.com/order.json")
	e.SetExtension("tenant", "acme")
	e.SetExtension("priority", 7)
	e.SetExtension("urgent", true)
	e.SetExtension("blob", []byte{0, 1})
	e.SetExtension("ref", types.URIRef{})
	_ = e.SetData("application/json", map[string]any{"orderId": "o-1", "amount": 120})
	return &e
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestDeliverBinary(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("bin"), nil)
	s := newSink(t, toQueue(u, q), nil)
	e := testEvent("bin-1")
	e.SetExtension("ref", nil)
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), e); err != nil {
		t.Fatal(err)
	}
	d, ok := a.Get(q)
	if !ok {
		t.Fatal("no message in the queue")
	}
	want := amqp.Table{
		"cloudEvents:specversion": "1.0",
		"cloudEvents:id":          "bin-1",
		"cloudEvents:source":      "/shop",
		"cloudEvents:type":        "com.example.order.created",
		"cloudEvents:subject":     "order 42 ✓",
		"cloudEvents:time":        "2024-03-01T12:00:00.123456789Z",
		"cloudEvents:dataschema":  "https://example.com/order.json",
		"cloudEvents:tenant":      "acme",
		"cloudEvents:priority":    int64(7),
		"cloudEvents:urgent":      true,
		"cloudEvents:blob":        []byte{0, 1},
	}
	if fmt.Sprint(d.Headers) != fmt.Sprint(want) {
		t.Errorf("headers:\n got %v\nwant %v", d.Headers, want)
	}
	// AMQP binding 3.1.3.2: "Integer | long", and an implementation "MUST
	// be strict for outgoing messages".
	if _, ok := d.Headers["cloudEvents:priority"].(int64); !ok {
		t.Errorf("cloudEvents:priority is a %T, want an AMQP long (int64)", d.Headers["cloudEvents:priority"])
	}
	if d.ContentType != "application/json" || string(d.Body) != `{"amount":120,"orderId":"o-1"}` || d.MessageId != "bin-1" || d.DeliveryMode != amqp.Persistent {
		t.Errorf("message: content-type %q body %s message-id %q mode %d", d.ContentType, d.Body, d.MessageId, d.DeliveryMode)
	}
}

func TestDeliverStructured(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("str"), nil)
	s := newSink(t, toQueue(u, q)+"format: structured\npersistent: false\n", nil)
	e := testEvent("str-1")
	e.SetExtension("ref", nil)
	e.SetExtension("blob", nil) // JSON turns binary values into base64 strings
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), e); err != nil {
		t.Fatal(err)
	}
	d, ok := a.Get(q)
	if !ok {
		t.Fatal("no message in the queue")
	}
	if d.ContentType != "application/cloudevents+json; charset=utf-8" || d.DeliveryMode != amqp.Transient || d.MessageId != "str-1" || len(d.Headers) != 0 {
		t.Errorf("message: %+v", d)
	}
	var got event.Event
	if err := got.UnmarshalJSON(d.Body); err != nil {
		t.Fatal(err)
	}
	if got.String() != e.String() {
		t.Errorf("event:\n got %s\nwant %s", got, e)
	}
}

// TestRoutingKey routes through a topic exchange by an expression, and
// checks the failures: an expression that fails is permanent, and so is a
// message no queue takes.
func TestRoutingKey(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	x := a.Exchange(amqptest.Unique("topic"), "topic")
	q := a.Queue(amqptest.Unique("orders"), nil)
	if err := a.Ch.QueueBind(q, "orders.#", x, false, nil); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, toExchange(u, x, `"orders." + type`), nil)
	ctx := ctxTimeout(t, 10*time.Second)
	if err := s.Deliver(ctx, testEvent("rk-1")); err != nil {
		t.Fatal(err)
	}
	d, ok := a.Get(q)
	if !ok || d.RoutingKey != "orders.com.example.order.created" {
		t.Errorf("message: %v %q", ok, d.RoutingKey)
	}

	// Unroutable with mandatory: permanent, and the next delivery on the
	// same channel is not confused by the return.
	s2 := newSink(t, toExchange(u, x, "type"), nil)
	err := s2.Deliver(ctx, testEvent("rk-2"))
	wantErr := fmt.Sprintf(`amqp://127.0.0.1:5672/%s: no queue bound for routing key "com.example.order.created" (312 NO_ROUTE)`, x)
	if perm, _ := sinks.Classify(err); err == nil || err.Error() != wantErr || !perm {
		t.Errorf("unroutable: %v (permanent %v), want %s", err, perm, wantErr)
	}
	e := testEvent("rk-3")
	e.SetType("x")
	if err := a.Ch.QueueBind(q, "x", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := s2.Deliver(ctx, e); err != nil {
		t.Errorf("routable after an unroutable one: %v", err)
	}

	// Without mandatory the broker drops it and confirms.
	s3 := newSink(t, toExchange(u, x, `"nowhere"`)+"mandatory: false\n", nil)
	if err := s3.Deliver(ctx, testEvent("rk-4")); err != nil {
		t.Errorf("unroutable without mandatory: %v", err)
	}

	// An expression that yields nil for this event.
	s4 := newSink(t, toExchange(u, x, "tenantless"), nil)
	err = s4.Deliver(ctx, testEvent("rk-5"))
	if perm, _ := sinks.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "evaluate routingKey: the expression yielded nil") {
		t.Errorf("failing expression: %v (permanent %v)", err, perm)
	}
}

func TestMissingExchange(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("after"), nil)
	x := amqptest.Unique("missing")
	s := newSink(t, toExchange(u, x, `"k"`), nil)
	err := s.Deliver(ctxTimeout(t, 5*time.Second), testEvent("mx-1"))
	want := fmt.Sprintf(`amqp://127.0.0.1:5672/%s: exchange not found: 404 NOT_FOUND - no exchange '%s' in vhost '/'`, x, x)
	if perm, _ := sinks.Classify(err); err == nil || err.Error() != want || !perm {
		t.Fatalf("got %v (permanent %v), want %s", err, perm, want)
	}
	// The connection is still good for other deliveries once the exchange
	// exists.
	a.Exchange(x, "direct")
	if err := a.Ch.QueueBind(q, "k", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), testEvent("mx-2")); err != nil {
		t.Fatal(err)
	}
	if a.Count(q) != 1 {
		t.Errorf("%d messages, want 1", a.Count(q))
	}
}

// TestNackRetryable fills a queue that rejects publishes when full: the
// broker nacks, which is retryable.
func TestNackRetryable(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("full"), amqp.Table{"x-max-length": int64(1), "x-overflow": "reject-publish"})
	s := newSink(t, toQueue(u, q), nil)
	ctx := ctxTimeout(t, 5*time.Second)
	if err := s.Deliver(ctx, testEvent("n-1")); err != nil {
		t.Fatal(err)
	}
	err := s.Deliver(ctx, testEvent("n-2"))
	if perm, _ := sinks.Classify(err); err == nil || perm || !strings.Contains(err.Error(), "broker nacked the message (basic.nack)") {
		t.Fatalf("got %v (permanent %v), want a retryable nack", err, perm)
	}
	a.Get(q)
	if err := s.Deliver(ctx, testEvent("n-3")); err != nil {
		t.Errorf("after the queue drained: %v", err)
	}
}

// TestConcurrentDeliver runs many Deliver calls at once (run with -race):
// each returns nil only for its own confirmed message, and every message
// arrives once.
func TestConcurrentDeliver(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("conc"), nil)
	x := a.Exchange(amqptest.Unique("conc"), "direct")
	if err := a.Ch.QueueBind(q, "ok", x, false, nil); err != nil {
		t.Fatal(err)
	}
	// Every fifth event is unroutable: its return must fail that delivery
	// and no other.
	s := newSink(t, toExchange(u, x, "subject"), nil)
	const workers, each = 24, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wrong []string
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := testEvent(fmt.Sprintf("w%d-%d", w, i))
				unroutable := (w*each+i)%5 == 0
				if unroutable {
					e.SetSubject("nowhere")
				} else {
					e.SetSubject("ok")
				}
				err := s.Deliver(ctxTimeout(t, 10*time.Second), e)
				perm, _ := sinks.Classify(err)
				if unroutable != (err != nil && perm) || (!unroutable && err != nil) {
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("%s (unroutable %v): %v", e.ID(), unroutable, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(wrong) > 0 {
		t.Fatalf("%d wrong outcomes, e.g. %s", len(wrong), wrong[0])
	}
	want := workers * each * 4 / 5
	plugintest.Eventually(t, 5*time.Second, "every routable message", func() bool { return a.Count(q) == want })
	seen := map[string]bool{}
	for {
		d, ok := a.Get(q)
		if !ok {
			break
		}
		if seen[d.MessageId] {
			t.Errorf("message %s twice", d.MessageId)
		}
		seen[d.MessageId] = true
	}
	if len(seen) != want {
		t.Errorf("%d distinct messages, want %d", len(seen), want)
	}
	s.mu.Lock()
	pooled := len(s.free)
	s.mu.Unlock()
	if pooled > workers {
		t.Errorf("%d pooled channels for %d concurrent deliveries", pooled, workers)
	}
}

// TestBrokerDown: with the broker unreachable (a loopback proxy that
// forwards the real AMQP bytes, stopped), Deliver fails as retryable
// without dialling on every call; when the broker is back, delivery
// succeeds. Cutting an established connection is retryable too.
func TestBrokerDown(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("down"), nil)
	p := amqptest.NewProxy(t, u)
	logs := &plugintest.LogBuffer{}
	s := newSink(t, toQueue(p.URL(u), q), logs)
	ctx := ctxTimeout(t, 30*time.Second)
	if err := s.Deliver(ctx, testEvent("d-1")); err != nil {
		t.Fatal(err)
	}

	p.Stop()
	// The first call may still find the dying connection; then a dial is
	// refused.
	for i := 0; ; i++ {
		err := s.Deliver(ctx, testEvent("d-2"))
		if perm, _ := sinks.Classify(err); err == nil || perm {
			t.Fatalf("broker gone: %v (permanent %v), want retryable", err, perm)
		}
		if strings.Contains(err.Error(), "connection refused") {
			break
		}
		if i == 3 {
			t.Fatalf("no refused dial after %d calls: %v", i, err)
		}
	}
	// Within the backoff, a call fails at once with the wait as its delay.
	err := s.Deliver(ctx, testEvent("d-3"))
	perm, after := sinks.Classify(err)
	if err == nil || perm || after <= 0 || !strings.Contains(err.Error(), "next attempt in") {
		t.Errorf("during backoff: %v (permanent %v, after %v)", err, perm, after)
	}
	if strings.Contains(err.Error(), "guest") {
		t.Errorf("error shows credentials: %v", err)
	}

	p.Start()
	plugintest.Eventually(t, 10*time.Second, "a delivery after the broker came back", func() bool {
		return s.Deliver(ctx, testEvent("d-4")) == nil
	})

	// A connection cut under an idle pooled channel.
	p.Cut()
	plugintest.Eventually(t, 10*time.Second, "a delivery after the connection was cut", func() bool {
		err := s.Deliver(ctx, testEvent("d-5"))
		if perm, _ := sinks.Classify(err); err != nil && perm {
			t.Fatalf("permanent after a cut: %v", err)
		}
		return err == nil
	})
	if n := a.Count(q); n < 3 {
		t.Errorf("%d messages, want at least d-1, d-4, d-5", n)
	}
	if c := strings.Count(logs.String(), "amqp sink cannot connect"); c < 1 {
		t.Errorf("no log line for the failed connection:\n%s", logs)
	}
	if strings.Contains(logs.String(), "guest:guest") {
		t.Errorf("log shows credentials:\n%s", logs)
	}
}

func TestTimeoutAndClose(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("to"), nil)
	s := newSink(t, toQueue(u, q), nil)
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), testEvent("t-1")); err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-expired.Done()
	err := s.Deliver(expired, testEvent("t-2"))
	if perm, _ := sinks.Classify(err); err == nil || perm || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired context: %v (permanent %v)", err, perm)
	}
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), testEvent("t-3")); err != nil {
		t.Errorf("after a timeout: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctxTimeout(t, 5*time.Second), testEvent("t-4")); err == nil {
		t.Error("Deliver after Close succeeded")
	}
}

// BenchmarkDeliver publishes with confirms from parallel callers, as the
// router's sink workers do.
func BenchmarkDeliver(b *testing.B) {
	u := amqptest.URL(b)
	a := amqptest.NewAdmin(b, u)
	q := a.Queue(amqptest.Unique("bench"), nil)
	s := newSink(b, toQueue(u, q), nil)
	e := testEvent("bench")
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Deliver(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.StopTimer()
	a.Ch.QueuePurge(q, false)
}
