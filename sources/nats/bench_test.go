package natssource

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
)

// countIngester counts events and accepts them; done is closed once want
// were counted.
type countIngester struct {
	n    atomic.Int64
	want int64
	once sync.Once
	done chan struct{}
}

func (c *countIngester) Ingest(_ context.Context, events []*event.Event) error {
	if c.n.Add(int64(len(events))) >= c.want {
		c.once.Do(func() { close(c.done) })
	}
	return nil
}
func (c *countIngester) Rejected(string) {}

// BenchmarkJetStreamIngest measures the source's JetStream → Ingest path
// against the real broker: b.N binary-mode CloudEvents of about 1 KiB are
// stored first, then consumed, decoded, ingested (into a counter) and
// acknowledged.
func BenchmarkJetStreamIngest(b *testing.B) {
	_, js := natstest.Connect(b)
	stream, prefix := natstest.NewStream(b, js)
	data := []byte(`{"orderId":"o-1","amount":120,"note":"` + strings.Repeat("x", 950) + `"}`)
	var futures []jetstream.PubAckFuture
	for i := range b.N {
		m := nats.NewMsg(prefix + ".orders")
		m.Header.Set("ce-specversion", "1.0")
		m.Header.Set("ce-id", fmt.Sprint(i))
		m.Header.Set("ce-source", "/bench")
		m.Header.Set("ce-type", "com.example.order.created")
		m.Header.Set("content-type", "application/json")
		m.Data = data
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publish timed out")
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	in := &countIngester{want: int64(b.N), done: make(chan struct{})}
	c := decoded(b, jsConfig(natstest.URL(), stream))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	run(b, c, in)
	select {
	case <-in.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events after 5m", in.n.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkDecode measures reading one binary-mode message into an event.
func BenchmarkDecode(b *testing.B) {
	h := hdr("ce-specversion", "1.0", "ce-id", "42", "ce-source", "/shop", "ce-type", "com.example.order.created", "content-type", "application/json", "ce-tenant", "acme")
	data := []byte(`{"orderId":"o-1","amount":120}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(h, data, testWrap); err != nil {
			b.Fatal(err)
		}
	}
}
