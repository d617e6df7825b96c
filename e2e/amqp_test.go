package e2e

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/internal/plugintest"
)

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
	return configHead + fmt.Sprintf(`sources:
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
	u := amqptest.URL(t)
	b := amqptest.NewAdmin(t, u)
	q := b.Queue(amqptest.Unique("e2e-src"), nil)
	hook := newSink(t, ok)
	j := start(t, amqpSourceConfig(u, q, hook.url, 64))

	bin := amqpBinary("a-bin")
	bin.Headers["cloudEvents:subject"] = "order-42"
	bin.Headers["cloudEvents:tenant"] = "acme"
	bin.Headers["cloudEvents:time"] = "2024-03-01T12:00:00.5Z"
	b.Publish(q, bin)
	b.Publish(q, amqp.Publishing{
		ContentType: "application/cloudevents+json",
		Body:        []byte(`{"specversion":"1.0","id":"a-str","source":"/s","type":"t","datacontenttype":"application/json","data":{"a":1}}`),
	})
	b.Publish(q, amqp.Publishing{MessageId: "a-plain", ContentType: "text/plain", Body: []byte("hello rabbit")})
	bad := amqpBinary("a-bad")
	delete(bad.Headers, "cloudEvents:type")
	b.Publish(q, bad)

	plugintest.Eventually(t, 15*time.Second, "3 events at the webhook", func() bool { return hook.count() == 3 })
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
	plugintest.Eventually(t, 5*time.Second, "the malformed message counted", func() bool {
		return j.metric("junction_events_rejected_total", `source="rabbit"`, `reason="malformed"`) == 1
	})
	if b.Count(q) != 0 {
		t.Errorf("%d messages left in the queue", b.Count(q))
	}
	if strings.Contains(j.stderr.String(), "guest:guest") {
		t.Error("the log shows the broker's credentials")
	}
}

// TestHTTPToAMQPSink: events posted over HTTP and routed to amqp sinks
// arrive in RabbitMQ with their attributes, in binary and structured mode.
func TestHTTPToAMQPSink(t *testing.T) {
	u := amqptest.URL(t)
	b := amqptest.NewAdmin(t, u)
	qb, qs := b.Queue(amqptest.Unique("e2e-bin"), nil), b.Queue(amqptest.Unique("e2e-str"), nil)
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
	plugintest.Eventually(t, 15*time.Second, "a message in each queue", func() bool { return b.Count(qb) == 1 && b.Count(qs) == 1 })
	d, _ := b.Get(qb)
	h := d.Headers
	if h["cloudEvents:id"] != "h-1" || h["cloudEvents:source"] != "/http" || h["cloudEvents:type"] != "com.example.order" ||
		h["cloudEvents:subject"] != "café" || h["cloudEvents:tenant"] != "acme" || h["cloudEvents:time"] != "2024-03-01T12:00:00.123Z" ||
		h["cloudEvents:specversion"] != "1.0" || d.ContentType != "application/json" || string(d.Body) != `{"amount":120}` ||
		d.MessageId != "h-1" || d.DeliveryMode != amqp.Persistent {
		t.Errorf("binary message: headers %v content-type %q body %s", h, d.ContentType, d.Body)
	}
	d, _ = b.Get(qs)
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
	u := amqptest.URL(t)
	b := amqptest.NewAdmin(t, u)
	q := b.Queue(amqptest.Unique("e2e-kill"), nil)
	hook := newSink(t, ok)
	j := start(t, amqpSourceConfig(u, q, hook.url, 32))
	const total = 2000
	var published atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pb := amqptest.NewAdmin(t, u)
		for i := range total {
			dc, err := pb.Ch.PublishWithDeferredConfirm("", q, true, false, amqpBinary(fmt.Sprint("k-", i)))
			if err != nil || !dc.Wait() {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			published.Add(1)
		}
	}()
	plugintest.Eventually(t, 20*time.Second, "some deliveries", func() bool { return hook.count() >= 200 })
	j.kill()
	t.Logf("killed after %d deliveries, %d published", hook.count(), published.Load())
	j.restart()
	wg.Wait()
	plugintest.Eventually(t, 60*time.Second, "every message at the webhook", func() bool { return hook.distinct() == total })
	t.Logf("%d messages, %d deliveries, %d duplicates", total, hook.count(), hook.duplicates())
	plugintest.Eventually(t, 10*time.Second, "the queue drained", func() bool { return b.Count(q) == 0 })
}

// TestAMQPSinkBrokerDownThenUp points an amqp sink at RabbitMQ through a
// loopback TCP proxy that forwards the real AMQP bytes. While the proxy is
// down the delivery is retried; once it is up the event arrives.
func TestAMQPSinkBrokerDownThenUp(t *testing.T) {
	u := amqptest.URL(t)
	b := amqptest.NewAdmin(t, u)
	q := b.Queue(amqptest.Unique("e2e-down"), nil)
	p := amqptest.NewProxy(t, u)
	p.Stop()
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
`, p.URL(u), q))
	if code := binaryEvent(t, j.ingest+"/events", "down-1", "t", `{}`); code != 202 {
		t.Fatalf("POST: %d", code)
	}
	plugintest.Eventually(t, 15*time.Second, "retries while the broker is unreachable", func() bool {
		return j.metric("junction_deliveries_total", `sink="rabbit"`, `outcome="retried"`) >= 2
	})
	if b.Count(q) != 0 {
		t.Fatal("a message arrived while the broker was unreachable")
	}
	p.Start()
	plugintest.Eventually(t, 20*time.Second, "the event in the queue", func() bool { return b.Count(q) == 1 })
	d, _ := b.Get(q)
	if d.Headers["cloudEvents:id"] != "down-1" {
		t.Errorf("message: %v", d.Headers)
	}
	plugintest.Eventually(t, 5*time.Second, "delivered counted", func() bool {
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
	u := amqptest.URL(b)
	br := amqptest.NewAdmin(b, u)
	q := br.Queue(amqptest.Unique("e2e-bench"), nil)
	msg := amqpBinary("x")
	msg.Body = []byte(`{"orderId":"o-1","amount":120,"currency":"EUR","customer":"c-42"}`)
	for i := range b.N {
		msg.Headers["cloudEvents:id"] = fmt.Sprint("b-", i)
		if err := br.Ch.Publish("", q, false, false, msg); err != nil {
			b.Fatal(err)
		}
	}
	plugintest.Eventually(b, 60*time.Second, "messages published", func() bool { return br.Count(q) == b.N })
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
