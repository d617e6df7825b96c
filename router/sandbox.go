package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/internal/cehttp"
)

// RouteResult is what one route does with a test event (see TestEvent).
type RouteResult struct {
	Route string `json:"route"`
	// Matched is true when the route takes the event.
	Matched bool `json:"matched"`
	// Error is why the route's filter, transform or delivery semantics
	// (orderBy, deliverAt, priority) failed on the event, if they did. A
	// failed filter does not match; a failed transform matches, and the
	// event goes to the route's dead-letter sink, if any.
	Error string `json:"error,omitempty"`
	// Deliveries are the events the route hands its sinks, in the order of
	// its `to` list; empty when it does not match.
	Deliveries []TestDelivery `json:"deliveries"`
}

// TestDelivery is one event a sink would receive from a route.
type TestDelivery struct {
	Sink  string       `json:"sink"`
	Event *event.Event `json:"event"`
	// DeadLetter is true for the copy of the event sent to the route's
	// dead-letter sink when its transform failed.
	DeadLetter bool `json:"deadLetter,omitempty"`
	// OrderKey is the route's orderBy key ("" unordered). An ordered
	// delivery also gets the junctionseq extension when it is dispatched,
	// which a test does not show.
	OrderKey string `json:"orderKey,omitempty"`
	// NotBefore is when a delayed delivery (delay, deliverAt) becomes due.
	NotBefore *time.Time `json:"notBefore,omitempty"`
	// Priority is the route's priority for the event (0..9).
	Priority int `json:"priority,omitempty"`
}

// ErrUnknownSource is returned by TestEvent for a source name that is
// neither a source nor a sink (whose replies come from a source of its
// name) of the plan.
var ErrUnknownSource = errors.New("unknown source")

// TestEvent runs e, as if it arrived on the named source ("" is the plan's
// first source), through the routing of ingest: the same index, filters,
// delivery semantics and transforms, without a journal, sinks or network.
// It returns one result per route of the plan, in config order; a route
// that does not take events from source does not match. e is not changed.
func TestEvent(plan *Plan, source string, e *event.Event) ([]RouteResult, error) {
	if source == "" && len(plan.Sources) > 0 {
		source = plan.Sources[0].Plugin.Name
	} else if source != "" && !plan.hasSource(source) {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownSource, source, strings.Join(plan.sourceNames(), ", "))
	}
	t := plan.table(source)
	results := make([]RouteResult, len(plan.Routes))
	for i, rt := range plan.Routes {
		results[i] = RouteResult{Route: rt.Name, Deliveries: []TestDelivery{}}
	}
	in := e.Clone() // each delivery is a copy too: e stays as it was
	env := filters.NewEnv(&in)
	for _, i := range t.index.Candidates(env, nil) {
		rt := t.routes[i]
		res := &results[t.at[i]]
		v := rt.judge(env)
		res.Matched = v.matched
		switch {
		case v.filterErr != nil:
			res.Error = v.filterErr.Error()
		case !v.matched:
		case v.failed != nil:
			res.Error = v.what + v.failed.Error()
			res.Deliveries = deadLetterDeliveries(rt, &in, res.Error)
		default:
			out := v.out
			if out == nil {
				out = &in
			}
			for _, sink := range rt.To {
				c := out.Clone()
				d := TestDelivery{Sink: sink, Event: &c, OrderKey: v.pl.key, Priority: v.pl.priority}
				if !v.pl.notBefore.IsZero() {
					nb := v.pl.notBefore.UTC()
					d.NotBefore = &nb
				}
				res.Deliveries = append(res.Deliveries, d)
			}
		}
	}
	return results, nil
}

// sourceTable is the routing of one source (see sourceRoutes).
type sourceTable struct {
	routes []*Route
	index  *filters.Index
	// at is the place of each of routes in the plan's routes.
	at []int
}

// table returns the routing of source, made once per plan.
func (p *Plan) table(source string) *sourceTable {
	if t, ok := p.tables.Load(source); ok {
		return t.(*sourceTable)
	}
	var t sourceTable
	t.routes, t.index = sourceRoutes(p, source)
	place := make(map[*Route]int, len(p.Routes))
	for i, rt := range p.Routes {
		place[rt] = i
	}
	for _, rt := range t.routes {
		t.at = append(t.at, place[rt])
	}
	actual, _ := p.tables.LoadOrStore(source, &t)
	return actual.(*sourceTable)
}

// deadLetterDeliveries are what route rt's dead-letter sinks receive when
// e failed its transform with cause (see ingester.transformFailed).
func deadLetterDeliveries(rt *Route, e *event.Event, cause string) []TestDelivery {
	out := []TestDelivery{}
	for _, sink := range rt.To {
		pol := rt.Policy[sink]
		if pol.DeadLetter == "" || pol.OnExhausted == config.OnExhaustedDrop {
			continue
		}
		out = append(out, TestDelivery{Sink: pol.DeadLetter, Event: deadLetter(e, rt.Name, sink, 0, cause), DeadLetter: true})
	}
	return out
}

// hasSource reports whether events can come from a source named name: one
// of the plan's sources, or a sink (a function's replies).
func (p *Plan) hasSource(name string) bool {
	for _, s := range p.Sources {
		if s.Plugin.Name == name {
			return true
		}
	}
	for _, s := range p.Sinks {
		if s.Plugin.Name == name {
			return true
		}
	}
	return false
}

// sourceNames lists the plan's sources, for errors.
func (p *Plan) sourceNames() []string {
	names := []string{}
	for _, s := range p.Sources {
		names = append(names, s.Plugin.Name)
	}
	if len(names) == 0 {
		names = append(names, "none")
	}
	return names
}

// maxTestBody bounds the body of POST /api/v1/routes/test beyond the
// ingress's own limit on an event (room for the {"event": ...} wrapper).
const maxTestBody = 64 << 10

// testRoutes serves POST /api/v1/routes/test: body a CloudEvent in
// structured JSON, or {"event": EVENT, "source": NAME}. Answers
// {"routes": [RouteResult...]}; nothing is journaled or delivered.
func (r *Router) testRoutes(w http.ResponseWriter, req *http.Request) {
	plan := r.runningPlan()
	limit := int64(plan.Config.HTTP.MaxBodySize) + maxTestBody
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: larger than %d bytes", limit))
			return
		}
		apiError(w, http.StatusBadRequest, "body: "+oneLine(err.Error(), 200))
		return
	}
	source, e, err := ParseTestRequest(body)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	results, err := TestEvent(plan, source, e)
	if err != nil {
		apiError(w, http.StatusBadRequest, "source: "+oneLine(err.Error(), 300))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": results})
}

// ParseTestRequest reads the body of a route test: a CloudEvent in
// structured JSON, or {"event": EVENT, "source": NAME} (source optional).
// The event is checked as the http source checks it. Errors are one line
// and say what is wrong.
func ParseTestRequest(body []byte) (source string, e *event.Event, err error) {
	body = bytes.TrimSpace(body)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		msg := oneLine(err.Error(), 200)
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			msg = "expected a JSON object, got " + typeErr.Value
		}
		return "", nil, fmt.Errorf(`body: %s (want a CloudEvent in structured JSON, or {"event": EVENT, "source": NAME})`, msg)
	}
	raw := body
	if wrapped, ok := top["event"]; ok && top["specversion"] == nil {
		for k := range top {
			if k != "event" && k != "source" {
				return "", nil, fmt.Errorf(`body: unknown key %q (want {"event": EVENT, "source": NAME})`, oneLine(k, 40))
			}
		}
		if s, ok := top["source"]; ok {
			if err := json.Unmarshal(s, &source); err != nil {
				return "", nil, errors.New("source: must be a string, the name of a Junction source")
			}
		}
		raw = wrapped
	}
	if e, err = cehttp.ParseStructured(raw); err != nil {
		return "", nil, fmt.Errorf("event: %s", oneLine(err.Error(), 300))
	}
	return source, e, nil
}
