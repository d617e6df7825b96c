package sqssource

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// counter is an Ingester that only counts; done is closed once want were
// counted.
type counter struct {
	n    atomic.Int64
	want int64
	once sync.Once
	done chan struct{}
}

func (c *counter) Ingest(_ context.Context, events []*event.Event) error {
	if c.n.Add(int64(len(events))) >= c.want {
		c.once.Do(func() { close(c.done) })
	}
	return nil
}
func (c *counter) Rejected(string) {}

// fill sends n small JSON messages in batches of 10.
func fill(b *testing.B, c *sqs.Client, q string, n int) {
	b.Helper()
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id:                aws.String(strconv.Itoa(j - i)),
				MessageBody:       aws.String(fmt.Sprintf(`{"order":%d,"amount":150,"currency":"EUR"}`, j)),
				MessageAttributes: map[string]types.MessageAttributeValue{"tenant": str("acme")},
			})
		}
		if _, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q), Entries: entries}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSourceToIngest measures receive → convert → Ingest → delete
// against the real server: b.N messages are queued first (not timed), then
// the source consumes them in batches of 10 with 2 (the default) and 8
// pollers.
func BenchmarkSourceToIngest(b *testing.B) {
	for _, pollers := range []int{2, 8} {
		b.Run(fmt.Sprintf("pollers=%d", pollers), func(b *testing.B) { benchSource(b, pollers) })
	}
}

func benchSource(b *testing.B, pollers int) {
	c := broker(b)
	q, _ := queue(b, c, "bench", nil)
	fill(b, c, q, b.N)
	cfg := decoded(b, sqsConfig(q)+fmt.Sprintf("waitTime: 1s\npollers: %d\n", pollers))
	logs := &plugintest.LogBuffer{}
	s, err := New(context.Background(), cfg, sources.Deps{Logger: sourcetest.Logger(logs)})
	if err != nil {
		b.Fatal(err)
	}
	in := &counter{want: int64(b.N), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() { s.Run(ctx, in); close(done) }()
	select {
	case <-in.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d events after 5m", in.n.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if strings.Contains(logs.String(), "failed") {
		b.Logf("warnings while consuming:\n%.2000s", logs)
	}
}

// BenchmarkToEvent measures the conversion of one wrapped message.
func BenchmarkToEvent(b *testing.B) {
	s := testSource(nil)
	m := msg(`{"order":1,"amount":150,"currency":"EUR"}`, map[string]types.MessageAttributeValue{"tenant": str("acme"), "priority": num("3")})
	b.ReportAllocs()
	for b.Loop() {
		if _, bad := s.toEvent(m); bad != nil {
			b.Fatal(bad.reason)
		}
	}
}
