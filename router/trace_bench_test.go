package router

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// BenchmarkTrace measures one event through the router (10 routes, one
// matching; the journal on disk; a discarding sink of concurrency 32) with
// the event log on (the default) and off, in one run so that they compare.
func BenchmarkTrace(b *testing.B) {
	for _, trace := range []bool{false, true} {
		b.Run(fmt.Sprintf("trace=%v", trace), func(b *testing.B) {
			var y strings.Builder
			fmt.Fprintf(&y, "journal: {dir: %q, trace: %v}\nsinks:\n  - {name: out, type: test-discard, concurrency: 32}\nroutes:\n", b.TempDir(), trace)
			for i := 1; i < 10; i++ {
				fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"other.%d\"', to: [out]}\n", i, i)
			}
			y.WriteString("  - {name: hit, filter: 'type == \"bench\"', to: [out]}\n")
			in := benchRouter(b, y.String())
			payload := strings.Repeat("x", 1000)
			start := discarded.n.Load()
			var seq atomic.Int64
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprint("e", seq.Add(1))
					if err := in.Ingest(context.Background(), []*event.Event{newEvent(id, "bench", map[string]any{"payload": payload})}); err != nil {
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
			// CPU time per event: the cost, whatever else the machine runs.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
			b.ReportMetric(float64(in.(*ingester).r.journal.TraceDropped()), "trace-dropped")
		})
	}
}
