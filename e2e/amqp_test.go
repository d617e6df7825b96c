package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpURL returns the test RabbitMQ's URL (JUNCTION_TEST_AMQP_URL, default
// the local broker). When it cannot be reached the test is skipped, or
// fails when CI=true.
func amqpURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("JUNCTION_TEST_AMQP_URL")
	if u == "" {
		u = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ unreachable (CI=true): %v", err)
		}
		t.Skipf("RabbitMQ unreachable (set JUNCTION_TEST_AMQP_URL or start rabbitmq-server): %v", err)
	}
	conn.Close()
	return u
}

// amqpBroker is a test's own connection to RabbitMQ, with a confirm-mode
// channel.
type amqpBroker struct {
	t    testing.TB
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newAMQPBroker(t testing.TB, u string) *amqpBroker {
	t.Helper()
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &amqpBroker{t: t, conn: conn, ch: ch}
}

// queue declares a durable queue with a unique name, deleted when the test
// ends.
func (b *amqpBroker) queue(prefix string) string {
	b.t.Helper()
	var r [6]byte
	rand.Read(r[:])
	name := "e2e-" + prefix + "-" + hex.EncodeToString(r[:])
	if _, err := b.ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		if ch, err := b.conn.Channel(); err == nil {
			ch.QueueDelete(name, false, false, false)
			ch.Close()
		}
	})
	return name
}

// publish sends p to queue through the default exchange and waits for the
// broker's confirm.
func (b *amqpBroker) publish(queue string, p amqp.Publishing) {
	b.t.Helper()
	dc, err := b.ch.PublishWithDeferredConfirm("", queue, true, false, p)
	if err != nil {
		b.t.Fatal(err)
	}
	if !dc.Wait() {
		b.t.Fatal("publish nacked")
	}
}

func (b *amqpBroker) depth(queue string) int {
	b.t.Helper()
	q, err := b.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return q.Messages
}

func (b *amqpBroker) get(queue string) (amqp.Delivery, bool) {
	b.t.Helper()
	d, ok, err := b.ch.Get(queue, true)
	if err != nil {
		b.t.Fatal(err)
	}
	return d, ok
}

func amqpBinary(id string) amqp.Publishing {
	return amqp.Publishing{
		ContentType: "application/json",
		Headers: amqp.Table{
			"cloudEvents:specversion": "1.0",
			"cloudEvents:id":          id,
			"cloudEvents:source":      "/rabbit",
			"cloudEvents:type":        "com.example.rabbit",
		},
		Body: []byte(`{"id":"` + id + `"}`),
	}
}

// amqpSourceConfig is a junction config with one amqp source on queue,
// routed to a webhook sink at hook.
func amqpSourceConfig(u, queue, hook string, prefetch int) string {
	return fmt.Sprintf(`
http: {listen: "{{HTTP}}"}
admin: {listen: "{{ADMIN}}"}
journal: {dir: "{{DATA}}"}
sources:
  - name: rabbit
    type: amqp
    url: %q
    queue: %q
    prefetch: %d
    eventType: com.example.wrapped
sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 32}
routes:
  - name: r
    sources: [rabbit]
    to: [hook]
`, u, queue, prefetch, hook)
}

// TestAMQPSourceToWebhook: messages published to RabbitMQ in binary mode,
// structured mode and as plain messages reach a webhook with their
// attributes.
func TestAMQPSourceToWebhook(t *testing.T) {
	u := amqpURL(t)
	b := newAMQPBroker(t, u)
	q := b.queue("src")
	hook := newSink(t, ok)
	j := start(t, amqpSourceConfig(u, q, hook.url, 64))

	bin := amqpBinary("a-bin")
	bin.Headers["cloudEvents:subject"] = "order-42" // the test webhook does not percent-decode
	bin.Headers["cloudEvents:tenant"] = "acme"
	bin.Headers["cloudEvents:time"] = "2024-03-01T12:00:00.5Z"
	b.publish(q, bin)
	b.publish(q, amqp.Publishing{
		ContentType: "application/cloudevents+json",
		Body:        []byte(`{"specversion":"1.0","id":"a-str","source":"/s","type":"t","datacontenttype":"application/json","data":{"a":1}}`),
	})
	b.publish(q, amqp.Publishing{MessageId: "a-plain", ContentType: "text/plain", Body: []byte("hello rabbit")})
	bad := amqpBinary("a-bad")
	delete(bad.Headers, "cloudEvents:type")
	b.publish(q, bad)

	eventually(t, 15*time.Second, "3 events at the webhook", func() bool { return hook.count() == 3 })
	got := map[string]int{}
	for _, e := range hook.received() {
		got[e.ID()]++
		switch e.ID() {
		case "a-bin":
			if e.Subject() != "order-42" || e.Extensions()["tenant"] != "acme" || e.Time().Format(time.RFC3339Nano) != "2024-03-01T12:00:00.5Z" ||
				e.Source() != "/rabbit" || string(e.Data()) != `{"id":"a-bin"}` {
				t.Errorf("binary: %s", e)
			}
		case "a-str":
			if e.Type() != "t" || string(e.Data()) != `{"a":1}` {
				t.Errorf("structured: %s", e)
			}
		case "a-plain":
			if e.Type() != "com.example.wrapped" || e.Source() != "amqp://127.0.0.1:5672/"+q || e.DataContentType() != "text/plain" || string(e.Data()) != "hello rabbit" {
				t.Errorf("wrapped: %s", e)
			}
		}
	}
	if got["a-bin"] != 1 || got["a-str"] != 1 || got["a-plain"] != 1 {
		t.Errorf("received %v", got)
	}
	eventually(t, 5*time.Second, "the malformed message counted", func() bool {
		return j.metric("junction_events_rejected_total", `source="rabbit"`, `reason="malformed"`) == 1
	})
	if b.depth(q) != 0 {
		t.Errorf("%d messages left in the queue", b.depth(q))
	}
	if strings.Contains(j.stderr.String(), "guest:guest") {
		t.Error("the log shows the broker's credentials")
	}
}

// TestHTTPToAMQPSink: events posted over HTTP and routed to amqp sinks
// arrive in RabbitMQ with their attributes, in binary and structured mode.
func TestHTTPToAMQPSink(t *testing.T) {
	u := amqpURL(t)
	b := newAMQPBroker(t, u)
	qb, qs := b.queue("bin"), b.queue("str")
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: rbin, type: amqp, url: %q, routingKey: '%q'}
  - {name: rstr, type: amqp, url: %q, routingKey: '%q', format: structured}
routes:
  - name: r
    to: [rbin, rstr]
`, u, qb, u, qs))
	code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": "h-1", "ce-source": "/http", "ce-type": "com.example.order",
		"ce-subject": "caf%C3%A9", "ce-tenant": "acme", "ce-time": "2024-03-01T12:00:00.123Z",
	}, `{"amount":120}`)
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	eventually(t, 15*time.Second, "a message in each queue", func() bool { return b.depth(qb) == 1 && b.depth(qs) == 1 })
	d, _ := b.get(qb)
	h := d.Headers
	if h["cloudEvents:id"] != "h-1" || h["cloudEvents:source"] != "/http" || h["cloudEvents:type"] != "com.example.order" ||
		h["cloudEvents:subject"] != "café" || h["cloudEvents:tenant"] != "acme" || h["cloudEvents:time"] != "2024-03-01T12:00:00.123Z" ||
		h["cloudEvents:specversion"] != "1.0" || d.ContentType != "application/json" || string(d.Body) != `{"amount":120}` ||
		d.MessageId != "h-1" || d.DeliveryMode != amqp.Persistent {
		t.Errorf("binary message: headers %v content-type %q body %s", h, d.ContentType, d.Body)
	}
	d, _ = b.get(qs)
	if d.ContentType != "application/cloudevents+json; charset=utf-8" ||
		!strings.Contains(string(d.Body), `"id":"h-1"`) || !strings.Contains(string(d.Body), `"tenant":"acme"`) || !strings.Contains(string(d.Body), `"data":{"amount":120}`) {
		t.Errorf("structured message: %q %s", d.ContentType, d.Body)
	}
}

// TestAMQPSourceKill9 kills junction with SIGKILL while messages flow from
// RabbitMQ: after a restart every published message reaches the webhook.
// Messages that were in flight (unacknowledged) are delivered again by the
// broker, so duplicates are counted, not failed on.
func TestAMQPSourceKill9(t *testing.T) {
	u := amqpURL(t)
	b := newAMQPBroker(t, u)
	q := b.queue("kill")
	hook := newSink(t, ok)
	j := start(t, amqpSourceConfig(u, q, hook.url, 32))
	const total = 2000
	var published atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pb := newAMQPBroker(t, u)
		for i := range total {
			dc, err := pb.ch.PublishWithDeferredConfirm("", q, true, false, amqpBinary(fmt.Sprint("k-", i)))
			if err != nil || !dc.Wait() {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			published.Add(1)
		}
	}()
	eventually(t, 20*time.Second, "some deliveries", func() bool { return hook.count() >= 200 })
	j.kill()
	t.Logf("killed after %d deliveries, %d published", hook.count(), published.Load())
	j.restart()
	wg.Wait()
	unique := func() map[string]int {
		seen := map[string]int{}
		for _, e := range hook.received() {
			seen[e.ID()]++
		}
		return seen
	}
	eventually(t, 60*time.Second, "every message at the webhook", func() bool { return len(unique()) == total })
	dups := 0
	for _, n := range unique() {
		dups += n - 1
	}
	t.Logf("%d messages, %d deliveries, %d duplicates", total, hook.count(), dups)
	eventually(t, 10*time.Second, "the queue drained", func() bool { return b.depth(q) == 0 })
}

// TestAMQPSinkBrokerDownThenUp points an amqp sink at RabbitMQ through a
// loopback TCP proxy that forwards the real AMQP bytes. While the proxy is
// down the delivery is retried; once it is up the event arrives.
func TestAMQPSinkBrokerDownThenUp(t *testing.T) {
	u := amqpURL(t)
	b := newAMQPBroker(t, u)
	q := b.queue("down")
	p := newAMQPProxy(t, u)
	p.stop()
	j := start(t, base+fmt.Sprintf(`
sinks:
  - name: rabbit
    type: amqp
    url: %q
    routingKey: '%q'
    delivery: {retry: 100, backoffDelay: 100ms, maxDelay: 500ms}
routes:
  - name: r
    to: [rabbit]
`, p.url(u), q))
	if code := binaryEvent(t, j.ingest+"/events", "down-1", "t", `{}`); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	eventually(t, 15*time.Second, "retries while the broker is unreachable", func() bool {
		return j.metric("junction_deliveries_total", `sink="rabbit"`, `outcome="retried"`) >= 2
	})
	if b.depth(q) != 0 {
		t.Fatal("a message arrived while the broker was unreachable")
	}
	p.start()
	eventually(t, 20*time.Second, "the event in the queue", func() bool { return b.depth(q) == 1 })
	d, _ := b.get(q)
	if d.Headers["cloudEvents:id"] != "down-1" {
		t.Errorf("message: %v", d.Headers)
	}
	eventually(t, 5*time.Second, "delivered counted", func() bool {
		return j.metric("junction_deliveries_total", `sink="rabbit"`, `outcome="delivered"`) == 1
	})
	if strings.Contains(j.stderr.String(), "guest:guest") {
		t.Error("the log shows the broker's credentials")
	}
}

// BenchmarkAMQPToWebhook measures the whole path of the junction binary:
// b.N messages published to RabbitMQ beforehand are consumed, journaled,
// delivered to a webhook and acknowledged.
func BenchmarkAMQPToWebhook(b *testing.B) {
	u := amqpURL(b)
	br := newAMQPBroker(b, u)
	q := br.queue("bench")
	msg := amqpBinary("x")
	msg.Body = []byte(`{"orderId":"o-1","amount":120,"currency":"EUR","customer":"c-42"}`)
	for i := range b.N {
		msg.Headers["cloudEvents:id"] = fmt.Sprint("b-", i)
		if err := br.ch.Publish("", q, false, false, msg); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, 60*time.Second, "messages published", func() bool { return br.depth(q) == b.N })
	var delivered atomic.Int64
	done := make(chan struct{})
	hook := newSink(b, func(int, *event.Event) int {
		if delivered.Add(1) == int64(b.N) {
			close(done)
		}
		return 200
	})
	b.ReportAllocs()
	b.ResetTimer()
	startAt := time.Now()
	j := start(b, amqpSourceConfig(u, q, hook.url, 256))
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d delivered after 5m", delivered.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(startAt).Seconds(), "events/s")
	j.stop()
}

// amqpProxy is a loopback TCP proxy to the broker; stop makes the broker
// unreachable (listener and connections closed) until start.
type amqpProxy struct {
	t      testing.TB
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newAMQPProxy(t testing.TB, brokerURL string) *amqpProxy {
	t.Helper()
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &amqpProxy{t: t, target: net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)), addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *amqpProxy) url(brokerURL string) string {
	u, err := url.Parse(brokerURL)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.addr
	return u.String()
}

func (p *amqpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close(); c.Close() }()
			go func() { io.Copy(c, up); c.Close(); up.Close() }()
		}
	}()
}

func (p *amqpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *amqpProxy) start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}
