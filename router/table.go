package router

import (
	"context"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
)

// table is the compiled routing table of one plan: the ingester of each
// source (and of each reply sink, whose replies enter routing as events
// from a source of its name), each with the routes that take its events and
// their index, and the delivery policy of each route per sink. It never
// changes: a reload builds a new one and swaps Router.table, so that an
// event is routed by one plan from start to end.
type table struct {
	plan      *Plan
	ingesters map[string]*ingester
	// policies holds, per sink, the delivery policy of each route that
	// sends there.
	policies map[string]map[string]config.Policy
	// others holds the ingesters made for other names (Router.Ingester
	// of a name the plan does not have), made once per table.
	others sync.Map // string → *ingester
}

// newTable builds the routing table of plan, whose sinks are rts.
func (r *Router) newTable(ctx context.Context, plan *Plan, rts []*sinkRuntime) (*table, error) {
	t := &table{plan: plan, ingesters: map[string]*ingester{}, policies: map[string]map[string]config.Policy{}}
	for _, rt := range rts {
		if _, ok := rt.sink.(sinks.ReplySink); ok {
			// Replies enter routing as events from a source of the sink's name.
			t.ingesters[rt.name] = r.newIngester(plan, rt.name)
		}
	}
	for _, sp := range plan.Sources {
		name := sp.Plugin.Name
		in := r.newIngester(plan, name)
		t.ingesters[name] = in
		if err := r.setupMarks(ctx, in, sp); err != nil {
			return nil, err
		}
		if len(in.routes) > 0 {
			exact, prefix, always := in.index.Stats()
			r.log.Info("route index", "source", name, "routes", len(in.routes), "by_equality", exact, "by_prefix", prefix, "always_evaluated", always)
		}
	}
	for _, rt := range plan.Routes {
		for sink, p := range rt.Policy {
			if t.policies[sink] == nil {
				t.policies[sink] = map[string]config.Policy{}
			}
			t.policies[sink][rt.Name] = p
		}
	}
	return t, nil
}

// door is the Ingester a source is given: each call goes to the source's
// ingester in the routing table of the moment, so that a source that a
// reload keeps routes its next events with the new routes.
type door struct {
	r      *Router
	source string
	path   string // the URL path of an HTTP source, for its refusal log
}

var (
	_ sources.Ingester = door{}
	_ sources.Claims   = door{}
)

// Ingest implements sources.Ingester.
func (d door) Ingest(ctx context.Context, events []*event.Event) error {
	return d.r.ingester(d.source).Ingest(ctx, events)
}

// Rejected implements sources.Ingester.
func (d door) Rejected(reason string) { d.r.ingester(d.source).Rejected(reason) }

// Claim implements sources.Claims.
func (d door) Claim(ctx context.Context, key string, ttl time.Duration) (sources.Claim, sources.ClaimState, error) {
	return d.r.ingester(d.source).Claim(ctx, key, ttl)
}

// State implements sources.Claims.
func (d door) State(ctx context.Context, key string) ([]byte, error) {
	return d.r.ingester(d.source).State(ctx, key)
}

// SetState implements sources.Claims.
func (d door) SetState(ctx context.Context, key string, value []byte) error {
	return d.r.ingester(d.source).SetState(ctx, key, value)
}

// runningPlan is the plan of the routing table running (reload swaps it);
// before New made the table, the plan given to New.
func (r *Router) runningPlan() *Plan {
	if t := r.table.Load(); t != nil {
		return t.plan
	}
	return r.plan
}
