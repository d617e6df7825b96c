// Package router is Junction's engine: it takes events from sources, matches
// them against routes, transforms them, journals one delivery per (event,
// route, sink), and dispatches the journal's deliveries to sinks with
// retries, backoff and dead-lettering.
//
// Store first, then deliver: Ingest returns only once every delivery of the
// events is in the journal, and sources acknowledge their producers only
// after that. From then on a delivery survives a crash and is retried until
// its route's policy says stop.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
)

// Options configure New.
type Options struct {
	// Logger receives the router's log; nil discards it.
	Logger *slog.Logger
	// StartupLogger receives the lines a user needs whatever the log level:
	// the admin URL, the ingress address and "junction ready". nil: Logger.
	StartupLogger *slog.Logger
	// DrainTimeout bounds how long shutdown waits for deliveries in flight.
	// Default 15s.
	DrainTimeout time.Duration
	// Memory keeps the journal in memory (tests of routing only).
	Memory bool
	// Load reads and compiles the config again for a reload (POST
	// /api/v1/reload, SIGHUP, serve --watch). nil: the file the plan was
	// read from (Plan.Config.File), with the process's environment.
	Load func() (*Plan, error)
	// Version is the version GET /api/v1/status shows.
	Version string
	// ReplayRate is how many events per second replays route again, all
	// jobs of the process together. Default journal.archive.replayRate.
	ReplayRate float64
}

// Router runs one plan, and the next one on a reload (see reload.go).
type Router struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	journal *journal.Journal

	// table is the routing table of the plan running: reload swaps it.
	table atomic.Pointer[table]
	// ingress serves the HTTP sources of the plan running: reload swaps it.
	ingress atomic.Pointer[http.ServeMux]
	// refusals holds the log limiter of each source and reason of refused
	// ingress requests (refusals.go).
	refusals sync.Map

	// mu guards the plan running and its parts, which reload changes.
	mu        sync.Mutex
	plan      *Plan
	sinkOrder []*sinkRuntime
	httpSrcs  []*sourceRuntime
	runSrcs   []*sourceRuntime
	// sup runs the components once Run started; nil before. running ends
	// when Run begins to shut down (a reload's drain is cut short then).
	sup     *supervisor
	running context.Context
	// ingressComp serves the ingress listener, adminComp the admin one.
	ingressComp, adminComp *component

	// reloadMu makes reloads one at a time; stopping, under it, is set once
	// Run shuts down, after which reloads are refused.
	reloadMu sync.Mutex
	stopping bool

	ingressLn net.Listener
	adminLn   net.Listener
	ready     atomic.Bool
	// replays runs the replay jobs of this process (see replay.go).
	replays *replays
	// tail fans accepted events out to live tails (GET /api/v1/tail).
	tail tailHub
	// tracing makes OpenTelemetry spans (see tracing.go).
	tracing *tracing

	// ingressTLS and adminTLS serve the listeners' TLS; nil without.
	ingressTLS, adminTLS *tlsFiles
}

// sourceRuntime is one built source: an HTTP source served on the ingress
// at its path, or a source that runs (comp, once started).
type sourceRuntime struct {
	name string
	plan SourcePlan
	// maxBody is http.maxBodySize when the source was built.
	maxBody config.ByteSize
	http    sources.HTTPSource
	handler http.Handler
	run     sources.Source
	comp    *component
}

// New opens the journal and builds every sink and source of plan. It starts
// nothing: Run does. On error, whatever was built is closed.
func New(ctx context.Context, plan *Plan, o Options) (_ *Router, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StartupLogger == nil {
		o.StartupLogger = o.Logger
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 15 * time.Second
	}
	cfg := plan.Config
	// r is a local, not the result: a failed New returns nil, and the
	// cleanup below still needs what was built.
	r := &Router{plan: plan, opts: o, log: o.Logger, metrics: newMetrics()}
	defer func() {
		if err != nil {
			r.closeAll()
		}
	}()
	if r.ingressTLS, err = newTLSFiles("http", cfg.HTTP.TLS, r.log, r.metrics); err != nil {
		return nil, err
	}
	if r.adminTLS, err = newTLSFiles("admin", cfg.Admin.TLS, r.log, r.metrics); err != nil {
		return nil, err
	}
	if r.tracing, err = newTracing(ctx, cfg.Telemetry, r.log.With("component", "telemetry")); err != nil {
		return nil, err
	}
	jc := cfg.Journal
	r.journal, err = journal.Open(ctx, withArchive(journal.Options{
		Dir: jc.Dir, URL: jc.URL, Fsync: jc.Fsync, SyncInterval: jc.SyncInterval,
		Stream: jc.Stream, Replicas: jc.Replicas, MaxBytes: int64(jc.MaxBytes),
		Credentials: jc.Credentials, User: jc.User, Password: jc.Password, Token: jc.Token,
		WriteTimeout:        jc.WriteTimeout,
		MinFreeSpace:        int64(jc.MinFreeSpace),
		DeadLetterRetention: time.Duration(jc.DeadLetterRetention), DeadLetterMaxBytes: int64(jc.DeadLetterMaxBytes),
		Trace: jc.Trace == nil || *jc.Trace, TraceRetention: time.Duration(jc.TraceRetention), TraceMaxBytes: int64(jc.TraceMaxBytes),
		Memory: o.Memory, Logger: r.log.With("component", "journal"),
	}, jc.Archive))
	if err != nil {
		return nil, err
	}
	r.replays = newReplays(r, jc.Archive)
	r.metrics.journalCounts(r.JournalStats)
	r.metrics.traceCounts(r.journal.TraceDropped)
	b, err := r.build(ctx, plan, nil)
	if err != nil {
		return nil, err
	}
	r.sinkOrder, r.httpSrcs, r.runSrcs = b.sinks, b.httpSrcs, b.runSrcs
	r.table.Store(b.table)
	r.ingress.Store(b.mux)
	return r, nil
}

// built is what build made of a plan: every sink and source, kept from the
// plan running or new, the routing table and the ingress's handler.
type built struct {
	sinks             []*sinkRuntime
	httpSrcs, runSrcs []*sourceRuntime
	table             *table
	mux               *http.ServeMux
	// newSinks and newSrcs are those this build made: closed when a later
	// step fails, started when the plan is applied.
	newSinks []*sinkRuntime
	newSrcs  []*sourceRuntime
}

// close closes the sinks this build made (a later step failed).
func (b *built) close() {
	for _, rt := range b.newSinks {
		if err := rt.sink.Close(); err != nil {
			rt.log.Warn("close sink", "err", err)
		}
	}
}

// build makes the parts of plan, keeping from old (the plan running, nil in
// New) every sink and source whose config did not change. On error, what it
// made is closed.
func (r *Router) build(ctx context.Context, plan *Plan, old *built) (_ *built, err error) {
	b := &built{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	keptSinks, keptSrcs := map[string]*sinkRuntime{}, map[string]*sourceRuntime{}
	if old != nil {
		for _, rt := range old.sinks {
			keptSinks[rt.name] = rt
		}
		for _, s := range append(append([]*sourceRuntime(nil), old.httpSrcs...), old.runSrcs...) {
			keptSrcs[s.name] = s
		}
	}
	for _, sp := range plan.Sinks {
		opts := consumeOptions(plan, sp)
		if rt := keptSinks[sp.Plugin.Name]; rt != nil && sameSink(rt, sp, opts) {
			b.sinks = append(b.sinks, rt)
			continue
		}
		rt, err := r.buildSink(ctx, sp, opts)
		if err != nil {
			return nil, err
		}
		if prev := keptSinks[sp.Plugin.Name]; prev != nil {
			rt.lastErr.Store(prev.lastErr.Load())
		}
		b.sinks = append(b.sinks, rt)
		b.newSinks = append(b.newSinks, rt)
	}
	paths := map[string]string{}
	for _, sp := range plan.Sources {
		name := sp.Plugin.Name
		s := keptSrcs[name]
		if s == nil || !sameSource(s, sp, plan.Config.HTTP.MaxBodySize) {
			if s, err = r.buildSource(ctx, plan, sp); err != nil {
				return nil, err
			}
			b.newSrcs = append(b.newSrcs, s)
		}
		if s.http != nil {
			if other, dup := paths[s.http.Path()]; dup {
				return nil, fmt.Errorf("sources %q and %q both use path %s", other, name, s.http.Path())
			}
			paths[s.http.Path()] = name
			b.httpSrcs = append(b.httpSrcs, s)
		} else {
			b.runSrcs = append(b.runSrcs, s)
		}
	}
	if b.table, err = r.newTable(ctx, plan, b.sinks); err != nil {
		return nil, err
	}
	b.mux = http.NewServeMux()
	for _, s := range b.httpSrcs {
		b.mux.Handle(s.http.Path(), s.handler)
	}
	return b, nil
}

// buildSink builds a sink and opens its journal consumer.
func (r *Router) buildSink(ctx context.Context, sp SinkPlan, opts journal.ConsumeOptions) (*sinkRuntime, error) {
	log := r.log.With("sink", sp.Plugin.Name)
	s, err := sp.Config.Build(ctx, sinks.Deps{Name: sp.Plugin.Name, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("build sink %q: %w", sp.Plugin.Name, err)
	}
	if s, err = r.batching(sp, s); err != nil {
		return nil, err
	}
	rt := &sinkRuntime{r: r, name: sp.Plugin.Name, sink: s, plan: sp, log: log, opts: opts}
	// A delivery to a batching sink waits for its batch: hand out
	// enough at once to fill one.
	rt.plan.Plugin.Concurrency = sp.Plugin.EffectiveConcurrency()
	if err := rt.open(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return rt, nil
}

// buildSource builds a source of plan.
func (r *Router) buildSource(ctx context.Context, plan *Plan, sp SourcePlan) (*sourceRuntime, error) {
	name := sp.Plugin.Name
	built, err := sp.Config.Build(ctx, sources.Deps{
		Name:        name,
		Logger:      r.log.With("source", name),
		MaxBodySize: int64(plan.Config.HTTP.MaxBodySize),
	})
	if err != nil {
		return nil, fmt.Errorf("build source %q: %w", name, err)
	}
	s := &sourceRuntime{name: name, plan: sp, maxBody: plan.Config.HTTP.MaxBodySize}
	switch src := built.(type) {
	case sources.HTTPSource:
		s.http = src
		// The source's auth, rate limit and header bound (auth.go).
		s.handler = r.guard(&sp, src.Handler(door{r: r, source: name, path: src.Path()}))
	case sources.Source:
		s.run = src
	default:
		return nil, fmt.Errorf("build source %q: type %q built %T, neither a Source nor an HTTPSource", name, sp.Plugin.Type, built)
	}
	return s, nil
}

// batching wraps s with sinks.Batching when the sink has a batch key.
func (r *Router) batching(sp SinkPlan, s sinks.Sink) (sinks.Sink, error) {
	b := sp.Plugin.Batch
	if b == nil {
		return s, nil
	}
	bs, ok := s.(sinks.BatchSink)
	if _, reply := s.(sinks.ReplySink); !ok || reply {
		s.Close()
		return nil, fmt.Errorf("build sink %q: type %q cannot send batches", sp.Plugin.Name, sp.Plugin.Type)
	}
	size := r.metrics.BatchSize.WithLabelValues(sp.Plugin.Name)
	return sinks.Batching(bs, sinks.BatchOptions{
		MaxEvents: b.MaxEvents,
		MaxWait:   time.Duration(b.MaxWait),
		OnBatch:   func(n int) { size.Observe(float64(n)) },
	}), nil
}

// Metrics returns the router's metrics.
func (r *Router) Metrics() *Metrics { return r.metrics }

// Ready reports whether the router runs, the journal can take writes (see
// journal.Health: connected, store writable, disk above journal.minFreeSpace,
// below journal.maxBytes) and every source is ready.
func (r *Router) Ready() bool {
	if !r.ready.Load() || r.journalHealth() != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.runSrcs {
		if !sourceReady(s) {
			return false
		}
	}
	return true
}

// sourceReady reports whether s is ready (see sources.Readier).
func sourceReady(s *sourceRuntime) bool {
	rd, ok := s.run.(sources.Readier)
	return !ok || rd.Ready()
}

// journalHealth is nil when the journal can take writes, else why not.
func (r *Router) journalHealth() error {
	if r.journal == nil {
		return errors.New("journal closed")
	}
	return r.journal.Health()
}

// IngressAddr is the address the HTTP ingress listens on, once Run started it.
func (r *Router) IngressAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ingressLn == nil {
		return ""
	}
	return r.ingressLn.Addr().String()
}

// AdminAddr is the address the admin API listens on, once Run started it.
func (r *Router) AdminAddr() string {
	if r.adminLn == nil {
		return ""
	}
	return r.adminLn.Addr().String()
}

// Listen binds the ingress and admin listeners; Run calls it when the caller
// has not. When it fails (a port in use) it closes what New built: the
// router cannot run, and Run must not be called.
func (r *Router) Listen() (err error) {
	defer func() {
		if err != nil {
			r.closeAll()
			r.adminLn, r.ingressLn = nil, nil
		}
	}()
	cfg := r.plan.Config
	if r.adminLn == nil && cfg.Admin.Listen != "off" {
		if r.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
	}
	if r.ingressLn == nil && (len(r.httpSrcs) > 0 || len(r.plan.Sources) == 0) {
		if r.ingressLn, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
	}
	return nil
}

// Run starts dispatch, sources and the HTTP listeners, and blocks until ctx
// ends; then it shuts down gracefully: sources stop (in-flight requests
// finish), deliveries in flight drain up to DrainTimeout, sinks and the
// journal close.
func (r *Router) Run(ctx context.Context) error {
	defer r.closeAll()
	if err := r.Listen(); err != nil {
		return err
	}
	var errOnce sync.Once
	var runErr error
	fail, cancelFail := context.WithCancel(ctx)
	defer cancelFail()
	setErr := func(err error) {
		errOnce.Do(func() { runErr = err })
		cancelFail()
	}
	sup := &supervisor{fail: setErr}

	// Admin first, so that health answers during start-up.
	if r.adminLn != nil {
		srv := &http.Server{Handler: r.adminGuard(r.adminHandler()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: r.httpErrorLog()}
		r.adminComp = sup.start("admin server", serveHTTP(srv, r.adminTLS.listen(r.adminLn), r.log))
		r.opts.StartupLogger.Info("admin listening", "url", r.adminTLS.scheme()+"://"+r.AdminAddr())
	}

	r.mu.Lock()
	r.sup, r.running = sup, fail
	// Dispatch.
	for _, rt := range r.sinkOrder {
		rt.start(sup)
	}
	pending := sup.start("pending tracker", func(ctx, _ context.Context) error { r.trackPending(ctx); return nil })

	// Sources.
	if r.ingressLn != nil {
		r.startIngress()
	}
	for _, s := range r.runSrcs {
		r.startSource(s)
	}
	summary := r.plan.Summary()
	r.mu.Unlock()
	r.ready.Store(true)
	r.opts.StartupLogger.Info("junction ready", "summary", summary)

	<-fail.Done()
	r.ready.Store(false)
	r.log.Info("shutting down")
	// No reload from here on; one in progress ends first.
	r.reloadMu.Lock()
	r.stopping = true
	r.reloadMu.Unlock()

	// The parts no longer change: reloads are over.
	r.mu.Lock()
	ingress, srcs, sinkCs := r.ingressComp, sourceComps(r.runSrcs), sinkComps(r.sinkOrder)
	r.mu.Unlock()
	// 1. Stop taking events: in-flight requests finish.
	shutCtx, cancel := context.WithTimeout(context.Background(), r.opts.DrainTimeout)
	defer cancel()
	ingress.stop(shutCtx)
	stopAll(shutCtx, srcs)
	r.replays.stop()

	// 2. Stop fetching; let deliveries in flight finish until the deadline.
	if cut := stopAll(shutCtx, sinkCs); len(cut) > 0 {
		r.log.Warn("drain deadline reached; deliveries in flight will be retried after restart", "cut_short", cut)
	}
	pending.stop(shutCtx) // it reads the journal, which closeAll closes
	r.adminComp.stop(shutCtx)
	r.log.Info("stopped")
	return runErr
}

// startIngress serves the ingress listener (r.mu held).
func (r *Router) startIngress() {
	hc := r.plan.Config.HTTP
	srv := &http.Server{
		Handler:           r.ingressHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       hc.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		// The guard of each source answers 431 over maxHeaderBytes
		// (counted); net/http answers 431 itself from twice that.
		MaxHeaderBytes: 2 * int(hc.MaxHeaderBytes),
		ErrorLog:       r.httpErrorLog(),
	}
	ln := r.ingressTLS.listen(limitedListener(r.ingressLn, hc.MaxConnections, hc.MaxConnectionsPerClient, r.metrics))
	r.ingressComp = r.sup.start("http ingress", serveHTTP(srv, ln, r.log))
	r.opts.StartupLogger.Info("http ingress listening", "addr", r.ingressLn.Addr().String())
}

// startSource runs a source that runs (r.mu held).
func (r *Router) startSource(s *sourceRuntime) {
	s.comp = r.sup.start(fmt.Sprintf("source %q", s.name), func(ctx, _ context.Context) error {
		return s.run.Run(ctx, r.Ingester(s.name))
	})
}

// serveHTTP is a component that serves ln with srv; stopped, it lets the
// requests in flight finish until the stop's deadline.
func serveHTTP(srv *http.Server, ln net.Listener, log *slog.Logger) func(ctx, drain context.Context) error {
	return func(ctx, drain context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-ctx.Done():
		}
		if err := srv.Shutdown(drain); err != nil {
			log.Warn("http server shutdown", "addr", ln.Addr().String(), "err", err)
			srv.Close()
		}
		<-errc
		return nil
	}
}

func sourceComps(ss []*sourceRuntime) []*component {
	cs := make([]*component, 0, len(ss))
	for _, s := range ss {
		cs = append(cs, s.comp)
	}
	return cs
}

func sinkComps(rts []*sinkRuntime) []*component {
	cs := make([]*component, 0, len(rts))
	for _, rt := range rts {
		cs = append(cs, rt.comp)
	}
	return cs
}

func (r *Router) closeAll() {
	r.replays.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range r.sinkOrder {
		if err := rt.sink.Close(); err != nil {
			rt.log.Warn("close sink", "err", err)
		}
	}
	r.sinkOrder = nil
	if r.journal != nil {
		r.journal.Close()
		r.journal = nil
	}
	if r.ingressLn != nil {
		r.ingressLn.Close()
	}
	if r.adminLn != nil {
		r.adminLn.Close()
	}
	if err := r.tracing.shutdown(); err != nil {
		r.log.Warn("sending the last spans failed", "err", err)
	}
}

// JournalStats returns how many journal messages and entries this process
// has stored (entries per message show how much appends were coalesced).
func (r *Router) JournalStats() (messages, entries uint64) {
	if r.journal == nil {
		return 0, 0
	}
	return r.journal.Stats()
}

func (r *Router) trackPending(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if pending, err := r.journal.Pending(qctx); err == nil {
			r.mu.Lock()
			for _, rt := range r.sinkOrder {
				r.metrics.Pending.WithLabelValues(rt.name).Set(float64(pending[rt.name]))
			}
			r.mu.Unlock()
		}
		if n, err := r.journal.DeadLetterCount(qctx); err == nil {
			r.metrics.DeadLetters.Set(float64(n))
		}
		if n, err := r.journal.Delayed(qctx); err == nil {
			r.metrics.Delayed.Set(float64(n))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
