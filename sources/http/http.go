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
	"io"
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
	switch {
	case c.Path == "":
		errs = append(errs, config.FieldErrorf("path", "required: the URL path to serve, such as /events"))
	case !strings.HasPrefix(c.Path, "/"):
		errs = append(errs, config.FieldErrorf("path", "must start with \"/\", got %q", c.Path))
	case strings.ContainsAny(c.Path, "?# \t\r\n"):
		errs = append(errs, config.FieldErrorf("path", "must be a plain path without spaces, '?' or '#', got %q", c.Path))
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

// Build makes the source. It does no I/O: the router serves Handler on the
// shared listener.
func (c *Config) Build(_ context.Context, deps sources.Deps) (any, error) {
	limit := int64(c.MaxBodySize)
	if limit <= 0 {
		limit = deps.MaxBodySize
	}
	if limit <= 0 {
		limit = int64(config.DefaultMaxBodySize)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		path:    c.Path,
		maxBody: limit,
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
		h.refuse(w, &RequestError{
			Status: http.StatusMethodNotAllowed,
			Reason: oneLine(fmt.Sprintf("method %s not allowed: send events with POST", quote(r.Method))),
			Label:  ReasonMethodNotAllowed,
		})
		return
	}
	body, rerr := h.readBody(w, r)
	if rerr != nil {
		h.refuse(w, rerr)
		return
	}
	events, rerr := ParseRequest(r.Header, body)
	if rerr != nil {
		h.refuse(w, rerr)
		return
	}
	ctx := r.Context()
	err := h.in.Ingest(ctx, events)
	if err == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	e := events[0]
	log := h.s.log.With("ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source(), "events", len(events))
	switch {
	case errors.Is(err, sources.ErrUnavailable):
		log.Warn("refused events: journal unavailable", "error", err)
		h.unavailable(w, ReasonUnavailable, "journal unavailable; retry later")
	case errors.Is(err, sources.ErrTooLarge):
		h.refuse(w, &RequestError{Status: http.StatusRequestEntityTooLarge, Reason: "event too large for the journal", Label: ReasonTooLarge})
	case ctx.Err() != nil:
		// The client is gone or the server is shutting down. Never let
		// net/http answer 200 for events that were not journaled.
		log.Debug("ingest cancelled", "error", err)
		h.unavailable(w, ReasonCancelled, "request cancelled before the events were journaled; retry")
	case errors.Is(err, context.DeadlineExceeded):
		log.Warn("refused events: journal too slow", "error", err)
		h.unavailable(w, ReasonUnavailable, "journal too slow; retry later")
	default:
		log.Error("ingest events", "error", err)
		h.refuse(w, &RequestError{Status: http.StatusInternalServerError, Reason: oneLine("ingest events: " + err.Error()), Label: ReasonInternal})
	}
}

// readBody reads the whole body, refusing it beyond the limit.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *RequestError) {
	limit := h.s.maxBody
	if r.ContentLength > limit {
		return nil, h.tooLarge()
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	var body []byte
	var err error
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(rd, body)
	} else {
		body, err = io.ReadAll(rd)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, h.tooLarge()
		}
		return nil, malformed("read body: %v", err)
	}
	return body, nil
}

func (h *handler) tooLarge() *RequestError {
	return &RequestError{
		Status: http.StatusRequestEntityTooLarge,
		Reason: fmt.Sprintf("body over the limit of %s", config.ByteSize(h.s.maxBody)),
		Label:  ReasonTooLarge,
	}
}

func (h *handler) unavailable(w http.ResponseWriter, label, reason string) {
	w.Header().Set("Retry-After", "1")
	h.refuse(w, &RequestError{Status: http.StatusServiceUnavailable, Reason: reason, Label: label})
}

// refuse answers e and counts it.
func (h *handler) refuse(w http.ResponseWriter, e *RequestError) {
	h.in.Rejected(e.Label)
	if e.Status < 500 {
		h.s.log.Debug("refused request", "status", e.Status, "reason", e.Label, "detail", e.Reason)
	}
	http.Error(w, e.Reason, e.Status)
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
			h.s.log.Info("refused web hook handshake", "origin", oneLine(origin))
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
