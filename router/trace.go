package router

import (
	"errors"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
)

// The event log (see journal/trace.go) gets one record per accepted event
// (ingester.route, through acceptedTrace) and one per ended delivery
// attempt (sinkRuntime.handle, through traceAttempt); GET
// /api/v1/events/{id} reads it back as a trace.

// Delivery states of a trace.
const (
	StatePending = "pending"
)

// outcomeRedriven is the outcome of a dead letter delivered again.
const outcomeRedriven = "redriven"

// traceCounts registers junction_trace_dropped_total.
func (m *Metrics) traceCounts(dropped func() uint64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "junction_trace_dropped_total",
		Help: "Event-log records dropped because its writer's buffer was full or the journal refused them (ingest and delivery never wait for the event log).",
	}, func() float64 { return float64(dropped()) }))
}

// acceptedTrace adds to recs the record of e accepted by source and
// matching routes; it returns recs unchanged when the event log is off.
func (r *Router) acceptedTrace(recs []journal.TraceRecord, source string, e *event.Event, routes []string, at time.Time) []journal.TraceRecord {
	if !r.journal.Tracing() {
		return recs
	}
	return append(recs, journal.TraceRecord{Kind: journal.TraceAccepted, ID: e.ID(), Source: e.Source(), At: at,
		Type: e.Type(), SourceName: source, Routes: routes})
}

// traceAttempt records the end of a delivery attempt of e: outcome is one
// of the delivery outcomes ("" records nothing); err is the attempt's
// error, nil on success.
func (s *sinkRuntime) traceAttempt(d *journal.Delivery, e *event.Event, start time.Time, took time.Duration, outcome string, err error) {
	if outcome == "" || !s.r.journal.Tracing() {
		return
	}
	rec := journal.TraceRecord{Kind: journal.TraceAttempt, ID: e.ID(), Source: e.Source(), At: start.UTC(),
		Route: d.Route, Sink: s.name, Attempt: d.Attempt, Outcome: outcome,
		DurationMs: float64(took.Microseconds()) / 1000}
	if err != nil {
		rec.Status = sinks.StatusOf(err)
		rec.Error = oneLine(err.Error(), MaxErrorLen)
	}
	s.r.journal.Trace(rec)
}

// traceGiveUp records a delivery given up on without an attempt (its
// transform failed): outcome dead_lettered or dropped.
func (r *Router) traceGiveUp(e *event.Event, route, sink, outcome, cause string) {
	if !r.journal.Tracing() {
		return
	}
	r.journal.Trace(journal.TraceRecord{Kind: journal.TraceAttempt, ID: e.ID(), Source: e.Source(), At: time.Now().UTC(),
		Route: route, Sink: sink, Outcome: outcome, Error: oneLine(cause, MaxErrorLen)})
}

// traceRedriven records that dead letter dl was journaled again at at.
func (r *Router) traceRedriven(dl journal.DeadLetter, at time.Time) {
	if !r.journal.Tracing() {
		return
	}
	var e event.Event
	if err := journal.DecodeEvent(dl.Data, &e); err != nil {
		return
	}
	r.journal.Trace(journal.TraceRecord{Kind: journal.TraceRedriven, ID: e.ID(), Source: e.Source(), At: at.UTC(),
		Route: dl.Route, Sink: dl.Sink, Outcome: outcomeRedriven})
}

// traceJSON is the trace of one event, as GET /api/v1/events/{id} shows it.
type traceJSON struct {
	ID         string     `json:"id"`
	Source     string     `json:"source"`
	Type       string     `json:"type,omitempty"`
	AcceptedAt *time.Time `json:"acceptedAt,omitempty"`
	SourceName string     `json:"sourceName,omitempty"`
	// Unrouted is set when the event was accepted and no route matched.
	Unrouted bool             `json:"unrouted,omitempty"`
	Routes   []traceRouteJSON `json:"routes"`
}

type traceRouteJSON struct {
	Route      string              `json:"route"`
	Deliveries []traceDeliveryJSON `json:"deliveries"`
}

type traceDeliveryJSON struct {
	Sink     string             `json:"sink"`
	State    string             `json:"state"`
	Attempts []traceAttemptJSON `json:"attempts"`
}

// traceAttemptJSON is one attempt of a delivery: Attempt is its number
// (0 for a give-up without an attempt, or a redrive), Status the sink's
// status code (null when it gave none), Error "" on success.
type traceAttemptJSON struct {
	At         time.Time `json:"at"`
	Attempt    int       `json:"attempt"`
	Outcome    string    `json:"outcome"`
	Status     *int      `json:"status"`
	Error      string    `json:"error"`
	DurationMs float64   `json:"durationMs"`
}

// maxEventIDLen bounds the id of GET /api/v1/events/{id}.
const maxEventIDLen = 4096

// getEvent serves GET /api/v1/events/{id}?source=S: the trace of the
// event, {"events": [...]} when several sources used the id, 404 when the
// event log has no record of it, or with ?missing=empty 200 and
// {"events": []} (the console searches so, since a browser logs every 404
// as an error).
func (r *Router) getEvent(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if id == "" || len(id) > maxEventIDLen {
		apiError(w, http.StatusBadRequest, "id: must be 1 to 4096 bytes")
		return
	}
	source, bySource := req.URL.Query()["source"]
	recs, err := r.journal.TraceOf(req.Context(), id)
	if errors.Is(err, journal.ErrTraceOff) {
		apiError(w, http.StatusNotFound, "no trace of event "+quoteID(id)+": "+err.Error())
		return
	}
	if err != nil {
		r.log.Warn("read event trace", "ce_id", id, "err", err)
		apiError(w, http.StatusServiceUnavailable, "the journal cannot be read now; retry")
		return
	}
	traces := r.traces(recs)
	if bySource {
		traces = slices.DeleteFunc(traces, func(t traceJSON) bool { return t.Source != source[0] })
	}
	switch len(traces) {
	case 0:
		if req.URL.Query().Get("missing") == "empty" {
			writeJSON(w, http.StatusOK, map[string]any{"events": []traceJSON{}})
			return
		}
		msg := "no trace of event " + quoteID(id)
		if bySource {
			msg += " from source " + quoteID(source[0])
		}
		apiError(w, http.StatusNotFound, msg+" (unknown, or older than journal.traceRetention)")
	case 1:
		writeJSON(w, http.StatusOK, traces[0])
	default:
		writeJSON(w, http.StatusOK, map[string]any{"events": traces})
	}
}

// quoteID quotes an id for an error message, bounded.
func quoteID(id string) string { return `"` + oneLine(id, 200) + `"` }

// traces groups the records of one id by event (CloudEvents source), in
// the order the events were first seen.
func (r *Router) traces(recs []journal.TraceRecord) []traceJSON {
	var order []string
	bySource := map[string][]journal.TraceRecord{}
	for _, rec := range recs {
		if _, ok := bySource[rec.Source]; !ok {
			order = append(order, rec.Source)
		}
		bySource[rec.Source] = append(bySource[rec.Source], rec)
	}
	out := make([]traceJSON, 0, len(order))
	for _, src := range order {
		out = append(out, r.trace(bySource[src]))
	}
	return out
}

// trace builds the trace of one event from its records: the routes it
// matched (when accepted) and those its deliveries name, each with its
// sinks (those the route sends to now, and those with records), each
// delivery's attempts in time order and its state from the last one.
func (r *Router) trace(recs []journal.TraceRecord) traceJSON {
	sort.SliceStable(recs, func(a, b int) bool { return recs[a].At.Before(recs[b].At) })
	t := traceJSON{ID: recs[0].ID, Source: recs[0].Source, Routes: []traceRouteJSON{}}
	type key struct{ route, sink string }
	var routes []string
	sinksOf := map[string][]string{}
	attempts := map[key][]traceAttemptJSON{}
	addRoute := func(route string) {
		if _, ok := sinksOf[route]; !ok {
			routes = append(routes, route)
			sinksOf[route] = nil
		}
	}
	addSink := func(route, sink string) {
		addRoute(route)
		if !slices.Contains(sinksOf[route], sink) {
			sinksOf[route] = append(sinksOf[route], sink)
		}
	}
	accepted := false
	for _, rec := range recs {
		switch rec.Kind {
		case journal.TraceAccepted:
			if !accepted {
				accepted = true
				at := rec.At.UTC()
				t.AcceptedAt, t.Type, t.SourceName = &at, rec.Type, rec.SourceName
			}
			for _, route := range rec.Routes {
				addRoute(route)
				if rt := r.runningPlan().route(route); rt != nil {
					for _, sink := range rt.To {
						addSink(route, sink)
					}
				}
			}
		case journal.TraceAttempt, journal.TraceRedriven:
			addSink(rec.Route, rec.Sink)
			k := key{rec.Route, rec.Sink}
			a := traceAttemptJSON{At: rec.At.UTC(), Attempt: rec.Attempt, Outcome: rec.Outcome, Error: rec.Error, DurationMs: rec.DurationMs}
			if rec.Status != 0 {
				a.Status = &rec.Status
			}
			attempts[k] = append(attempts[k], a)
		}
	}
	t.Unrouted = accepted && len(routes) == 0
	for _, route := range routes {
		tr := traceRouteJSON{Route: route, Deliveries: []traceDeliveryJSON{}}
		for _, sink := range sinksOf[route] {
			as := attempts[key{route, sink}]
			if as == nil {
				as = []traceAttemptJSON{}
			}
			tr.Deliveries = append(tr.Deliveries, traceDeliveryJSON{Sink: sink, State: deliveryState(as), Attempts: as})
		}
		t.Routes = append(t.Routes, tr)
	}
	return t
}

// deliveryState is a delivery's state after its attempts: that of the last
// one when final (delivered, dead_lettered, dropped), else pending.
func deliveryState(as []traceAttemptJSON) string {
	if len(as) == 0 {
		return StatePending
	}
	switch o := as[len(as)-1].Outcome; o {
	case OutcomeDelivered, OutcomeDeadLettered, OutcomeDropped:
		return o
	}
	return StatePending
}

// route returns the route of the plan named name, or nil.
func (p *Plan) route(name string) *Route {
	for _, rt := range p.Routes {
		if rt.Name == name {
			return rt
		}
	}
	return nil
}
