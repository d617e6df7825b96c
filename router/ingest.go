package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
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
	var matchers []filters.Matcher
	for _, rt := range p.Routes {
		if rt.Sources == nil || rt.Sources[source] {
			in.routes = append(in.routes, rt)
			matchers = append(matchers, rt.Match)
		}
	}
	in.index = filters.NewIndex(matchers)
	return in
}

// Ingester returns the Ingester of the named source, for sources started
// outside Run and for tests. It follows reloads: each call routes with the
// routing table of the moment (see door).
func (r *Router) Ingester(source string) sources.Ingester { return door{r: r, source: source} }

func (in *ingester) Rejected(reason string) {
	in.r.metrics.Rejected.WithLabelValues(in.source, reason).Inc()
}

// Ingest routes events and journals their deliveries; see sources.Ingester.
func (in *ingester) Ingest(ctx context.Context, events []*event.Event) error {
	if in.dedup != nil {
		return in.dedup.ingest(ctx, events, in.route)
	}
	return in.route(ctx, events)
}

// route routes events and journals their deliveries.
func (in *ingester) route(ctx context.Context, events []*event.Event) error {
	r := in.r
	var entries []journal.Entry
	unrouted := 0
	var buf [16]int
	for _, e := range events {
		env := filters.NewEnv(e)
		matched := false
		var plain []byte // e encoded, once for the routes that do not transform it
		for _, i := range in.index.Candidates(env, buf[:0]) {
			rt := in.routes[i]
			if rt.Match != nil {
				ok, err := rt.Match.Match(env)
				if err != nil {
					r.metrics.FilterErrors.WithLabelValues(rt.Name).Inc()
					r.log.Debug("filter failed", "route", rt.Name, "ce_id", e.ID(), "err", err)
					continue
				}
				if !ok {
					continue
				}
			}
			matched = true
			var pl placing
			if rt.OrderBy != nil || rt.Delay > 0 || rt.DeliverAt != nil || rt.Priority != nil {
				var err error
				if pl, err = rt.place(env, time.Now()); err != nil {
					if err := in.transformFailed(ctx, rt, e, "", err); err != nil { // err names the key
						return err
					}
					continue
				}
			}
			var data []byte
			if rt.Transform == nil {
				if plain == nil {
					var err error
					if plain, err = journal.EncodeEvent(nil, e); err != nil {
						return fmt.Errorf("encode event %s: %w", e.ID(), err)
					}
				}
				data = plain
			} else {
				t, err := rt.Transform.Apply(env)
				if err != nil {
					if err := in.transformFailed(ctx, rt, e, "transform: ", err); err != nil {
						return err
					}
					continue
				}
				if data, err = journal.EncodeEvent(nil, t); err != nil {
					return fmt.Errorf("encode event %s: %w", e.ID(), err)
				}
			}
			for _, sink := range rt.To {
				entries = append(entries, journal.Entry{Sink: sink, Route: rt.Name, Data: data,
					Key: pl.key, NotBefore: pl.notBefore, Priority: pl.priority})
			}
		}
		if !matched {
			unrouted++
		}
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
	in.received.Add(float64(len(events)))
	if unrouted > 0 {
		r.metrics.Unrouted.Add(float64(unrouted))
	}
	return nil
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
	for _, sink := range rt.To {
		pol := rt.Policy[sink]
		log := r.log.With("route", rt.Name, "sink", sink, "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
		if pol.OnExhausted == config.OnExhaustedDrop {
			log.Error(what+"failed; event dropped (onExhausted: drop)", "err", cause)
			r.metrics.Deliveries.WithLabelValues(rt.Name, sink, OutcomeDropped).Inc()
			continue
		}
		dl := deadLetterOf{event: e, route: rt.Name, sink: sink, dlSink: pol.DeadLetter, reason: journal.ReasonTransform,
			cause: what + cause.Error(), accepted: time.Now(), id: transformDeadLetterID(e, rt.Name, sink)}
		if err := r.deadLetter(ctx, dl); err != nil {
			if errors.Is(err, journal.ErrTooLarge) {
				return &ingestError{kind: sources.ErrTooLarge, err: err}
			}
			return &ingestError{kind: sources.ErrUnavailable, err: err}
		}
		log.Warn(what+"failed; dead-lettered", "dead_letter", pol.DeadLetter, "err", cause)
		r.metrics.Deliveries.WithLabelValues(rt.Name, sink, OutcomeDeadLettered).Inc()
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

// oneLine makes s a single line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		cut := n
		for cut > 0 && s[cut]&0xc0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
