package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/internal/text"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sources"
)

// ingester is one source's door into the router.
type ingester struct {
	r      *Router
	source string
	// routes are those that take events from source, in config order;
	// index finds the ones that may match an event.
	routes   []*Route
	index    *filters.Index
	received prometheus.Counter
	// appendFailed limits the log of refused appends (one line per
	// logEvery while the journal refuses every write).
	appendFailed logLimiter
	// dedup is set when the source has a dedup window (see dedup.go).
	dedup *deduper
}

var _ sources.Ingester = (*ingester)(nil)

// ingester returns the ingester of a source in the routing table running:
// built with the table for the sources of the plan (and the reply sinks),
// made on the spot for any other name.
func (r *Router) ingester(source string) *ingester {
	t := r.table.Load()
	if in, ok := t.ingesters[source]; ok {
		return in
	}
	if in, ok := t.others.Load(source); ok {
		return in.(*ingester)
	}
	in, _ := t.others.LoadOrStore(source, r.newIngester(t.plan, source))
	return in.(*ingester)
}

func (r *Router) newIngester(p *Plan, source string) *ingester {
	in := &ingester{r: r, source: source, received: r.metrics.Received.WithLabelValues(source)}
	in.routes, in.index = sourceRoutes(p, source)
	return in
}

// sourceRoutes returns the routes of plan that take events from source, in
// config order, and the index that finds those that may match an event:
// the routing of ingest and of TestEvent.
func sourceRoutes(plan *Plan, source string) ([]*Route, *filters.Index) {
	var routes []*Route
	var matchers []filters.Matcher
	for _, rt := range plan.Routes {
		if rt.Sources == nil || rt.Sources[source] {
			routes = append(routes, rt)
			matchers = append(matchers, rt.Match)
		}
	}
	return routes, filters.NewIndex(matchers)
}

// Ingester returns the Ingester of the named source, for sources started
// outside Run and for tests. It follows reloads: each call routes with the
// routing table of the moment (see door).
func (r *Router) Ingester(source string) sources.Ingester { return door{r: r, source: source} }

func (in *ingester) Rejected(reason string) {
	in.r.metrics.Rejected.WithLabelValues(in.source, reason).Inc()
}

// Ingest routes events and journals their deliveries; see sources.Ingester.
func (in *ingester) Ingest(ctx context.Context, events []*event.Event) (err error) {
	ctx, span := in.r.tracing.startIngest(ctx, in.source, events)
	defer func() { endSpan(span, err) }()
	if in.dedup != nil {
		return in.dedup.ingest(ctx, events, in.route)
	}
	return in.route(ctx, events)
}

// route routes events and journals their deliveries, and the events in
// the archive when it is on.
func (in *ingester) route(ctx context.Context, events []*event.Event) error {
	return in.routeEvents(ctx, events, nil)
}

// routeEvents is route; rp is set when the events are replayed (see
// replay.go): then only rp's routes take them, they are not archived again,
// and rp counts them.
func (in *ingester) routeEvents(ctx context.Context, events []*event.Event, rp *replaying) error {
	r := in.r
	var entries []journal.Entry
	unrouted := 0
	var buf [16]int
	archive := rp == nil && r.journal.Archiving()
	accepted := time.Now()
	var traced []journal.TraceRecord // the event log's records, written once the entries are stored
	tracing, now := rp == nil && r.journal.Tracing(), accepted
	for _, e := range events {
		env := filters.NewEnv(e)
		matched := false
		var plain []byte // e encoded, once for the routes that do not transform it
		// names are the routes e matched, for the event log.
		var names []string
		for _, i := range in.index.Candidates(env, buf[:0]) {
			rt := in.routes[i]
			if rp != nil && !rp.takes(rt.Name) {
				continue
			}
			v := rt.judge(env)
			if v.filterErr != nil {
				r.metrics.FilterErrors.WithLabelValues(rt.Name).Inc()
				r.log.Debug("filter failed", "route", rt.Name, "ce_id", e.ID(), "err", v.filterErr)
				continue
			}
			if !v.matched {
				continue
			}
			matched = true
			if tracing {
				names = append(names, rt.Name)
			}
			if v.failed != nil {
				if err := in.transformFailed(ctx, rt, e, v.what, v.failed); err != nil {
					return err
				}
				continue
			}
			var data []byte
			if v.out == nil {
				if plain == nil {
					var err error
					if plain, err = journal.EncodeEvent(nil, e); err != nil {
						return fmt.Errorf("encode event %s: %w", e.ID(), err)
					}
				}
				data = plain
			} else {
				if rp != nil {
					v.out.SetExtension(ExtReplay, rp.id)
				}
				var err error
				if data, err = journal.EncodeEvent(nil, v.out); err != nil {
					return fmt.Errorf("encode event %s: %w", e.ID(), err)
				}
			}
			tp, ts := r.tracing.routed(ctx, rt.Name, e)
			for _, sink := range rt.To {
				entries = append(entries, journal.Entry{Sink: sink, Route: rt.Name, Data: data,
					Key: v.pl.key, NotBefore: v.pl.notBefore, Priority: v.pl.priority, TraceParent: tp, TraceState: ts})
			}
		}
		if !matched {
			unrouted++
		}
		if tracing {
			traced = r.acceptedTrace(traced, in.source, e, names, now)
		}
		if archive {
			if plain == nil {
				var err error
				if plain, err = journal.EncodeEvent(nil, e); err != nil {
					return fmt.Errorf("encode event %s: %w", e.ID(), err)
				}
			}
			entries = append(entries, journal.ArchiveEntry(in.source, accepted, plain))
		}
	}
	if rp != nil {
		rp.routed, rp.unrouted = len(events)-unrouted, unrouted
	}
	start := time.Now()
	if err := r.journal.Append(ctx, entries); err != nil {
		if errors.Is(err, journal.ErrTooLarge) {
			return &ingestError{kind: sources.ErrTooLarge, err: err}
		}
		if ok, n := in.appendFailed.allow(time.Now()); ok {
			r.log.Warn("journal append failed", "source", in.source, "err", err, "failures", n, "per", logEvery)
		}
		return &ingestError{kind: sources.ErrUnavailable, err: err}
	}
	if len(entries) > 0 {
		r.metrics.AppendDuration.Observe(time.Since(start).Seconds())
	}
	if rp != nil {
		return nil
	}
	r.journal.Trace(traced...)
	in.received.Add(float64(len(events)))
	r.tail.publish(in.source, events)
	if unrouted > 0 {
		r.metrics.Unrouted.Add(float64(unrouted))
	}
	return nil
}

// verdict is what one route makes of one event: the same for ingest and
// for TestEvent.
type verdict struct {
	// matched is true when the route takes the event.
	matched bool
	// filterErr is the filter's error at run time: the route does not
	// take the event.
	filterErr error
	// failed is set when the route takes the event but a transform or an
	// orderBy, deliverAt or priority expression failed (what prefixes the
	// cause): the event is dead-lettered for the route.
	failed error
	what   string
	// pl places the route's deliveries in the journal.
	pl placing
	// out is the event the route's sinks receive when the route
	// transforms it; nil: the event itself.
	out *event.Event
}

// judge runs route rt's filter, delivery semantics (see place) and
// transform on the event of env.
func (rt *Route) judge(env *filters.Env) verdict {
	var v verdict
	if rt.Match != nil {
		ok, err := rt.Match.Match(env)
		if err != nil {
			v.filterErr = err
			return v
		}
		if !ok {
			return v
		}
	}
	v.matched = true
	if rt.OrderBy != nil || rt.Delay > 0 || rt.DeliverAt != nil || rt.Priority != nil {
		pl, err := rt.place(env, time.Now())
		if err != nil {
			v.failed = err // err names the key
			return v
		}
		v.pl = pl
	}
	if rt.Transform != nil {
		t, err := rt.Transform.Apply(env)
		if err != nil {
			v.failed, v.what = err, "transform: "
			return v
		}
		v.out = t
	}
	return v
}

// ingestError is a journal error that also matches the sources sentinel of
// its kind, without repeating its text.
type ingestError struct{ kind, err error }

func (e *ingestError) Error() string   { return e.err.Error() }
func (e *ingestError) Unwrap() []error { return []error{e.kind, e.err} }

// transformFailed handles a transform (or an orderBy, deliverAt or
// priority expression; what prefixes the cause) that failed at run time: for each
// sink of the route, the original event is kept in the dead-letter store
// and sent to the route's dead-letter sink, if any (or, with onExhausted:
// drop, logged, counted and dropped). It returns the journal's error when
// that failed, so that the request is refused and retried.
func (in *ingester) transformFailed(ctx context.Context, rt *Route, e *event.Event, what string, cause error) error {
	r := in.r
	r.metrics.TransformErrs.WithLabelValues(rt.Name).Inc()
	tp, ts := r.tracing.routed(ctx, rt.Name, e)
	for _, sink := range rt.To {
		pol := rt.Policy[sink]
		log := r.log.With("route", rt.Name, "sink", sink, "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
		if pol.OnExhausted == config.OnExhaustedDrop {
			log.Error(what+"failed; event dropped (onExhausted: drop)", "err", cause)
			r.metrics.Deliveries.WithLabelValues(rt.Name, sink, OutcomeDropped).Inc()
			r.traceGiveUp(e, rt.Name, sink, OutcomeDropped, what+cause.Error())
			continue
		}
		dl := deadLetterOf{event: e, route: rt.Name, sink: sink, dlSink: pol.DeadLetter, reason: journal.ReasonTransform,
			cause: what + cause.Error(), accepted: time.Now(), id: transformDeadLetterID(e, rt.Name, sink),
			traceParent: tp, traceState: ts}
		if err := r.deadLetter(ctx, dl); err != nil {
			if errors.Is(err, journal.ErrTooLarge) {
				return &ingestError{kind: sources.ErrTooLarge, err: err}
			}
			return &ingestError{kind: sources.ErrUnavailable, err: err}
		}
		log.Warn(what+"failed; dead-lettered", "dead_letter", pol.DeadLetter, "err", cause)
		r.metrics.Deliveries.WithLabelValues(rt.Name, sink, OutcomeDeadLettered).Inc()
		r.traceGiveUp(e, rt.Name, sink, OutcomeDeadLettered, what+cause.Error())
	}
	return nil
}

// transformDeadLetterID names the dead-lettering of event e for route and
// sink, so that a producer that sends e again after a refusal does not store
// it twice.
func transformDeadLetterID(e *event.Event, route, sink string) string {
	h := sha256.New()
	for _, s := range []string{e.Source(), e.ID(), route, sink} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "t." + hex.EncodeToString(h.Sum(nil)[:16])
}

// Extension attributes set on dead letters.
const (
	ExtRoute    = "junctionroute"
	ExtSink     = "junctionsink"
	ExtAttempts = "junctionattempts"
	ExtError    = "junctionerror"
	// ExtReplay is set on replayed events: the replay's id.
	ExtReplay = "junctionreplay"
)

// MaxErrorLen bounds the junctionerror extension.
const MaxErrorLen = 512

// deadLetterEntry is the journal entry that sends a copy of e, with the
// dead-letter extensions, to the dead-letter sink dlSink.
func deadLetterEntry(e *event.Event, route, sink, dlSink string, attempts int, cause string) (journal.Entry, error) {
	data, err := journal.EncodeEvent(nil, deadLetter(e, route, sink, attempts, cause))
	if err != nil {
		return journal.Entry{}, fmt.Errorf("encode event %s: %w", e.ID(), err)
	}
	return journal.Entry{Sink: dlSink, Route: route, DeadLetter: true, Data: data}, nil
}

// deadLetter returns a copy of e with the dead-letter extensions.
func deadLetter(e *event.Event, route, sink string, attempts int, cause string) *event.Event {
	dl := e.Clone()
	dl.SetExtension(ExtRoute, route)
	dl.SetExtension(ExtSink, sink)
	dl.SetExtension(ExtAttempts, int32(attempts))
	dl.SetExtension(ExtError, oneLine(cause, MaxErrorLen))
	return &dl
}

// oneLine makes s a single line of at most n bytes (see text.OneLine).
func oneLine(s string, n int) string { return text.OneLine(s, n) }
