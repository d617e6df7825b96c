package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/sqstest"
)

// sqsClient connects to the test server, skipping when it is unreachable
// outside CI. It puts test credentials in the environment, which the
// junction processes of the test inherit.
func sqsClient(t testing.TB) *sqs.Client {
	t.Helper()
	c := sqstest.Client(t)
	t.Setenv("AWS_REGION", "us-east-1")
	return c
}

// sqsQueue creates a queue with a unique name and deletes it at the end.
func sqsQueue(t testing.TB, c *sqs.Client, name string) string {
	t.Helper()
	return sqstest.Queue(t, c, name, nil)
}

// sqsSend sends n messages "<prefix>-<i>" in batches of 10 and returns
// their message ids.
func sqsSend(t testing.TB, c *sqs.Client, q, prefix string, n int) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id:          aws.String(strconv.Itoa(j - i)),
				MessageBody: aws.String(fmt.Sprintf(`{"order":"%s-%d","amount":120}`, prefix, j)),
				MessageAttributes: map[string]types.MessageAttributeValue{
					"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")},
				},
			})
		}
		out, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("send: %v %v", err, out)
		}
		for _, ok := range out.Successful {
			ids[*ok.MessageId] = true
		}
	}
	return ids
}

// sqsSendBodies sends one message per body to q.
func sqsSendBodies(t testing.TB, c *sqs.Client, q string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
}

// sqsReceive reads n messages from q (deleting them), waiting up to 15s.
func sqsReceive(t testing.TB, c *sqs.Client, q string, n int) []types.Message {
	t.Helper()
	return sqstest.Receive(t, c, q, n, 15*time.Second)
}

// sqsSourceConfig is a config with an sqs source on q. Tests give a short
// visibilityTimeout in extra: fauxqs now and then cuts a receive short, and
// the messages of that receive only come back once it expires.
func sqsSourceConfig(q, hook string, extra string) string {
	return configHead + fmt.Sprintf(`sources:
  - name: orders
    type: sqs
    queueUrl: %q
    endpoint: %q
    waitTime: 1s
    eventType: com.example.order
%s
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: all, sources: [orders], to: [hook]}
`, q, sqstest.Endpoint(), extra, hook)
}

func TestSQSSourceToWebhook(t *testing.T) {
	c := sqsClient(t)
	q := sqsQueue(t, c, "e2e-src")
	ids := sqsSend(t, c, q, "o", 25)
	// One structured CloudEvent among the plain messages: taken as is.
	if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q),
		MessageBody: aws.String(`{"specversion":"1.0","id":"ce-1","source":"/shop","type":"com.example.order.paid","data":{"order":"o-x"}}`)}); err != nil {
		t.Fatal(err)
	}
	hook := newSink(t, ok)
	j := start(t, sqsSourceConfig(q, hook.url, "    visibilityTimeout: 3s"))
	plugintest.Eventually(t, 20*time.Second, "26 events at the webhook", func() bool { return hook.count() >= 26 })
	arn := ""
	for _, e := range hook.received() {
		if e.ID() == "ce-1" {
			if e.Type() != "com.example.order.paid" || e.Source() != "/shop" {
				t.Errorf("structured event changed: %s", e)
			}
			continue
		}
		if !ids[e.ID()] {
			t.Errorf("unexpected event %s", e.ID())
		}
		if arn == "" {
			arn = e.Source()
		}
		if !strings.HasPrefix(e.Source(), "arn:aws:sqs:") || e.Type() != "com.example.order" || e.DataContentType() != "application/json" ||
			e.Extensions()["tenant"] != "acme" || !strings.Contains(string(e.Data()), `"amount":120`) {
			t.Errorf("event: %s", e)
		}
	}
	plugintest.Eventually(t, 10*time.Second, "the received metric", func() bool { return j.metric("junction_events_received_total", `source="orders"`) == 26 })
	plugintest.Eventually(t, 10*time.Second, "the queue to be empty", func() bool { return sqstest.Depth(t, c, q) == 0 })
}

func TestHTTPToSQSSink(t *testing.T) {
	c := sqsClient(t)
	structured := sqsQueue(t, c, "e2e-structured")
	binary := sqsQueue(t, c, "e2e-binary")
	j := start(t, httpSource+fmt.Sprintf(`sinks:
  - {name: structured, type: sqs, queueUrl: %q, endpoint: %q}
  - {name: binary, type: sqs, queueUrl: %q, endpoint: %q, format: binary}
routes:
  - {name: all, sources: [events], to: [structured, binary]}
`, structured, sqstest.Endpoint(), binary, sqstest.Endpoint()))
	for i := range 5 {
		code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
			"ce-specversion": "1.0", "ce-id": fmt.Sprint("h-", i), "ce-source": "/shop", "ce-type": "com.example.order.created",
			"ce-subject": "order 42", "ce-tenant": "acme", "ce-time": "2024-05-06T07:08:09Z",
		}, fmt.Sprintf(`{"amount":%d}`, i))
		if code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", code, body)
		}
	}
	for _, m := range sqsReceive(t, c, structured, 5) {
		var e event.Event
		if err := json.Unmarshal([]byte(*m.Body), &e); err != nil {
			t.Fatalf("structured body: %v", err)
		}
		if !strings.HasPrefix(e.ID(), "h-") || e.Source() != "/shop" || e.Subject() != "order 42" || e.Extensions()["tenant"] != "acme" ||
			e.Time().UTC().Format(time.RFC3339) != "2024-05-06T07:08:09Z" || !strings.HasPrefix(string(e.Data()), `{"amount":`) {
			t.Errorf("structured: %s", e)
		}
	}
	got := sqsReceive(t, c, binary, 5)
	if len(got) != 5 {
		t.Fatalf("%d binary messages, want 5", len(got))
	}
	for _, m := range got {
		a := func(k string) string { return aws.ToString(m.MessageAttributes[k].StringValue) }
		if !strings.HasPrefix(a("ce-id"), "h-") || a("ce-specversion") != "1.0" || a("ce-source") != "/shop" || a("ce-type") != "com.example.order.created" ||
			a("ce-subject") != "order 42" || a("ce-tenant") != "acme" || a("ce-time") != "2024-05-06T07:08:09Z" || a("content-type") != "application/json" ||
			!strings.HasPrefix(*m.Body, `{"amount":`) {
			t.Errorf("binary message: %v %s", m.MessageAttributes, *m.Body)
		}
	}
	if n := j.metric("junction_deliveries_total", `outcome="delivered"`); n != 10 {
		t.Errorf("%v deliveries, want 10", n)
	}
}

func TestSQSSourceKill9(t *testing.T) {
	c := sqsClient(t)
	q := sqsQueue(t, c, "e2e-kill")
	const n = 600
	ids := sqsSend(t, c, q, "k", n)
	hook := newSink(t, ok)
	j := start(t, sqsSourceConfig(q, hook.url, "    visibilityTimeout: 2s\n    batchSize: 5"))
	plugintest.Eventually(t, 20*time.Second, "the first events", func() bool { return hook.count() >= 30 })
	j.kill()
	before := hook.count()
	j.restart()
	plugintest.Eventually(t, 60*time.Second, "every message at the webhook", func() bool { return hook.distinct() >= n })
	for _, e := range hook.received() {
		if !ids[e.ID()] {
			t.Errorf("unexpected event %s", e.ID())
		}
	}
	t.Logf("%d messages; %d delivered before the kill; %d duplicates", n, before, hook.duplicates())
	plugintest.Eventually(t, 10*time.Second, "the queue to be empty", func() bool { return sqstest.Depth(t, c, q) == 0 })
}

// newSQSProxy is a TCP proxy on loopback in front of the SQS server, not
// listening yet (connections refused) until Start.
func newSQSProxy(t testing.TB) *plugintest.Proxy {
	t.Helper()
	u, err := url.Parse(sqstest.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	p := plugintest.NewTCPProxy(t, u.Host)
	p.Stop()
	return p
}

// TestSQSSinkUnreachableThenBack: the sink's SQS endpoint refuses
// connections (a loopback proxy in front of the real server, not started
// yet); deliveries are retried, not dead-lettered, and arrive once the
// proxy starts.
func TestSQSSinkUnreachableThenBack(t *testing.T) {
	c := sqsClient(t)
	q := sqsQueue(t, c, "e2e-outage")
	p := newSQSProxy(t)
	dead := newSink(t, ok)
	j := start(t, httpSource+fmt.Sprintf(`sinks:
  - name: queue
    type: sqs
    queueUrl: %q
    endpoint: %q
    delivery: {retry: 50, backoffDelay: 100ms, maxDelay: 300ms, timeout: 2s, deadLetter: dead}
  - {name: dead, type: webhook, url: %q}
routes:
  - {name: all, sources: [events], to: [queue]}
`, q, p.URL(sqstest.Endpoint()), dead.url))
	for i := range 3 {
		if code := binaryEvent(t, j.ingest+"/events", fmt.Sprint("o-", i), "com.example.order.created", `{"amount":1}`); code != http.StatusAccepted {
			t.Fatalf("POST: %d", code)
		}
	}
	plugintest.Eventually(t, 10*time.Second, "retries while SQS is unreachable", func() bool {
		return j.metric("junction_deliveries_total", `sink="queue"`, `outcome="retried"`) >= 3
	})
	p.Start()
	got := sqsReceive(t, c, q, 3)
	if len(got) != 3 {
		t.Fatalf("%d messages on the queue after SQS came back, want 3", len(got))
	}
	if dead.count() != 0 {
		t.Errorf("%d events dead-lettered, want 0", dead.count())
	}
	plugintest.Eventually(t, 5*time.Second, "3 delivered", func() bool {
		return j.metric("junction_deliveries_total", `sink="queue"`, `outcome="delivered"`) == 3
	})
}

// BenchmarkSQSToWebhook measures the whole path through the junction
// binary: b.N messages queued in SQS (not timed) are received by the sqs
// source (8 pollers, batches of 10), journaled, and delivered to a local
// webhook.
func BenchmarkSQSToWebhook(b *testing.B) {
	c := sqsClient(b)
	q := sqsQueue(b, c, "e2e-bench")
	sqsSend(b, c, q, "b", b.N)
	hook := newSink(b, ok)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	j := start(b, sqsSourceConfig(q, hook.url, "    pollers: 8\n    visibilityTimeout: 3s"))
	for hook.count() < b.N {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	for _, line := range strings.Split(j.stderr.String(), "\n") {
		if strings.Contains(line, "failed") {
			b.Log(line)
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
