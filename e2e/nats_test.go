package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// natsPublish publishes a binary-mode CloudEvent and waits for its PubAck.
func natsPublish(t testing.TB, js jetstream.JetStream, subject, id, data string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Header.Set("ce-specversion", "1.0")
	m.Header.Set("ce-id", id)
	m.Header.Set("ce-source", "/nats")
	m.Header.Set("ce-type", "com.example.nats")
	m.Header.Set("ce-tenant", "acme")
	m.Header.Set("content-type", "application/json")
	m.Data = []byte(data)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

func natsSourceConfig(stream, hook string) string {
	return configHead + fmt.Sprintf(`sources:
  - {name: q, type: nats, url: %q, stream: %s, ackWait: 5s}
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`, natstest.URL(), stream, hook)
}

// TestNATSSourceToWebhook: CloudEvents published to a JetStream stream
// reach a webhook sink with their attributes; a plain message is wrapped.
func TestNATSSourceToWebhook(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.Stream(t, js, "E2E_", "e", jetstream.FileStorage)
	hook := newSink(t, ok)
	j := start(t, natsSourceConfig(stream, hook.url))
	for i := range 20 {
		natsPublish(t, js, prefix+".orders", fmt.Sprint("n-", i), fmt.Sprintf(`{"n":%d}`, i))
	}
	if _, err := js.Publish(context.Background(), prefix+".raw", []byte(`{"plain":true}`)); err != nil {
		t.Fatal(err)
	}
	plugintest.Eventually(t, 20*time.Second, "21 events at the webhook", func() bool { return hook.count() == 21 })
	var wrapped *event.Event
	for _, e := range hook.received() {
		if strings.HasPrefix(e.ID(), "n-") {
			if e.Source() != "/nats" || e.Type() != "com.example.nats" || e.Extensions()["tenant"] != "acme" || e.DataContentType() != "application/json" {
				t.Errorf("event %s lost attributes: %v", e.ID(), e)
			}
			continue
		}
		wrapped = &e
	}
	if wrapped == nil || wrapped.ID() != stream+":21" || wrapped.Source() != "nats://"+prefix+".raw" || wrapped.Type() != "io.nats.message" || string(wrapped.Data()) != `{"plain":true}` {
		t.Errorf("wrapped event %v", wrapped)
	}
	if got := j.metric("junction_events_received_total", `source="q"`); got != 21 {
		t.Errorf("received metric %v", got)
	}
}

// TestHTTPToNATSSink: events posted over HTTP and routed to nats sinks are
// stored in the stream, in binary and structured mode, attributes intact.
func TestHTTPToNATSSink(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.Stream(t, js, "E2E_", "e", jetstream.FileStorage)
	j := start(t, base+fmt.Sprintf(`
sinks:
  - {name: bin, type: nats, url: %[1]q, subject: '"%[2]s.bin." + tenant'}
  - {name: st, type: nats, url: %[1]q, subject: '"%[2]s.st"', format: structured}
routes:
  - {name: r, to: [bin, st]}
`, natstest.URL(), prefix))
	code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": "h-1", "ce-source": "/http", "ce-type": "com.example.http",
		"ce-subject": "order 42", "ce-tenant": "acme",
	}, `{"amount":120}`)
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	var bin, structured *jetstream.RawStreamMsg
	defer func() {
		if t.Failed() {
			info, err := st.Info(context.Background())
			t.Logf("stream %+v %v; metrics delivered %v retried %v dead %v", info.State, err,
				j.metric("junction_deliveries_total", `outcome="delivered"`), j.metric("junction_deliveries_total", `outcome="retried"`), j.metric("junction_deliveries_total", `outcome="dead_lettered"`))
		}
	}()
	plugintest.Eventually(t, 20*time.Second, "both messages in the stream", func() bool {
		bin, _ = st.GetLastMsgForSubject(context.Background(), prefix+".bin.acme")
		structured, _ = st.GetLastMsgForSubject(context.Background(), prefix+".st")
		return bin != nil && structured != nil
	})
	for k, v := range map[string]string{"ce-id": "h-1", "ce-source": "/http", "ce-type": "com.example.http", "ce-subject": "order 42", "ce-tenant": "acme", "content-type": "application/json"} {
		if got := bin.Header.Get(k); got != v {
			t.Errorf("binary header %s = %q, want %q", k, got, v)
		}
	}
	if string(bin.Data) != `{"amount":120}` {
		t.Errorf("binary payload %s", bin.Data)
	}
	var e event.Event
	if err := json.Unmarshal(structured.Data, &e); err != nil {
		t.Fatal(err)
	}
	if structured.Header.Get("content-type") != "application/cloudevents+json" || e.ID() != "h-1" || e.Subject() != "order 42" || e.Extensions()["tenant"] != "acme" || string(e.Data()) != `{"amount":120}` {
		t.Errorf("structured %v %v", structured.Header, e)
	}
	plugintest.Eventually(t, 10*time.Second, "delivered metric", func() bool {
		return j.metric("junction_deliveries_total", `outcome="delivered"`) == 2
	})
}

// TestNATSSourceKill9: junction is killed with SIGKILL while messages flow
// from the stream; after a restart every published message reaches the
// webhook (duplicates are counted, not failed on: at least once).
func TestNATSSourceKill9(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.Stream(t, js, "E2E_", "e", jetstream.FileStorage)
	hook := newSink(t, ok)
	j := start(t, natsSourceConfig(stream, hook.url))
	const total = 600
	var wg sync.WaitGroup
	published := make(chan int, total)
	wg.Go(func() {
		for i := range total {
			natsPublish(t, js, prefix+".k", fmt.Sprint("k-", i), `{}`)
			published <- i
			if i%50 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	plugintest.Eventually(t, 20*time.Second, "some deliveries", func() bool { return hook.count() >= 100 })
	j.kill()
	t.Logf("killed after %d deliveries, %d published", hook.count(), len(published))
	j.restart()
	wg.Wait()
	plugintest.Eventually(t, 60*time.Second, "every message at the webhook", func() bool { return hook.distinct() == total })
	t.Logf("%d messages, %d deliveries, %d duplicates", total, hook.count(), hook.duplicates())
}

// BenchmarkNATSToWebhook measures the whole path through the junction
// binary: b.N CloudEvents stored in a JetStream stream are consumed by the
// nats source, journaled, and delivered to a local webhook.
func BenchmarkNATSToWebhook(b *testing.B) {
	_, js := natstest.Connect(b)
	stream, prefix := natstest.Stream(b, js, "E2E_", "e", jetstream.FileStorage)
	data := []byte(`{"orderId":"o-1","amount":120,"note":"` + strings.Repeat("x", 950) + `"}`)
	for i := range b.N {
		m := nats.NewMsg(prefix + ".b")
		m.Header.Set("ce-specversion", "1.0")
		m.Header.Set("ce-id", fmt.Sprint(i))
		m.Header.Set("ce-source", "/bench")
		m.Header.Set("ce-type", "com.example.order.created")
		m.Header.Set("content-type", "application/json")
		m.Data = data
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	hook := newSink(b, ok)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	start(b, natsSourceConfig(stream, hook.url)+"\n")
	for hook.count() < b.N {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
