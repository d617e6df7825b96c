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
	// ReplayRate is how many events per second replays route again, all
	// jobs of the process together. Default journal.archive.replayRate.
	ReplayRate float64
}

// Router runs one plan.
type Router struct {
	plan    *Plan
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	journal *journal.Journal

	sinkOrder []*sinkRuntime
	httpSrcs  []httpSource
	runSrcs   []runSource
	ingesters map[string]*ingester

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

type httpSource struct {
	name string
	src  sources.HTTPSource
}

type runSource struct {
	name string
	src  sources.Source
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
	r := &Router{plan: plan, opts: o, log: o.Logger, metrics: newMetrics(), ingesters: map[string]*ingester{}}
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
	for _, sp := range plan.Sinks {
		log := r.log.With("sink", sp.Plugin.Name)
		s, err := sp.Config.Build(ctx, sinks.Deps{Name: sp.Plugin.Name, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("build sink %q: %w", sp.Plugin.Name, err)
		}
		if s, err = r.batching(sp, s); err != nil {
			return nil, err
		}
		rt := &sinkRuntime{r: r, name: sp.Plugin.Name, sink: s, plan: sp, log: log}
		// A delivery to a batching sink waits for its batch: hand out
		// enough at once to fill one.
		rt.plan.Plugin.Concurrency = sp.Plugin.EffectiveConcurrency()
		if _, ok := s.(sinks.ReplySink); ok {
			// Replies enter routing as events from a source of the sink's name.
			r.ingesters[rt.name] = r.newIngester(rt.name)
		}
		r.sinkOrder = append(r.sinkOrder, rt)
	}
	paths := map[string]string{}
	for _, sp := range plan.Sources {
		name := sp.Plugin.Name
		in := r.newIngester(name)
		r.ingesters[name] = in
		if err := r.setupMarks(ctx, in, sp); err != nil {
			return nil, err
		}
		if len(in.routes) > 0 {
			exact, prefix, always := in.index.Stats()
			r.log.Info("route index", "source", name, "routes", len(in.routes), "by_equality", exact, "by_prefix", prefix, "always_evaluated", always)
		}
		built, err := sp.Config.Build(ctx, sources.Deps{
			Name:        name,
			Logger:      r.log.With("source", name),
			MaxBodySize: int64(cfg.HTTP.MaxBodySize),
		})
		if err != nil {
			return nil, fmt.Errorf("build source %q: %w", name, err)
		}
		switch s := built.(type) {
		case sources.HTTPSource:
			if other, dup := paths[s.Path()]; dup {
				return nil, fmt.Errorf("sources %q and %q both use path %s", other, name, s.Path())
			}
			paths[s.Path()] = name
			r.httpSrcs = append(r.httpSrcs, httpSource{name: name, src: s})
		case sources.Source:
			r.runSrcs = append(r.runSrcs, runSource{name: name, src: s})
		default:
			return nil, fmt.Errorf("build source %q: type %q built %T, neither a Source nor an HTTPSource", name, sp.Plugin.Type, built)
		}
	}
	for _, rt := range r.sinkOrder {
		if err := rt.open(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
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
	for _, s := range r.runSrcs {
		if rd, ok := s.src.(sources.Readier); ok && !rd.Ready() {
			return false
		}
	}
	return true
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

	// Admin first, so that health answers during start-up.
	var adminSrv *http.Server
	if r.adminLn != nil {
		adminSrv = &http.Server{Handler: r.adminGuard(r.adminHandler()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: r.httpErrorLog()}
		go func() {
			if err := adminSrv.Serve(r.adminTLS.listen(r.adminLn)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				setErr(fmt.Errorf("admin server: %w", err))
			}
		}()
		r.opts.StartupLogger.Info("admin listening", "url", r.adminTLS.scheme()+"://"+r.AdminAddr())
	}

	// Dispatch.
	drainCtx, stopDrain := context.WithCancel(context.Background())
	defer stopDrain()
	dispatchCtx, stopDispatch := context.WithCancel(context.Background())
	var dispatchWG sync.WaitGroup
	for _, rt := range r.sinkOrder {
		dispatchWG.Add(1)
		go func() {
			defer dispatchWG.Done()
			if err := rt.consumer.Run(dispatchCtx, drainCtx, rt.handle); err != nil {
				setErr(err)
			}
		}()
	}
	pendingCtx, stopPending := context.WithCancel(context.Background())
	pendingDone := make(chan struct{})
	go func() { defer close(pendingDone); r.trackPending(pendingCtx) }()

	// Sources.
	var ingressSrv *http.Server
	if r.ingressLn != nil {
		ingressSrv = &http.Server{
			Handler:           r.ingressHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       r.plan.Config.HTTP.ReadTimeout,
			IdleTimeout:       2 * time.Minute,
			// The guard of each source answers 431 over maxHeaderBytes
			// (counted); net/http answers 431 itself from twice that.
			MaxHeaderBytes: 2 * int(r.plan.Config.HTTP.MaxHeaderBytes),
			ErrorLog:       r.httpErrorLog(),
		}
		go func() {
			if err := ingressSrv.Serve(r.ingressTLS.listen(limitedListener(r.ingressLn, r.plan.Config.HTTP.MaxConnections, r.plan.Config.HTTP.MaxConnectionsPerClient, r.metrics))); err != nil && !errors.Is(err, http.ErrServerClosed) {
				setErr(fmt.Errorf("http ingress: %w", err))
			}
		}()
		r.opts.StartupLogger.Info("http ingress listening", "addr", r.IngressAddr())
	}
	srcCtx, stopSources := context.WithCancel(context.Background())
	var srcWG sync.WaitGroup
	for _, s := range r.runSrcs {
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			if err := s.src.Run(srcCtx, r.ingester(s.name)); err != nil && srcCtx.Err() == nil {
				setErr(fmt.Errorf("source %q: %w", s.name, err))
			}
		}()
	}
	r.ready.Store(true)
	r.opts.StartupLogger.Info("junction ready", "summary", r.plan.Summary())

	<-fail.Done()
	r.ready.Store(false)
	r.log.Info("shutting down")

	// 1. Stop taking events: in-flight requests finish.
	shutCtx, cancel := context.WithTimeout(context.Background(), r.opts.DrainTimeout)
	defer cancel()
	if ingressSrv != nil {
		if err := ingressSrv.Shutdown(shutCtx); err != nil {
			r.log.Warn("http ingress shutdown", "err", err)
		}
	}
	stopSources()
	srcWG.Wait()
	r.replays.stop()

	// 2. Stop fetching; let deliveries in flight finish until the deadline.
	stopDispatch()
	done := make(chan struct{})
	go func() { dispatchWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-shutCtx.Done():
		r.log.Warn("drain deadline reached; deliveries in flight will be retried after restart")
		stopDrain()
		<-done
	}
	stopPending()
	<-pendingDone // it reads the journal, which closeAll closes
	if adminSrv != nil {
		adminSrv.Shutdown(shutCtx)
	}
	r.log.Info("stopped")
	return runErr
}

func (r *Router) closeAll() {
	r.replays.stop()
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
			for _, rt := range r.sinkOrder {
				r.metrics.Pending.WithLabelValues(rt.name).Set(float64(pending[rt.name]))
			}
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
