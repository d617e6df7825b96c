// Package sinks holds what every sink type shares: the Sink interface, the
// registry of sink types, and the classification of delivery failures.
//
// A sink type is a package of its own (sinks/webhook, sinks/log, ...) that
// calls Register in its init function; sinks/all imports them all.
package sinks

import (
	"context"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/registry"
)

// Sink delivers events to one destination.
type Sink interface {
	// Deliver sends one event and returns nil once the destination has
	// accepted it. A failure is retryable unless wrapped with Permanent; a
	// retryable failure may carry the destination's requested delay (see
	// Retryable). ctx carries the attempt's timeout.
	Deliver(ctx context.Context, e *event.Event) error
	// Close releases the sink's resources. No Deliver call is running or
	// will run when Close is called.
	Close() error
}

// Config is a sink type's decoded config. Factories return it with its
// defaults set; the loader decodes the YAML into it strictly, then calls
// Validate, and Build when the router starts.
type Config interface {
	// Validate checks the config without I/O. It may return
	// config.FieldError values to point at a key.
	Validate() error
	// Build makes the sink, doing any I/O needed.
	Build(ctx context.Context, deps Deps) (Sink, error)
}

// Deps is what the router gives a sink when building it.
type Deps struct {
	// Name is the sink's name in the config.
	Name string
	// Logger is scoped to the sink.
	Logger *slog.Logger
}

// Factory returns a new Config of one sink type with its defaults set.
type Factory func() Config

var types = registry.New[Factory]("sink")

// Register makes a sink type available under typ. It panics when typ is
// empty or already registered: both are programming errors found at init.
func Register(typ string, f Factory) {
	if f == nil {
		panic("sinks: Register with a nil factory")
	}
	types.Register(typ, f)
}

// Lookup returns the factory of typ.
func Lookup(typ string) (Factory, bool) { return types.Lookup(typ) }

// Types lists the registered sink types, sorted.
func Types() []string { return types.Types() }

// ReplySink is a Sink whose destination may answer with an event: an HTTP
// function or a Lambda function. The router feeds a reply back into routing
// as an event from a source named after the sink, so routes can chain
// functions; it counts hops in the junctionhops extension and stops at the
// sink's maxHops.
type ReplySink interface {
	Sink
	// DeliverReply is Deliver that also returns the destination's reply, or
	// nil when it answered without an event. Failures are classified as for
	// Deliver.
	DeliverReply(ctx context.Context, e *event.Event) (*event.Event, error)
}

type timeoutKey struct{}

// WithAttemptTimeout returns ctx with a deadline d from now for one
// delivery attempt, and records d so that a sink's timeout error names the
// configured timeout rather than what was left of it when the sink began.
func WithAttemptTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d)
	return context.WithValue(ctx, timeoutKey{}, d), cancel
}

// AttemptTimeout is the attempt timeout recorded by WithAttemptTimeout, or
// else what ctx's deadline left after start, rounded for error texts (0
// without a deadline).
func AttemptTimeout(ctx context.Context, start time.Time) time.Duration {
	if d, ok := ctx.Value(timeoutKey{}).(time.Duration); ok {
		return d
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	switch d := max(dl.Sub(start), 0); {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	default:
		return d
	}
}
