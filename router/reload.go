package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

// ErrNotRunning is the error of a reload asked of a router that does not
// run (not started yet, or shutting down).
var ErrNotRunning = errors.New("junction is not running (starting or shutting down); nothing reloaded")

// ReloadError is a reload that failed: the config is invalid, changes a key
// that cannot change while junction runs, or a new sink or source could not
// be built. The running config keeps running.
type ReloadError struct {
	// Lines are the problems: FILE:LINE:COL: message for the config's
	// errors, as validate prints them (an expression's error goes on with
	// its caret snippet after a newline).
	Lines []string
}

func (e *ReloadError) Error() string {
	return "reload failed; the running config is kept: " + strings.Join(e.Lines, "; ")
}

// reloadError makes err a *ReloadError: one entry per problem of
// config.Errors (each as validate prints it: FILE:LINE:COL: message, with
// an expression's caret snippet on the lines after), else err's text.
func reloadError(err error) *ReloadError {
	var re *ReloadError
	if errors.As(err, &re) {
		return re
	}
	var errs config.Errors
	if errors.As(err, &errs) {
		re = &ReloadError{}
		for _, e := range errs {
			re.Lines = append(re.Lines, e.Error())
		}
		return re
	}
	return &ReloadError{Lines: []string{err.Error()}}
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Summary is the new plan's one-line summary, as at start-up.
	Summary string `json:"summary"`
	// Added, Changed and Removed name the sources, sinks and routes, e.g.
	// `sink "billing"`; Unchanged counts the others.
	Added     []string `json:"added"`
	Changed   []string `json:"changed"`
	Removed   []string `json:"removed"`
	Unchanged int      `json:"unchanged"`
	// Warnings are the config's warnings and what the reload left behind
	// (a removed sink's pending deliveries).
	Warnings []string `json:"warnings"`
}

// ReloadConfig reads the config again (Options.Load) and applies it; see
// Reload. A config with errors is a *ReloadError with the same
// FILE:LINE:COL: message lines as validate.
func (r *Router) ReloadConfig(ctx context.Context) (ReloadResult, error) {
	plan, err := r.loadPlan()
	if err != nil {
		r.metrics.Reloads.WithLabelValues("failure").Inc()
		re := reloadError(err)
		r.log.Error("config reload failed; the running config is kept", "errors", strings.Join(re.Lines, "; "))
		return ReloadResult{}, re
	}
	return r.Reload(ctx, plan)
}

// loadPlan reads and compiles the config for a reload.
func (r *Router) loadPlan() (*Plan, error) {
	if r.opts.Load != nil {
		return r.opts.Load()
	}
	r.mu.Lock()
	file := r.plan.Config.File
	r.mu.Unlock()
	if file == "" || file == config.DefaultName {
		return nil, errors.New("the running config was not read from a file (the built-in default): nothing to reload")
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	return Compile(cfg)
}

// Reload applies plan to the running router, or fails and changes nothing
// (a *ReloadError, or ErrNotRunning).
//
// Sinks and sources whose config did not change keep running; new or
// changed ones are built before anything stops, so that a failure leaves
// the running config untouched. Then the routing table is swapped: events
// accepted from then on are routed by plan, and deliveries already in the
// journal keep going (to their sink, with the policy plan gives their
// route, or the sink's when the route is gone). Removed and changed sources
// stop, new ones start; removed and changed sinks stop taking deliveries
// and finish those in flight (up to DrainTimeout), then new ones start. A
// removed sink's pending deliveries stay in the journal until a config
// names it again.
//
// Keys that cannot change while junction runs (journal.*, admin.*, and
// http.* but http.maxBodySize) fail the reload.
func (r *Router) Reload(ctx context.Context, plan *Plan) (res ReloadResult, err error) {
	defer func() {
		if err != nil {
			r.metrics.Reloads.WithLabelValues("failure").Inc()
			if re := (*ReloadError)(nil); errors.As(err, &re) {
				r.log.Error("config reload failed; the running config is kept", "errors", strings.Join(re.Lines, "; "))
			} else {
				r.log.Error("config reload failed", "err", err)
			}
			return
		}
		r.metrics.Reloads.WithLabelValues("success").Inc()
	}()
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	r.mu.Lock()
	if r.stopping || r.sup == nil {
		r.mu.Unlock()
		return res, ErrNotRunning
	}
	old := &built{sinks: r.sinkOrder, httpSrcs: r.httpSrcs, runSrcs: r.runSrcs, table: r.table.Load()}
	oldPlan, running := r.plan, r.running
	r.mu.Unlock()
	if lines := fixedChanges(oldPlan.Config, plan.Config); len(lines) > 0 {
		return res, &ReloadError{Lines: lines}
	}
	var ln net.Listener
	if r.ingressLn == nil && hasHTTPSource(plan) {
		if ln, err = net.Listen("tcp", plan.Config.HTTP.Listen); err != nil {
			return res, reloadError(fmt.Errorf("http listener: %w", err))
		}
	}
	b, err := r.build(ctx, plan, old)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return res, reloadError(err)
	}
	res = diff(oldPlan, plan, old, b)
	for _, w := range plan.Warnings {
		res.Warnings = append(res.Warnings, w.Error())
	}
	if oldPlan.Config.Log != plan.Config.Log {
		res.Warnings = append(res.Warnings, "log: changes to log.level and log.format apply at the next start")
	}
	if !reflect.DeepEqual(oldPlan.Config.Telemetry, plan.Config.Telemetry) {
		res.Warnings = append(res.Warnings, "telemetry: changes apply at the next start")
	}
	r.apply(ctx, running, b, old, plan, ln, &res)
	r.log.Info("config reloaded", "summary", res.Summary, "added", res.Added, "changed", res.Changed, "removed", res.Removed)
	for _, w := range res.Warnings {
		r.log.Warn(w)
	}
	return res, nil
}

// hasHTTPSource reports whether plan has a source served on the ingress.
func hasHTTPSource(plan *Plan) bool {
	for _, sp := range plan.Sources {
		if hc, ok := sp.Config.(sources.HTTPConfig); ok && hc.HTTPPath() != "" {
			return true
		}
	}
	return false
}

// apply makes b, built for plan, the running parts: see Reload for the
// order. ln, when set, is a new ingress listener to serve. What stops has
// DrainTimeout to finish its work, cut short when running ends (Run shuts
// down and waits for the reload).
func (r *Router) apply(ctx, running context.Context, b, old *built, plan *Plan, ln net.Listener, res *ReloadResult) {
	deadline, cancel := context.WithTimeout(context.Background(), r.opts.DrainTimeout)
	defer cancel()
	defer context.AfterFunc(running, cancel)()
	keep := func(c *component, kept bool) *component {
		if kept {
			return nil
		}
		return c
	}
	// Sources that go (removed or rebuilt) stop first.
	newSrc := map[*sourceRuntime]bool{}
	for _, s := range append(append([]*sourceRuntime(nil), b.httpSrcs...), b.runSrcs...) {
		newSrc[s] = true
	}
	var stopSrcs []*component
	for _, s := range old.runSrcs {
		stopSrcs = append(stopSrcs, keep(s.comp, newSrc[s]))
	}
	stopAll(deadline, stopSrcs)

	// The swap: events accepted from here on follow plan.
	r.mu.Lock()
	r.table.Store(b.table)
	r.ingress.Store(b.mux)
	r.plan, r.httpSrcs, r.runSrcs = plan, b.httpSrcs, b.runSrcs
	if ln != nil {
		r.ingressLn = ln
		r.startIngress()
	}
	for _, s := range b.newSrcs {
		if s.run != nil {
			r.startSource(s)
		} else if r.ingressLn != nil {
			r.opts.StartupLogger.Info("source listening", "source", s.name, "type", s.plan.Plugin.Type, "url", "http://"+r.ingressLn.Addr().String()+s.http.Path())
		}
	}
	r.mu.Unlock()

	// Sinks that go stop taking deliveries and finish those in flight;
	// then the new ones start.
	newSink := map[*sinkRuntime]bool{}
	for _, rt := range b.sinks {
		newSink[rt] = true
	}
	var gone []*sinkRuntime
	for _, rt := range old.sinks {
		if !newSink[rt] {
			gone = append(gone, rt)
		}
	}
	if cut := stopAll(deadline, sinkComps(gone)); len(cut) > 0 {
		r.log.Warn("reload: drain deadline reached; the deliveries cut short will be retried", "cut_short", cut)
	}
	for _, rt := range gone {
		if err := rt.sink.Close(); err != nil {
			rt.log.Warn("close sink", "err", err)
		}
	}
	r.mu.Lock()
	r.sinkOrder = b.sinks
	for _, rt := range b.newSinks {
		rt.start(r.sup)
	}
	r.mu.Unlock()

	// A removed sink's deliveries wait in the journal for a config that
	// names it again.
	names := map[string]bool{}
	for _, rt := range b.sinks {
		names[rt.name] = true
	}
	var removed []string
	for _, rt := range gone {
		if !names[rt.name] {
			removed = append(removed, rt.name)
		}
	}
	if len(removed) == 0 {
		return
	}
	qctx, cancelQ := context.WithTimeout(ctx, 5*time.Second)
	defer cancelQ()
	pending, err := r.journal.Pending(qctx)
	for _, name := range removed {
		r.metrics.Pending.DeleteLabelValues(name)
		r.metrics.CircuitOpen.DeleteLabelValues(name)
		n := "an unknown number"
		if err == nil {
			n = fmt.Sprint(pending[name])
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("sink %q removed: %s pending deliveries stay in the journal until a config names it again (those waiting for a retry or a delay are not counted)", name, n))
	}
}

// diff describes what b changes from old.
func diff(oldPlan, plan *Plan, old, b *built) ReloadResult {
	res := ReloadResult{Summary: plan.Summary(), Added: []string{}, Changed: []string{}, Removed: []string{}, Warnings: []string{}}
	oldSinks := map[string]*sinkRuntime{}
	for _, rt := range old.sinks {
		oldSinks[rt.name] = rt
	}
	for _, rt := range b.sinks {
		switch prev := oldSinks[rt.name]; {
		case prev == nil:
			res.Added = append(res.Added, fmt.Sprintf("sink %q", rt.name))
		case prev != rt:
			res.Changed = append(res.Changed, fmt.Sprintf("sink %q", rt.name))
		default:
			res.Unchanged++
		}
		delete(oldSinks, rt.name)
	}
	for _, rt := range old.sinks {
		if oldSinks[rt.name] != nil {
			res.Removed = append(res.Removed, fmt.Sprintf("sink %q", rt.name))
		}
	}
	oldSrcs := map[string]*sourceRuntime{}
	for _, s := range append(append([]*sourceRuntime(nil), old.httpSrcs...), old.runSrcs...) {
		oldSrcs[s.name] = s
	}
	newSrcs := map[string]*sourceRuntime{}
	for _, s := range append(append([]*sourceRuntime(nil), b.httpSrcs...), b.runSrcs...) {
		newSrcs[s.name] = s
	}
	for _, sp := range plan.Sources {
		s := newSrcs[sp.Plugin.Name]
		switch prev, ok := oldSrcs[s.name]; {
		case !ok:
			res.Added = append(res.Added, fmt.Sprintf("source %q", s.name))
		case prev != s:
			res.Changed = append(res.Changed, fmt.Sprintf("source %q", s.name))
		default:
			res.Unchanged++
		}
		delete(oldSrcs, s.name)
	}
	for name := range oldSrcs {
		res.Removed = append(res.Removed, fmt.Sprintf("source %q", name))
	}
	oldRoutes := map[string]*yaml.Node{}
	for i := range oldPlan.Config.Routes {
		oldRoutes[oldPlan.Config.Routes[i].Name] = oldPlan.Config.Routes[i].Node
	}
	for i := range plan.Config.Routes {
		rc := &plan.Config.Routes[i]
		switch prev, ok := oldRoutes[rc.Name]; {
		case !ok:
			res.Added = append(res.Added, fmt.Sprintf("route %q", rc.Name))
		case !nodeEqual(prev, rc.Node):
			res.Changed = append(res.Changed, fmt.Sprintf("route %q", rc.Name))
		default:
			res.Unchanged++
		}
		delete(oldRoutes, rc.Name)
	}
	for name := range oldRoutes {
		res.Removed = append(res.Removed, fmt.Sprintf("route %q", name))
	}
	slices.Sort(res.Removed)
	return res
}

// sameSink reports whether the running sink rt can stay for sp: the same
// YAML (after ${ENV} expansion) and the same consumer options.
func sameSink(rt *sinkRuntime, sp SinkPlan, opts any) bool {
	return nodeEqual(rt.plan.Plugin.Node, sp.Plugin.Node) && reflect.DeepEqual(rt.opts, opts)
}

// sameSource reports whether the running source s can stay for sp.
func sameSource(s *sourceRuntime, sp SourcePlan, maxBody config.ByteSize) bool {
	return s.maxBody == maxBody && nodeEqual(s.plan.Plugin.Node, sp.Plugin.Node)
}

// nodeEqual reports whether two YAML nodes hold the same values, whatever
// their positions, comments and styles.
func nodeEqual(a, b *yaml.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind == yaml.AliasNode {
		return nodeEqual(a.Alias, b)
	}
	if b.Kind == yaml.AliasNode {
		return nodeEqual(a, b.Alias)
	}
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Value != b.Value || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !nodeEqual(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// fixedChanges lists the keys that cannot change while junction runs and
// that next changes from running, one line each.
func fixedChanges(running, next *config.Config) []string {
	file := next.File
	if file == "" {
		file = "config"
	}
	var lines []string
	add := func(key string, was, now any, show bool) {
		if reflect.DeepEqual(was, now) {
			return
		}
		change := ""
		if show {
			change = fmt.Sprintf(" (%s, now %s)", shown(was), shown(now))
		}
		lines = append(lines, fmt.Sprintf("%s: %s: cannot change while junction runs%s; restart junction to apply it", file, key, change))
	}
	fields := func(prefix string, was, now any, skip ...string) {
		wv, nv := reflect.ValueOf(was), reflect.ValueOf(now)
		for i := range wv.NumField() {
			f := wv.Type().Field(i)
			if slices.Contains(skip, f.Name) {
				continue
			}
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if key == "" || key == "-" {
				key = f.Name
			}
			secret := slices.Contains([]string{"Password", "Token", "User", "Credentials", "URL", "Auth"}, f.Name)
			add(prefix+key, wv.Field(i).Interface(), nv.Field(i).Interface(), !secret)
		}
	}
	// http.maxBodySize can change: the sources are rebuilt with it.
	fields("http.", running.HTTP, next.HTTP, "MaxBodySize")
	fields("admin.", running.Admin, next.Admin)
	fields("journal.", running.Journal, next.Journal)
	return lines
}

// shown is v for a message: a pointer's value, "none" for nil.
func shown(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "none"
		}
		return fmt.Sprintf("%+v", rv.Elem().Interface())
	}
	return fmt.Sprint(v)
}
