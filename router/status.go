package router

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"
)

// sinkError is a sink's last failed attempt.
type sinkError struct {
	msg string
	at  time.Time
}

// failed records err as the sink's last error (one line), for the status
// API.
func (s *sinkRuntime) failed(err error) {
	s.lastErr.Store(&sinkError{msg: oneLine(err.Error(), MaxErrorLen), at: time.Now()})
}

// Status is what GET /api/v1/status answers.
type Status struct {
	Ready   bool           `json:"ready"`
	Version string         `json:"version,omitempty"`
	Summary string         `json:"summary"`
	Sources []SourceStatus `json:"sources"`
	Routes  []RouteStatus  `json:"routes"`
	Sinks   []SinkStatus   `json:"sinks"`
}

// SourceStatus is one source in Status.
type SourceStatus struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Ready bool   `json:"ready"`
}

// RouteStatus is one route in Status. Sources is empty when the route
// takes events from every source.
type RouteStatus struct {
	Name    string   `json:"name"`
	Sources []string `json:"sources"`
	To      []string `json:"to"`
}

// SinkStatus is one sink in Status.
type SinkStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Pending is how many deliveries are due and not yet acknowledged
	// (junction_pending_deliveries); nil when the journal cannot say now.
	Pending *uint64 `json:"pending"`
	// Circuit is "closed", "open" or "half-open".
	Circuit string `json:"circuit"`
	// RateLimit is the configured rate limit ("200/s"), nil without one.
	RateLimit   *string    `json:"rateLimit"`
	LastError   *string    `json:"lastError"`
	LastErrorAt *time.Time `json:"lastErrorAt"`
}

// Status returns the state of the sources, routes and sinks running.
func (r *Router) Status(ctx context.Context) Status {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	pending, perr := r.journal.Pending(qctx)
	cancel()
	ready := r.Ready()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{Ready: ready, Version: r.opts.Version, Summary: r.plan.Summary(),
		Sources: []SourceStatus{}, Routes: []RouteStatus{}, Sinks: []SinkStatus{}}
	byName := map[string]*sourceRuntime{}
	for _, s := range append(append([]*sourceRuntime(nil), r.httpSrcs...), r.runSrcs...) {
		byName[s.name] = s
	}
	for _, sp := range r.plan.Sources {
		s := byName[sp.Plugin.Name]
		st.Sources = append(st.Sources, SourceStatus{Name: sp.Plugin.Name, Type: sp.Plugin.Type, Ready: s != nil && sourceReady(s)})
	}
	for _, rt := range r.plan.Routes {
		rs := RouteStatus{Name: rt.Name, Sources: []string{}, To: append([]string{}, rt.To...)}
		for s := range rt.Sources {
			rs.Sources = append(rs.Sources, s)
		}
		slices.Sort(rs.Sources)
		st.Routes = append(st.Routes, rs)
	}
	for _, rt := range r.sinkOrder {
		ss := SinkStatus{Name: rt.name, Type: rt.plan.Plugin.Type}
		if perr == nil {
			n := pending[rt.name]
			ss.Pending = &n
		}
		var limit string
		ss.Circuit, limit = rt.protection()
		if ss.Circuit == "" {
			ss.Circuit = "closed" // no circuit breaker: never open
		}
		if limit != "" {
			ss.RateLimit = &limit
		}
		if e := rt.lastErr.Load(); e != nil {
			msg, at := e.msg, e.at.UTC()
			ss.LastError, ss.LastErrorAt = &msg, &at
		}
		st.Sinks = append(st.Sinks, ss)
	}
	return st
}

// getStatus serves GET /api/v1/status.
func (r *Router) getStatus(w http.ResponseWriter, req *http.Request) {
	writeJSON(w, http.StatusOK, r.Status(req.Context()))
}

// postReload serves POST /api/v1/reload: 200 with the new summary and what
// changed, 422 {"error": ..., "errors": [FILE:LINE:COL: message, ...]} when
// the config is refused (the running one is kept), 503 while starting or
// shutting down.
func (r *Router) postReload(w http.ResponseWriter, req *http.Request) {
	res, err := r.ReloadConfig(req.Context())
	var re *ReloadError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.As(err, &re):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error":  "the config was not reloaded; the running config is kept",
			"errors": re.Lines,
		})
	case errors.Is(err, ErrNotRunning):
		apiError(w, http.StatusServiceUnavailable, err.Error())
	default:
		apiError(w, http.StatusInternalServerError, oneLine(err.Error(), 500))
	}
}
