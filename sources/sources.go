// Package sources holds what every source type shares: the Source and
// Ingester interfaces, the registry of source types, and helpers.
//
// A source type is a package of its own (sources/http, sources/webhook, ...)
// that calls Register in its init function; sources/all imports them all.
// A source hands events to the router through an Ingester and acknowledges
// them upstream only after Ingest returned nil: from then on they are in the
// journal.
package sources

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/registry"
)

// ErrUnavailable is returned by Ingest when the journal cannot take writes
// now. Nothing of the call was accepted; the producer should retry later
// (HTTP sources answer 503 with Retry-After).
var ErrUnavailable = errors.New("journal unavailable")

// ErrTooLarge is returned by Ingest when an event is larger than the journal
// accepts. Nothing of the call was accepted.
var ErrTooLarge = errors.New("event too large for the journal")

// Ingester takes events from one source into the router.
type Ingester interface {
	// Ingest routes events and journals every resulting delivery. It returns
	// nil only once all of them are durable; on error none of them is
	// (a batch is accepted or refused whole). Events that no route matches
	// are counted and dropped, and are not an error.
	Ingest(ctx context.Context, events []*event.Event) error
	// Rejected counts one request or message that the source refused before
	// ingest (malformed, unauthorised, too large ...). reason is a short
	// constant label such as "malformed" or "too_large".
	Rejected(reason string)
}

// Source is a running source of events that is not served on the shared
// HTTP ingress: it pulls from a broker until ctx ends.
type Source interface {
	// Run consumes until ctx ends, handing events to in. It returns nil when
	// ctx ended, or the error that stopped it.
	Run(ctx context.Context, in Ingester) error
}

// HTTPSource is a source served on the shared HTTP ingress listener
// (http.listen in the config) at its path.
type HTTPSource interface {
	// Path is the URL path the source answers on, e.g. "/events".
	Path() string
	// Handler returns the handler that serves the path, handing events to in.
	Handler(in Ingester) http.Handler
}

// HTTPConfig is implemented by the Config of a source type served on the
// shared HTTP ingress, so that two sources on one path are found when the
// config is checked, before anything is built.
type HTTPConfig interface {
	// HTTPPath is the URL path the source will answer on, "" when this
	// config serves none (an s3 source reading SQS).
	HTTPPath() string
}

// Readier is implemented by sources that are not ready at once (waiting for
// their broker). /readyz answers 503 while any source reports false.
type Readier interface {
	Ready() bool
}

// ReplicaConfig is implemented by the Config of a source type that behaves
// differently when several junction replicas share one journal (journal.url):
// ReplicaWarning returns what a user should know then (each replica receiving
// every message, say), or "" when this config is fine. The loader prints it as
// a warning at the source's position.
type ReplicaConfig interface {
	ReplicaWarning() string
}

// Config is a source type's decoded config. Factories return it with its
// defaults set; the loader decodes the YAML into it strictly, then calls
// Validate, and Build when the router starts.
type Config interface {
	// Validate checks the config without I/O. It may return
	// config.FieldError values to point at a key.
	Validate() error
	// Build makes the source, doing any I/O needed. The result is a Source
	// or an HTTPSource.
	Build(ctx context.Context, deps Deps) (any, error)
}

// Deps is what the router gives a source when building it.
type Deps struct {
	// Name is the source's name in the config.
	Name string
	// Logger is scoped to the source.
	Logger *slog.Logger
	// MaxBodySize is the HTTP ingress body limit (http.maxBodySize).
	MaxBodySize int64
}

// Factory returns a new Config of one source type with its defaults set.
type Factory func() Config

var types = registry.New[Factory]("source")

// Register makes a source type available under typ. It panics when typ is
// empty or already registered: both are programming errors found at init.
func Register(typ string, f Factory) {
	if f == nil {
		panic("sources: Register with a nil factory")
	}
	types.Register(typ, f)
}

// Lookup returns the factory of typ.
func Lookup(typ string) (Factory, bool) { return types.Lookup(typ) }

// Types lists the registered source types, sorted.
func Types() []string { return types.Types() }
