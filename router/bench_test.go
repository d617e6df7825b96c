package router

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sinks"
)

// discard is a sink type that counts deliveries.
type discard struct{ n atomic.Int64 }

var discarded = &discard{}

func (*discard) Validate() error { return nil }
func (*discard) Build(context.Context, sinks.Deps) (sinks.Sink, error) {
	return discarded, nil
}
func (d *discard) Deliver(context.Context, *event.Event) error { d.n.Add(1); return nil }
func (*discard) Close() error                                  { return nil }

func init() {
	sinks.Register("test-discard", func() sinks.Config { return &discard{} })
}

// BenchmarkIngestDispatch measures one event through the router: routing
// among `routes` routes (one matches), the journal on disk, and dispatch to
// a sink that discards it.
func BenchmarkIngestDispatch(b *testing.B) {
	for _, routes := range []int{10, 10000} {
		b.Run(fmt.Sprintf("routes=%d", routes), func(b *testing.B) {
			var y strings.Builder
			fmt.Fprintf(&y, "journal: {dir: %q}\nsinks:\n  - {name: out, type: test-discard, concurrency: 32}\nroutes:\n", b.TempDir())
			for i := 1; i < routes; i++ {
				fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"other.%d\" && data.n > 0', to: [out]}\n", i, i)
			}
			y.WriteString("  - {name: hit, filter: 'type == \"bench\" && data.n > 0', to: [out]}\n")
			cfg, err := config.Parse("bench.yaml", []byte(y.String()), func(string) (string, bool) { return "", false })
			if err != nil {
				b.Fatal(err)
			}
			p, err := Compile(cfg)
			if err != nil {
				b.Fatal(err)
			}
			r := runRouter(b, p, Options{})
			eventually(b, 5*time.Second, "ready", r.Ready)
			in := r.Ingester("src")
			data := map[string]any{"n": 1, "payload": strings.Repeat("x", 1000)}
			start := discarded.n.Load()
			b.ReportAllocs()
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := in.Ingest(context.Background(), []*event.Event{newEvent("id", "bench", data)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			for discarded.n.Load()-start < int64(b.N) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
