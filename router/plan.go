package router

import (
	"fmt"
	"strings"

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
	p := &Plan{Config: cfg}
	for _, pl := range cfg.Sources {
		where := pl.Where("source")
		if pl.Type == "" {
			continue
		}
		f, ok := sources.Lookup(pl.Type)
		if !ok {
			errs.Addf(pl.TypePos, where, "unknown source type %q (known: %s)", pl.Type, strings.Join(sources.Types(), ", "))
			continue
		}
		c := f()
		if err := config.Decode(pl.Own, c); err != nil {
			errs.Add(pl.Own, where, err)
			continue
		}
		if err := c.Validate(); err != nil {
			errs.Add(pl.Own, where, err)
			continue
		}
		p.Sources = append(p.Sources, SourcePlan{Plugin: pl, Config: c})
	}
	sinkPolicy := map[string]config.Policy{}
	for _, pl := range cfg.Sinks {
		where := pl.Where("sink")
		if pl.Type == "" {
			continue
		}
		f, ok := sinks.Lookup(pl.Type)
		if !ok {
			errs.Addf(pl.TypePos, where, "unknown sink type %q (known: %s)", pl.Type, strings.Join(sinks.Types(), ", "))
			continue
		}
		c := f()
		if err := config.Decode(pl.Own, c); err != nil {
			errs.Add(pl.Own, where, err)
			continue
		}
		if err := c.Validate(); err != nil {
			errs.Add(pl.Own, where, err)
			continue
		}
		pol := pl.Delivery.Apply(config.DefaultPolicy)
		sinkPolicy[pl.Name] = pol
		dl := pol
		dl.DeadLetter = ""
		p.Sinks = append(p.Sinks, SinkPlan{Plugin: pl, Config: c, Policy: dl})
	}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		r, err := compileRoute(rc, sinkPolicy)
		if err != nil {
			errs.Add(rc.Node, rc.Where(), err)
			continue
		}
		p.Routes = append(p.Routes, r)
	}
	if err := errs.Err(); err != nil {
		errs.SetFile(cfg.File)
		return nil, err
	}
	return p, nil
}

func compileRoute(rc *config.Route, sinkPolicy map[string]config.Policy) (*Route, error) {
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
	for _, s := range rc.To {
		r.To = append(r.To, s.Name)
		base, ok := sinkPolicy[s.Name]
		if !ok {
			base = config.DefaultPolicy // unknown sink: reported by config
		}
		r.Policy[s.Name] = rc.Delivery.Apply(base)
	}
	return r, errs.Err()
}
