package router

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/otlptest"
	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
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

// benchRouter runs the config yml for a benchmark and returns, once the
// router is ready, the ingester of source src.
func benchRouter(b *testing.B, yml string) sources.Ingester {
	b.Helper()
	return benchRouterOf(b, yml).Ingester("src")
}

// benchRouterOf runs the config yml for a benchmark and returns the router
// once it is ready.
func benchRouterOf(b *testing.B, yml string) *Router {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r := runRouter(b, p, Options{})
	eventually(b, 5*time.Second, "ready", r.Ready)
	return r
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
			in := benchRouter(b, y.String())
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

// BenchmarkDeliverySemantics measures one event through the router (10
// routes, journal on disk, a discarding sink of concurrency 32) per
// delivery semantics, in one run so that they compare: unordered, ordered
// by a key among 1,000 (orderBy: subject), and unordered with 100,000
// deliveries delayed by an hour waiting in the journal.
func BenchmarkDeliverySemantics(b *testing.B) {
	for _, mode := range []string{"unordered", "keys=1000", "delayed=100000"} {
		b.Run(mode, func(b *testing.B) {
			var y strings.Builder
			fmt.Fprintf(&y, "journal: {dir: %q}\nsinks:\n  - {name: out, type: test-discard, concurrency: 32}\nroutes:\n", b.TempDir())
			for i := 1; i < 10; i++ {
				fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"other.%d\"', to: [out]}\n", i, i)
			}
			y.WriteString("  - {name: hit, filter: 'type == \"bench\"', to: [out]")
			if mode == "keys=1000" {
				y.WriteString(", orderBy: subject")
			}
			y.WriteString("}\n  - {name: later, filter: 'type == \"later\"', to: [out], delay: 1h}\n")
			in := benchRouter(b, y.String())
			if mode == "delayed=100000" {
				batch := make([]*event.Event, 0, 1000)
				for i := range 100000 {
					batch = append(batch, newEvent(fmt.Sprint("d", i), "later", map[string]any{}))
					if len(batch) == cap(batch) {
						if err := in.Ingest(context.Background(), batch); err != nil {
							b.Fatal(err)
						}
						batch = batch[:0]
					}
				}
			}
			payload := strings.Repeat("x", 1000)
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprint("k", i)
			}
			var seq atomic.Int64
			start := discarded.n.Load()
			b.ReportAllocs()
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := newEvent("id", "bench", map[string]any{"payload": payload})
					// The key is an attribute, as cheap to read as the
					// type: the benchmark compares ordering, not
					// reading JSON data.
					e.SetSubject(keys[seq.Add(1)%1000])
					if err := in.Ingest(context.Background(), []*event.Event{e}); err != nil {
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

// benchTenRoutes measures events through a router with 10 routes (one
// matching, type "bench"), the journal on disk and a discarding sink of
// concurrency 32, ingested one per call from 8 goroutines per CPU: head is
// the config's first lines (journal, telemetry: the keys a benchmark
// compares, "journal:" included), next makes the i-th event. It reports
// events/s and the process's CPU time per event (cpu-ns/op), which other
// processes on the machine disturb less than the wall clock, and returns
// the router.
func benchTenRoutes(b *testing.B, head string, next func(i int64) *event.Event) *Router {
	var y strings.Builder
	fmt.Fprintf(&y, "%s\nsinks:\n  - {name: out, type: test-discard, concurrency: 32}\nroutes:\n", strings.TrimRight(head, "\n"))
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"other.%d\"', to: [out]}\n", i, i)
	}
	y.WriteString("  - {name: hit, filter: 'type == \"bench\"', to: [out]}\n")
	r := benchRouterOf(b, y.String())
	in := r.Ingester("src")
	start := discarded.n.Load()
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := in.Ingest(context.Background(), []*event.Event{next(seq.Add(1))}); err != nil {
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
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	return r
}

// BenchmarkTracing compares tracing off, on (every span exported over
// OTLP/HTTP to a collector on loopback that reads and discards the
// exports, so that its decoding is not counted), and on with sampleRatio 0
// (spans made but not recorded, the trace context still stored and passed
// on), in one run (see benchTenRoutes). Each event comes with a
// traceparent, as from an instrumented producer.
func BenchmarkTracing(b *testing.B) {
	for _, mode := range []string{"off", "on", "unsampled"} {
		b.Run(mode, func(b *testing.B) {
			head := fmt.Sprintf("journal: {dir: %q}\n", b.TempDir())
			switch mode {
			case "on":
				head += fmt.Sprintf("telemetry:\n  otlp: {endpoint: %q}\n", otlptest.StartDiscarding(b).URL())
			case "unsampled":
				head += fmt.Sprintf("telemetry:\n  otlp: {endpoint: %q, sampleRatio: 0}\n", otlptest.StartDiscarding(b).URL())
			}
			payload := map[string]any{"payload": strings.Repeat("x", 1000)}
			// Unsampled at the producer: "unsampled" decides by its
			// ratio, "on" records (ratio 1 for new traces).
			tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
			if mode == "on" {
				tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			}
			benchTenRoutes(b, head, func(int64) *event.Event {
				e := newEvent("id", "bench", payload)
				e.SetExtension("traceparent", tp)
				return e
			})
		})
	}
}

// BenchmarkArchive compares the archive off and on (every accepted event
// also stored in the archive, in the same append), in one run (see
// benchTenRoutes).
func BenchmarkArchive(b *testing.B) {
	for _, archive := range []string{"off", "on"} {
		b.Run("archive="+archive, func(b *testing.B) {
			head := fmt.Sprintf("journal:\n  dir: %q\n", b.TempDir())
			if archive == "on" {
				head += "  archive: {maxAge: 1h}\n"
			}
			data := map[string]any{"n": 1, "payload": strings.Repeat("x", 1000)}
			benchTenRoutes(b, head, func(int64) *event.Event { return newEvent("id", "bench", data) })
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
