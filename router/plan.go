package router

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
)

// Plan is a checked config: every plugin decoded and validated, every
// expression compiled. Compile makes it without I/O; New runs it.
type Plan struct {
	Config  *config.Config
	Sources []SourcePlan
	Sinks   []SinkPlan
	Routes  []*Route
	// Warnings are the config's warnings and those found compiling it:
	// problems that do not stop it from running (validate prints them,
	// serve logs them).
	Warnings config.Errors

	// tables caches the routing of each source for TestEvent: source
	// name → *sourceTable.
	tables sync.Map
}

// SourcePlan is one source ready to build.
type SourcePlan struct {
	Plugin config.Plugin
	Config sources.Config
}

// SinkPlan is one sink ready to build.
type SinkPlan struct {
	Plugin config.Plugin
	Config sinks.Config
	// Policy is the sink's default delivery policy (global defaults with the
	// sink's delivery block applied); dead letters sent to this sink follow
	// it, without a further dead-letter sink.
	Policy config.Policy
}

// Route is a compiled route.
type Route struct {
	Name string
	// Sources restricts the route to events from these sources; nil is all.
	Sources map[string]bool
	// Match is nil when the route takes every event.
	Match     filters.Matcher
	Transform *filters.Transform
	To        []string
	// Policy per sink in To.
	Policy map[string]config.Policy
	// OrderBy, DeliverAt and Priority are nil when not set (see
	// semantics.go); Delay is 0.
	OrderBy, DeliverAt, Priority *filters.Value
	Delay                        time.Duration
}

// Summary is a one-line description of the plan.
func (p *Plan) Summary() string {
	return fmt.Sprintf("%d %s, %d %s, %d %s",
		len(p.Sources), plural(len(p.Sources), "source"),
		len(p.Sinks), plural(len(p.Sinks), "sink"),
		len(p.Routes), plural(len(p.Routes), "route"))
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// Compile checks cfg completely (plugins decoded and validated, expressions
// compiled) without doing any I/O. Errors are config.Errors.
func Compile(cfg *config.Config) (*Plan, error) {
	var errs config.Errors
	p := &Plan{Config: cfg, Warnings: append(config.Errors(nil), cfg.Warnings...)}
	for _, pl := range cfg.Sources {
		if c, ok := decodePlugin(pl, "source", newSourceConfig, sources.Types, &errs); ok {
			p.Sources = append(p.Sources, SourcePlan{Plugin: pl, Config: c})
			if rc, ok := c.(sources.ReplicaConfig); ok && cfg.Journal.URL != "" {
				if w := rc.ReplicaWarning(); w != "" {
					p.Warnings.Warnf(pl.Pos, pl.Where("source"), "%s", w)
				}
			}
		}
	}
	sinkPolicy := map[string]config.Policy{}
	for _, pl := range cfg.Sinks {
		c, ok := decodePlugin(pl, "sink", newSinkConfig, sinks.Types, &errs)
		if !ok {
			continue
		}
		checkBatch(pl, c, &errs)
		pol := pl.Delivery.Apply(config.DefaultPolicy)
		sinkPolicy[pl.Name] = pol
		dl := pol
		dl.DeadLetter = ""
		p.Sinks = append(p.Sinks, SinkPlan{Plugin: pl, Config: c, Policy: dl})
	}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		r, err := compileRoute(rc, sinkPolicy, &p.Warnings)
		if err != nil {
			errs.Add(rc.Node, rc.Where(), err)
			continue
		}
		p.Routes = append(p.Routes, r)
	}
	checkSources(p, &errs)
	if err := errs.Err(); err != nil {
		errs.SetFile(cfg.File)
		return nil, err
	}
	p.Warnings.SetFile(cfg.File)
	p.Warnings.Err() // sorts them by position
	return p, nil
}

// checkBatch refuses a batch key on a sink that cannot send batches: its
// type has no batch form (sinks.BatchConfig), or its config says why not.
func checkBatch(pl config.Plugin, c sinks.Config, errs *config.Errors) {
	if pl.Batch == nil {
		return
	}
	pos := config.PosOf(config.Locate(pl.Node, "batch"))
	where := pl.Where("sink")
	bc, ok := c.(sinks.BatchConfig)
	if !ok {
		var can []string
		for _, typ := range sinks.Types() {
			if f, _ := sinks.Lookup(typ); f != nil {
				if _, ok := f().(sinks.BatchConfig); ok {
					can = append(can, typ)
				}
			}
		}
		errs.Addf(pos, where, "batch: sink type %q cannot send batches (types that can: %s)", pl.Type, strings.Join(can, ", "))
		return
	}
	if err := bc.BatchSupported(); err != nil {
		errs.Addf(pos, where, "batch: %v", err)
	}
}

func newSourceConfig(typ string) (sources.Config, bool) {
	f, ok := sources.Lookup(typ)
	if !ok {
		return nil, false
	}
	return f(), true
}

func newSinkConfig(typ string) (sinks.Config, bool) {
	f, ok := sinks.Lookup(typ)
	if !ok {
		return nil, false
	}
	return f(), true
}

// decodePlugin makes the config of plugin pl of kind ("source", "sink"):
// the type's factory, strict decoding of its own keys, Validate. Problems go
// to errs; ok is false when there were any.
func decodePlugin[C interface{ Validate() error }](pl config.Plugin, kind string, newConfig func(string) (C, bool), types func() []string, errs *config.Errors) (c C, ok bool) {
	if pl.Type == "" {
		return c, false // reported by config
	}
	where := pl.Where(kind)
	c, found := newConfig(pl.Type)
	if !found {
		errs.Addf(pl.TypePos, where, "unknown %s type %q (known: %s)", kind, pl.Type, strings.Join(types(), ", "))
		return c, false
	}
	if err := config.Decode(pl.Own, c); err != nil {
		errs.Add(pl.Own, where, err)
		return c, false
	}
	if err := c.Validate(); err != nil {
		errs.Add(pl.Own, where, err)
		return c, false
	}
	return c, true
}

// ShortPolicy is how soon a policy may give up before validate warns about
// a route without a dead-letter sink.
const ShortPolicy = time.Hour

// roundDuration rounds d for a message: to the second past a minute.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// expressionHints warns about the route's expressions that compile but are
// probably not what was meant (see filters.Hints), at their positions.
func expressionHints(rc *config.Route, warnings *config.Errors) {
	type keyed struct {
		key string
		e   config.Expr
	}
	exprs := []keyed{{"filter", rc.Filter}, {"orderBy", rc.OrderBy}, {"deliverAt", rc.DeliverAt}, {"priority", rc.Priority}}
	if t := rc.Transform; t != nil {
		for _, a := range t.Attributes {
			exprs = append(exprs, keyed{"transform.attributes." + a.Name, a.Expr})
		}
		exprs = append(exprs, keyed{"transform.data", t.Data})
	}
	for _, x := range exprs {
		if x.e.Null || !x.e.IsSet() {
			continue
		}
		for _, h := range filters.Hints(x.e) {
			warnings.Warnf(x.e.Pos, rc.Where(), "%s: %s", x.key, h)
		}
	}
}

func compileRoute(rc *config.Route, sinkPolicy map[string]config.Policy, warnings *config.Errors) (*Route, error) {
	var errs config.Errors
	r := &Route{Name: rc.Name, Policy: map[string]config.Policy{}}
	if len(rc.Sources) > 0 {
		r.Sources = map[string]bool{}
		for _, s := range rc.Sources {
			r.Sources[s.Name] = true
		}
	}
	var ms []filters.Matcher
	if rc.Filter.IsSet() {
		m, err := filters.CompileFilter(rc.Filter)
		if err != nil {
			errs.Add(rc.Filter.Node, "", err)
		} else {
			ms = append(ms, m)
		}
	}
	if rc.Filters.Kind != 0 {
		m, err := filters.CompileDialects(&rc.Filters)
		if err != nil {
			errs.Add(&rc.Filters, "", err)
		} else if m != nil {
			ms = append(ms, m)
		}
	}
	r.Match = filters.All(ms...)
	if rc.Transform != nil {
		t, err := filters.CompileTransform(rc.Transform)
		if err != nil {
			errs.Add(rc.Node, "", err)
		} else {
			r.Transform = t
		}
	}
	r.Delay = time.Duration(rc.Delay)
	expressionHints(rc, warnings)
	for _, v := range []struct {
		key string
		e   config.Expr
		out **filters.Value
	}{{"orderBy", rc.OrderBy, &r.OrderBy}, {"deliverAt", rc.DeliverAt, &r.DeliverAt}, {"priority", rc.Priority, &r.Priority}} {
		if !v.e.IsSet() {
			continue
		}
		c, err := filters.CompileValue(v.key, v.e)
		if err != nil {
			errs.Add(v.e.Node, "", err)
			continue
		}
		*v.out = c
	}
	for _, s := range rc.To {
		r.To = append(r.To, s.Name)
		base, ok := sinkPolicy[s.Name]
		if !ok {
			base = config.DefaultPolicy // unknown sink: reported by config
		}
		pol := rc.Delivery.Apply(base)
		r.Policy[s.Name] = pol
		if after := pol.GivesUpAfter(); after < ShortPolicy && pol.DeadLetter == "" && pol.OnExhausted != config.OnExhaustedDrop {
			why := fmt.Sprintf("maxAge: %v", config.Duration(pol.MaxAge))
			if pol.Retry >= 0 && after < pol.MaxAge {
				why = fmt.Sprintf("retry: %d", pol.Retry)
			}
			warnings.Warnf(rc.Pos, rc.Where(), "deliveries to sink %q can give up after about %v (%s) and the route has no deadLetter sink: "+
				"what fails that long is kept in the dead-letter store only; add delivery.deadLetter, raise retry or maxAge, or say onExhausted: drop",
				s.Name, roundDuration(after), why)
		}
	}
	return r, errs.Err()
}
