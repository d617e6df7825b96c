// Package httpsource is the http source type: CloudEvents over HTTP in
// binary, structured and batch modes, served on Junction's shared HTTP
// ingress listener at the source's path.
//
// A request is answered 202 only after the router's Ingester has put every
// event of it in the journal; a batch is accepted or refused whole. The
// package also answers the abuse-protection handshake (OPTIONS) of the
// CloudEvents "HTTP 1.1 Web Hooks for Event Delivery" specification.
package httpsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

func init() {
	sources.Register("http", func() sources.Config {
		return &Config{AllowedOrigins: []string{"*"}}
	})
}

// Config is the http source's config.
type Config struct {
	// Path is the URL path the source answers on; it starts with "/".
	Path string `yaml:"path"`
	// MaxBodySize is the largest request body accepted (413 beyond). Zero
	// means the ingress-wide http.maxBodySize.
	MaxBodySize config.ByteSize `yaml:"maxBodySize"`
	// AllowedOrigins are the WebHook-Request-Origin values granted in the
	// abuse-protection handshake; "*" grants every origin (the default) and
	// an empty list grants none.
	AllowedOrigins []string `yaml:"allowedOrigins"`
}

var _ sources.Config = (*Config)(nil)

// Validate checks the config without I/O.
func (c *Config) Validate() error {
	var errs []error
	if err := sources.CheckPath(c.Path); err != nil {
		errs = append(errs, err)
	}
	if c.MaxBodySize < 0 {
		errs = append(errs, config.FieldErrorf("maxBodySize", "must be positive"))
	}
	for i, o := range c.AllowedOrigins {
		if o == "" || strings.ContainsAny(o, " \t\r\n,") {
			errs = append(errs, config.FieldErrorf(fmt.Sprintf("allowedOrigins[%d]", i), "must be an origin such as eventemitter.example.com or \"*\", got %q", o))
		}
	}
	return errors.Join(errs...)
}

var _ sources.HTTPConfig = (*Config)(nil)

// HTTPPath is the path the source answers on.
func (c *Config) HTTPPath() string { return c.Path }

// Build makes the source. It does no I/O: the router serves Handler on the
// shared listener.
func (c *Config) Build(_ context.Context, deps sources.Deps) (any, error) {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		path:    c.Path,
		maxBody: deps.BodyLimit(c.MaxBodySize),
		log:     log,
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			s.anyOrigin = true
		}
	}
	s.origins = append([]string(nil), c.AllowedOrigins...)
	return s, nil
}

// Source is a built http source.
type Source struct {
	path      string
	maxBody   int64
	anyOrigin bool
	origins   []string
	log       *slog.Logger
}

var _ sources.HTTPSource = (*Source)(nil)

// Path returns the URL path the source answers on.
func (s *Source) Path() string { return s.path }

// MaxBodySize returns the body limit in bytes.
func (s *Source) MaxBodySize() int64 { return s.maxBody }

// Handler returns the handler that serves the path, handing events to in.
func (s *Source) Handler(in sources.Ingester) http.Handler {
	return &handler{s: s, in: in}
}

type handler struct {
	s  *Source
	in sources.Ingester
}

const allow = "OPTIONS, POST"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		h.options(w, r)
		return
	default:
		w.Header().Set("Allow", allow)
		h.refuse(w, http.StatusMethodNotAllowed, sources.ReasonMethodNotAllowed,
			fmt.Sprintf("method %s not allowed: send events with POST", quote(r.Method)))
		return
	}
	body, err := sources.ReadBody(w, r, h.s.maxBody)
	if err != nil {
		status, label, reason := sources.ReadError(err)
		h.refuse(w, status, label, reason)
		return
	}
	events, rerr := ParseRequest(r.Header, body)
	if rerr != nil {
		h.refuse(w, rerr.Status, rerr.Label, rerr.Reason)
		return
	}
	if len(events) == 0 {
		// An empty batch (HTTP binding 3.3.2: "The batch MAY be empty"):
		// nothing to journal.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	err = h.in.Ingest(r.Context(), events)
	sources.AnswerIngest(w, r, h.in, events, err, h.s.log)
}

// refuse answers status with reason and counts it under label; the router
// logs it (sources.RefusalLogger).
func (h *handler) refuse(w http.ResponseWriter, status int, label, reason string) {
	sources.Refuse(w, h.in, status, label, reason)
}

// options answers the abuse-protection handshake of the CloudEvents web hook
// specification: with WebHook-Allowed-Origin and WebHook-Allowed-Rate when
// the WebHook-Request-Origin is allowed, without them otherwise. The rate is
// "*": the source does not throttle.
func (h *handler) options(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Allow", allow)
	if origin := r.Header.Get("WebHook-Request-Origin"); origin != "" {
		if granted, ok := h.s.grant(origin); ok {
			hd.Set("WebHook-Allowed-Origin", granted)
			hd.Set("WebHook-Allowed-Rate", "*")
		} else {
			h.s.log.Info("refused web hook handshake", "origin", sources.OneLine(origin))
		}
	}
	w.WriteHeader(http.StatusOK)
}

// grant returns the WebHook-Allowed-Origin value for origin.
func (s *Source) grant(origin string) (string, bool) {
	if s.anyOrigin {
		return "*", true
	}
	for _, o := range s.origins {
		if strings.EqualFold(o, origin) {
			return origin, true
		}
	}
	return "", false
}
