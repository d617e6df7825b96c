package natssink

import (
	"context"
	"fmt"
	"testing"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/sinks"
)

// TestDeliverTraceHeaders: the attempt's trace context goes in the
// traceparent and tracestate headers, beside the event's own
// ce-traceparent, in binary and structured mode.
func TestDeliverTraceHeaders(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	const attempt = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const own = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
	ctx := sinks.WithAttempt(context.Background(), &sinks.Attempt{Route: "r", Sink: "s", TraceParent: attempt, TraceState: "k=v"})
	for _, format := range []string{"binary", "structured"} {
		subject := prefix + "." + format
		s := build(t, fmt.Sprintf("url: %s\nsubject: '%q'\nformat: %s", natstest.URL(), subject, format))
		e := newEvent("t-" + format)
		e.SetExtension("traceparent", own)
		if err := s.Deliver(ctx, e); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		m := lastMsg(t, js, stream, subject)
		if m.Header.Get("traceparent") != attempt || m.Header.Get("tracestate") != "k=v" {
			t.Errorf("%s: traceparent %q, tracestate %q", format, m.Header.Get("traceparent"), m.Header.Get("tracestate"))
		}
		if format == "binary" && m.Header.Get("ce-traceparent") != own {
			t.Errorf("ce-traceparent %q, want the event's own", m.Header.Get("ce-traceparent"))
		}
	}
}
