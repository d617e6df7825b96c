package amqpsource

import (
	"context"
	"fmt"
	"github.com/junctionhq/junction/internal/text"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

func binaryMsg(id string) amqp.Publishing {
	return amqp.Publishing{
		ContentType: "application/json",
		Headers: amqp.Table{
			"cloudEvents:specversion": "1.0",
			"cloudEvents:id":          id,
			"cloudEvents:source":      "/test",
			"cloudEvents:type":        "com.example.test",
		},
		Body: []byte(`{"id":"` + id + `"}`),
	}
}

// TestConsumeModes publishes one message of each kind to a real queue: every
// one is ingested with its attributes and acknowledged.
func TestConsumeModes(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("modes"), nil)
	a.Publish(q, amqp.Publishing{
		ContentType: "text/plain",
		Timestamp:   time.Unix(1700000000, 0),
		Headers: amqp.Table{
			"cloudEvents:specversion": "1.0",
			"cloudEvents:id":          "bin-1",
			"cloudEvents:source":      "/shop",
			"cloudEvents:type":        "order.created",
			"cloudEvents:time":        "2024-03-01T12:00:00.5Z",
			"cloudEvents:subject":     "order 42 ✓",
			"cloudEvents:tenant":      "acme",
			"cloudEvents:count":       int32(3),
		},
		Body: []byte("hello"),
	})
	a.Publish(q, amqp.Publishing{
		ContentType: "application/cloudevents+json",
		Body:        []byte(`{"specversion":"1.0","id":"str-1","source":"/s","type":"t","datacontenttype":"application/json","data":{"a":1}}`),
	})
	a.Publish(q, amqp.Publishing{MessageId: "plain-1", ContentType: "application/json", Body: []byte(`{"n":1}`)})

	in := &sourcetest.Recorder{}
	s := build(t, consume(u, q, 10)+"eventType: com.example.wrapped\n", nil)
	stop := run(t, s, in)
	plugintest.Eventually(t, 10*time.Second, "3 events", func() bool { return in.Count() == 3 })
	got := map[string]*event.Event{}
	for _, e := range in.Events() {
		got[e.ID()] = e
	}
	b := got["bin-1"]
	if b.Source() != "/shop" || b.Type() != "order.created" || b.Subject() != "order 42 ✓" || b.Time().Format(time.RFC3339Nano) != "2024-03-01T12:00:00.5Z" ||
		b.DataContentType() != "text/plain" || string(b.Data()) != "hello" || b.Extensions()["tenant"] != "acme" || b.Extensions()["count"] != int32(3) {
		t.Errorf("binary: %s", b)
	}
	if e := got["str-1"]; e.Type() != "t" || string(e.Data()) != `{"a":1}` {
		t.Errorf("structured: %s", e)
	}
	w := got["plain-1"]
	if w.Source() != "amqp://127.0.0.1:5672/"+q || w.Type() != "com.example.wrapped" || w.Subject() != q || string(w.Data()) != `{"n":1}` {
		t.Errorf("wrapped: %s", w)
	}
	stop()
	// Acknowledged: nothing goes back to the queue when the consumer stops.
	if n := a.Count(q); n != 0 {
		t.Errorf("%d messages left in the queue after ingest, want 0", n)
	}
}

// TestIngestFailureRequeues makes the first Ingest calls fail: the messages
// are not acknowledged, come back, and are ingested later.
func TestIngestFailureRequeues(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("requeue"), nil)
	for i := range 5 {
		a.Publish(q, binaryMsg(fmt.Sprint("r-", i)))
	}
	var failures atomic.Int32
	in := &sourcetest.Recorder{Fail: func(call int, _ []*event.Event) error {
		if call <= 3 {
			failures.Add(1)
			return fmt.Errorf("append: %w", sources.ErrUnavailable)
		}
		return nil
	}}
	logs := &plugintest.LogBuffer{}
	s := build(t, consume(u, q, 64), logs)
	stop := run(t, s, in)
	plugintest.Eventually(t, 15*time.Second, "every message after the failures", func() bool { return len(in.IDs()) == 5 })
	stop()
	if failures.Load() != 3 {
		t.Errorf("%d failed Ingest calls, want 3", failures.Load())
	}
	if n := a.Count(q); n != 0 {
		t.Errorf("%d messages left in the queue, want 0", n)
	}
	if c := strings.Count(logs.String(), "ingest failed; messages will be requeued"); c != 3 {
		t.Errorf("%d log lines about failed ingests, want 3:\n%s", c, logs)
	}
}

// TestMalformedDeadLettered declares a quorum queue with a dead-letter
// exchange through the source's declare key: a malformed CloudEvent is
// rejected to the dead-letter queue, counted and logged, and does not block
// the message behind it.
func TestMalformedDeadLettered(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	dlx := a.Exchange(amqptest.Unique("dlx"), "fanout")
	dlq := a.Queue(amqptest.Unique("dlq"), nil)
	if err := a.Ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	q := amqptest.Unique("quorum")
	t.Cleanup(func() { a.DeleteQueue(q) })
	in := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	s := build(t, consume(u, q, 8)+fmt.Sprintf(`declare:
  arguments:
    x-queue-type: quorum
    x-dead-letter-exchange: %s
`, dlx), logs)
	stop := run(t, s, in)
	// Wait for the source's consumer, not for the queue to exist: RabbitMQ
	// stores a quorum queue before it starts the queue's Raft server and
	// answers the source's queue.declare after, so a publish that follows
	// a passive declare can reach a queue with no server yet, and a
	// channel's first publish to a quorum queue that finds none is nacked.
	// The source consumes only once its declare was answered.
	plugintest.Eventually(t, 10*time.Second, "the source consuming the declared queue", func() bool {
		ch, err := a.Conn.Channel() // a failed passive declare closes its channel
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		return err == nil && st.Consumers == 1
	})
	bad := binaryMsg("bad-1")
	delete(bad.Headers, "cloudEvents:source")
	bad.MessageId = "msg-bad-1"
	bad.Body = []byte("SECRET-PAYLOAD")
	a.Publish(q, bad)
	a.Publish(q, binaryMsg("good-1"))
	plugintest.Eventually(t, 10*time.Second, "the good message", func() bool { return in.Count() == 1 })
	plugintest.Eventually(t, 10*time.Second, "the malformed message in the dead-letter queue", func() bool { return a.Count(dlq) == 1 })
	d, ok := a.Get(dlq)
	if !ok || d.MessageId != "msg-bad-1" || string(d.Body) != "SECRET-PAYLOAD" {
		t.Errorf("dead letter: %+v", d)
	}
	if _, _, rejected := in.Snapshot(); rejected["malformed"] != 1 {
		t.Errorf("rejected: %v", rejected)
	}
	stop()
	log := logs.String()
	if !strings.Contains(log, `message_id=msg-bad-1`) || !strings.Contains(log, `missing required attribute \"source\"`) {
		t.Errorf("log does not name the message and the reason:\n%s", log)
	}
	if strings.Contains(log, "SECRET-PAYLOAD") || strings.Contains(log, "guest:guest") {
		t.Errorf("log shows the payload or the credentials:\n%s", log)
	}
}

// TestTooLargeRejected: an event the journal refuses as too large is
// rejected (not requeued forever) and the others of its batch are ingested.
func TestTooLargeRejected(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("large"), nil)
	for _, id := range []string{"small-1", "huge", "small-2"} {
		a.Publish(q, binaryMsg(id))
	}
	in := &sourcetest.Recorder{Fail: func(_ int, events []*event.Event) error {
		for _, e := range events {
			if e.ID() == "huge" {
				return fmt.Errorf("append: %w", sources.ErrTooLarge)
			}
		}
		return nil
	}}
	s := build(t, consume(u, q, 64), nil)
	stop := run(t, s, in)
	plugintest.Eventually(t, 10*time.Second, "the small events and the rejection", func() bool {
		return in.Count() == 2 && in.Rejections("too_large") == 1
	})
	stop()
	if n := a.Count(q); n != 0 {
		t.Errorf("%d messages left, want 0", n)
	}
}

// TestReconnect cuts the TCP connection between the source and the broker
// (a loopback proxy forwarding the real AMQP bytes) while messages flow:
// the source reconnects and every message is ingested, unacknowledged ones
// again.
func TestReconnect(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("reconnect"), nil)
	p := amqptest.NewProxy(t, u)
	in := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	s := build(t, consume(p.URL(u), q, 16), logs)
	stop := run(t, s, in)
	const n = 300
	for i := range n {
		a.Publish(q, binaryMsg(fmt.Sprint("c-", i)))
		switch i {
		case 100:
			p.Cut() // the broker closes the connection
		case 200:
			p.Stop() // the broker is gone until the source has seen it
			plugintest.Eventually(t, 10*time.Second, "the source to see the broker go", func() bool {
				return strings.Count(logs.String(), "amqp source disconnected; reconnecting") >= 2
			})
			p.Start()
		}
	}
	plugintest.Eventually(t, 30*time.Second, "every message", func() bool { return len(in.IDs()) == n })
	stop()
	if a.Count(q) != 0 {
		t.Errorf("%d messages left", a.Count(q))
	}
	log := logs.String()
	if c := strings.Count(log, "amqp source disconnected; reconnecting"); c < 2 {
		t.Errorf("%d reconnect log lines, want at least 2:\n%s", c, log)
	}
	if strings.Contains(log, "guest:guest") {
		t.Errorf("log shows the credentials:\n%s", log)
	}
	t.Logf("%d ingests for %d messages (duplicates after the cuts: %d)", in.Count(), n, in.Count()-n)
}

// TestBrokerClosesConnection has the broker close the source's connection
// with connection.close 320 CONNECTION_FORCED, what a broker restart or an
// operator sends, through rabbitmqctl close_connection (only this test's own
// connection, found by its connection name). It needs rabbitmqctl with
// access to the node: skipped otherwise (TestReconnect covers a dropped TCP
// connection everywhere).
func TestBrokerClosesConnection(t *testing.T) {
	u := amqptest.URL(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Skip("rabbitmqctl not installed")
	}
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("forced"), nil)
	name := amqptest.Unique("src")
	in := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	built, err := decoded(t, consume(u, q, 4)).Build(context.Background(), sourcesDeps(name, logs))
	if err != nil {
		t.Fatal(err)
	}
	run(t, built.(*Source), in)
	a.Publish(q, binaryMsg("f-1"))
	plugintest.Eventually(t, 10*time.Second, "the first message", func() bool { return in.Count() == 1 })
	out, err := exec.Command("rabbitmqctl", "list_connections", "-q", "--no-table-headers", "pid", "client_properties").CombinedOutput()
	if err != nil {
		t.Skipf("rabbitmqctl cannot reach the node: %v: %s", err, text.OneLine(string(out), 200))
	}
	var pid string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `"junction source `+name+`"`) {
			pid = strings.Fields(line)[0]
		}
	}
	if pid == "" {
		t.Fatalf("the source's connection is not listed:\n%s", out)
	}
	if out, err := exec.Command("rabbitmqctl", "close_connection", pid, "junction test: forced close").CombinedOutput(); err != nil {
		t.Fatalf("close_connection: %v: %s", err, out)
	}
	plugintest.Eventually(t, 10*time.Second, "the reconnect", func() bool {
		return strings.Contains(logs.String(), "CONNECTION_FORCED") && strings.Contains(logs.String(), "junction test: forced close")
	})
	a.Publish(q, binaryMsg("f-2"))
	plugintest.Eventually(t, 15*time.Second, "the message after the reconnect", func() bool { return in.IDs()["f-2"] == 1 })
}

// TestBrokerUnreachable: Run keeps retrying with one log line per attempt,
// and returns nil when its context ends.
func TestBrokerUnreachable(t *testing.T) {
	u := amqptest.URL(t)
	p := amqptest.NewProxy(t, u)
	p.Stop()
	logs := &plugintest.LogBuffer{}
	s := build(t, consume(p.URL(u), "q", 1), logs)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Run(ctx, &sourcetest.Recorder{}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if time.Since(start) > 10*time.Second { // a hang, not a speed check
		t.Errorf("Run took %v to return after its context ended", time.Since(start))
	}
	c := strings.Count(logs.String(), "amqp source disconnected; reconnecting")
	// 200ms, 400ms, 800ms steps (jittered by half) fit 2 to 5 attempts.
	if c < 2 || c > 6 {
		t.Errorf("%d log lines in 1.5s, want a few (backoff):\n%s", c, logs)
	}
	if !strings.Contains(logs.String(), "connection refused") || strings.Contains(logs.String(), "guest:guest") {
		t.Errorf("log:\n%s", logs)
	}
}

// TestMissingQueueRecovers: consuming a queue that does not exist is
// retried; once the queue is created, messages flow.
func TestMissingQueueRecovers(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := amqptest.Unique("late")
	in := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	s := build(t, consume(u, q, 4), logs)
	run(t, s, in)
	plugintest.Eventually(t, 5*time.Second, "a failed attempt", func() bool { return strings.Contains(logs.String(), "NOT_FOUND") })
	a.Queue(q, nil)
	a.Publish(q, binaryMsg("late-1"))
	plugintest.Eventually(t, 15*time.Second, "the message", func() bool { return in.Count() == 1 })
}

// BenchmarkSourceToIngest measures the source → Ingest path against the real
// broker: b.N messages are published first, then consumed, ingested (by a
// recorder that does no I/O) and acknowledged.
func BenchmarkSourceToIngest(b *testing.B) {
	u := amqptest.URL(b)
	a := amqptest.NewAdmin(b, u)
	q := a.Queue(amqptest.Unique("bench"), nil)
	msg := binaryMsg("x")
	msg.Body = []byte(`{"orderId":"o-1","amount":120,"currency":"EUR","customer":"c-42"}`)
	for i := range b.N {
		msg.Headers["cloudEvents:id"] = fmt.Sprint("b-", i)
		if err := a.Ch.Publish("", q, false, false, msg); err != nil {
			b.Fatal(err)
		}
	}
	plugintest.Eventually(b, 60*time.Second, "messages published", func() bool { return a.Count(q) == b.N })
	var got atomic.Int64
	done := make(chan struct{})
	in := &countIngester{n: &got, want: int64(b.N), done: done}
	s := build(b, consume(u, q, 256), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go s.Run(ctx, in)
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events after 5m", got.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

type countIngester struct {
	n    *atomic.Int64
	want int64
	done chan struct{}
}

func (c *countIngester) Ingest(_ context.Context, events []*event.Event) error {
	if c.n.Add(int64(len(events))) == c.want {
		close(c.done)
	}
	return nil
}

func (c *countIngester) Rejected(string) {}
