package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/base64"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Attempt describes the delivery attempt a Deliver call makes, for sinks
// that pass it on (a trace context in a header, a signature's message id).
// The router sets it with WithAttempt; it is nil when a sink is called
// outside the router.
type Attempt struct {
	// Route and Sink name the delivery.
	Route, Sink string
	// TraceParent and TraceState are the W3C trace context of the attempt
	// (its span when tracing is on, else the context the event arrived
	// with); "" without one. Sinks send them as the transport's trace
	// headers (traceparent, tracestate).
	TraceParent, TraceState string
}

type attemptKey struct{}

// WithAttempt returns ctx carrying a.
func WithAttempt(ctx context.Context, a *Attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// AttemptOf returns the Attempt of ctx, or nil.
func AttemptOf(ctx context.Context) *Attempt {
	a, _ := ctx.Value(attemptKey{}).(*Attempt)
	return a
}

// TraceOf returns the trace context of the attempt of ctx, "" without one.
func TraceOf(ctx context.Context) (traceParent, traceState string) {
	if a := AttemptOf(ctx); a != nil {
		return a.TraceParent, a.TraceState
	}
	return "", ""
}

// ExtReplay marks an event routed again by a replay; its value, the replay
// id, makes a replayed delivery's id differ from the first one's.
const ExtReplay = "junctionreplay"

// DeliveryID is a stable id of the delivery of e by the attempt of ctx: the
// same on every attempt and after restarts, different for another event
// (source and id), route, sink or replay. It is "msg_" and 22 characters of
// base64url (128 bits of SHA-256), e.g. for Standard Webhooks' webhook-id.
// sink is used when ctx has no Attempt (a sink called outside the router).
func DeliveryID(ctx context.Context, sink string, e *event.Event) string {
	route := ""
	if a := AttemptOf(ctx); a != nil {
		route, sink = a.Route, a.Sink
	}
	h := sha256.New()
	var replay string
	if ec, ok := e.Context.(*event.EventContextV1); ok {
		replay, _ = ec.Extensions[ExtReplay].(string) // without Extensions' copy
	} else {
		replay, _ = e.Extensions()[ExtReplay].(string)
	}
	for _, s := range [...]string{e.Source(), e.ID(), route, sink, replay} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return "msg_" + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16])
}
