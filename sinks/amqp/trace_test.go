package amqpsink

import (
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/sinks"
)

// TestDeliverTraceHeaders: the attempt's trace context goes in the
// traceparent and tracestate headers, beside the event's own
// cloudEvents:traceparent, in binary and structured mode.
func TestDeliverTraceHeaders(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	const attempt = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const own = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
	for _, format := range []string{FormatBinary, FormatStructured} {
		structured := format == FormatStructured
		q := a.Queue(amqptest.Unique("trace"), nil)
		s := newSink(t, toQueue(u, q)+"format: "+format+"\n", nil)
		e := testEvent("tr-1")
		e.SetExtension("ref", nil)
		e.SetExtension("traceparent", own)
		ctx := sinks.WithAttempt(ctxTimeout(t, 5*time.Second), &sinks.Attempt{Route: "r", Sink: "s", TraceParent: attempt, TraceState: "k=v"})
		if err := s.Deliver(ctx, e); err != nil {
			t.Fatal(err)
		}
		d, ok := a.Get(q)
		if !ok {
			t.Fatal("no message in the queue")
		}
		if d.Headers["traceparent"] != attempt || d.Headers["tracestate"] != "k=v" {
			t.Errorf("structured %v: headers %v", structured, d.Headers)
		}
		if !structured && d.Headers["cloudEvents:traceparent"] != own {
			t.Errorf("cloudEvents:traceparent %v, want the event's own", d.Headers["cloudEvents:traceparent"])
		}
	}
}
