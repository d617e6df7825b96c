package router

import (
	_ "embed"
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
func (r *Router) adminHandler() http.Handler { return r.adminMux() }

// handlers is where admin routes are registered.
type handlers interface {
	HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request))
	Handle(pattern string, h http.Handler)
}

// adminMux is the admin API's ServeMux that remembers its patterns, so
// that a test can check them against the OpenAPI document.
type adminMux struct {
	*http.ServeMux
	patterns []string
}

func (m *adminMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

func (m *adminMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// openAPI is the OpenAPI 3 document of /api/v1, served at
// /api/v1/openapi.json; TestOpenAPIMatchesHandlers keeps it and the
// handlers in step.
//
//go:embed openapi.json
var openAPI []byte

// adminMux builds the admin API's handler.
func (r *Router) adminMux() *adminMux {
	mux := &adminMux{ServeMux: http.NewServeMux()}
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
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
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
