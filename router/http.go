package router

import (
	"encoding/json"
	"net/http"

	"github.com/junctionhq/junction/console"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ingressHandler serves every HTTP source on its path; any other path is 404.
// The sources are those of the plan running (r.ingress, which reload swaps).
func (r *Router) ingressHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h, pattern := r.ingress.Load().Handler(req)
		if pattern == "" || pattern != req.URL.Path {
			http.Error(w, "unknown path "+oneLine(req.URL.Path, 200), http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, traceHeaders(req))
	})
}

// adminHandler serves /healthz, /readyz and /metrics. /readyz answers
// {"ready": bool, "journal": "ok" or the reason it cannot take writes},
// with 503 when not ready.
func (r *Router) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		ready := r.Ready()
		// "journal" is "ok" or why it cannot take writes now.
		journal := "ok"
		if err := r.journalHealth(); err != nil {
			journal = err.Error()
		}
		status := map[string]any{"journal": journal, "ready": ready}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(status)
	})
	mux.HandleFunc("GET /api/v1/deadletters", r.listDeadLetters)
	mux.HandleFunc("POST /api/v1/deadletters/redrive", r.redriveDeadLetters)
	mux.HandleFunc("GET /api/v1/status", r.getStatus)
	mux.HandleFunc("POST /api/v1/reload", r.postReload)
	r.replays.routes(mux)
	mux.HandleFunc("GET /api/v1/events/{id}", r.getEvent)
	mux.HandleFunc("GET /api/v1/tail", r.serveTail)
	mux.HandleFunc("POST /api/v1/routes/test", r.testRoutes)
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.Registry, promhttp.HandlerOpts{}))
	// Without admin.auth (with it, adminGuard answers first).
	mux.HandleFunc("GET "+consoleSession, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, sessionJSON{Auth: false, SignedIn: true})
	})
	con := console.Handler()
	mux.Handle("GET /{$}", con)
	mux.Handle("GET "+console.Prefix, con)
	return mux
}
