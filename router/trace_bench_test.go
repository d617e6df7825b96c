package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// BenchmarkTrace compares the event log on (the default) and off, in one
// run (see benchTenRoutes), with a distinct id per event as in production.
func BenchmarkTrace(b *testing.B) {
	for _, trace := range []bool{false, true} {
		b.Run(fmt.Sprintf("trace=%v", trace), func(b *testing.B) {
			payload := map[string]any{"payload": strings.Repeat("x", 1000)}
			r := benchTenRoutes(b, fmt.Sprintf("journal: {dir: %q, trace: %v}\n", b.TempDir(), trace), func(i int64) *event.Event {
				return newEvent(fmt.Sprint("e", i), "bench", payload)
			})
			b.ReportMetric(float64(r.journal.TraceDropped()), "trace-dropped")
		})
	}
}
