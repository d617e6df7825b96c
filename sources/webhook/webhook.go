// Package webhook is the webhook source type: any HTTP request body becomes
// one CloudEvent. It is served on Junction's shared HTTP ingress at its path.
//
// The CloudEvent attributes are made from the request by expr-lang
// expressions (one per attribute), with defaults for id, source, type and
// datacontenttype. Requests can be authenticated by an HMAC-SHA256 signature
// (GitHub style) or by the Standard Webhooks scheme.
//
// A request is answered 202 only after the router has journaled the event.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

// Type is the source type name in the config.
const Type = "webhook"

// DefaultEventType is the CloudEvents type of an event when the config gives
// no type expression.
const DefaultEventType = "dev.junction.webhook"

func init() {
	sources.Register(Type, func() sources.Config { return NewConfig() })
}

var (
	_ sources.Config     = (*Config)(nil)
	_ sources.HTTPSource = (*Webhook)(nil)
)

// Config is the config of one webhook source.
type Config struct {
	// Path is the URL path served on the HTTP ingress; required, starts with "/".
	Path string `yaml:"path"`
	// Methods are the accepted HTTP methods. Default [POST].
	Methods []string `yaml:"methods"`
	// MaxBodySize bounds the request body (413 beyond). Default: the
	// ingress's http.maxBodySize.
	MaxBodySize config.ByteSize `yaml:"maxBodySize"`
	// Attributes maps CloudEvents attribute names to expressions.
	Attributes config.ExprMap `yaml:"attributes"`
	// Data is an expression whose result becomes the event data. Default:
	// the raw body with the request's content type.
	Data config.Expr `yaml:"data"`
	// Verify authenticates requests by their signature; optional.
	Verify *Verify `yaml:"verify"`

	compiled *compiled
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Methods: []string{http.MethodPost}}
}

// Validate checks the config and compiles its expressions.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, config.FieldErrorf("path", "required"))
	case !strings.HasPrefix(c.Path, "/"):
		errs = append(errs, config.FieldErrorf("path", "must start with \"/\", got %q", c.Path))
	case strings.ContainsAny(c.Path, " \t\r\n?#{}"):
		errs = append(errs, config.FieldErrorf("path", "must be a plain URL path (no spaces, '?', '#', '{' or '}'), got %q", c.Path))
	default:
		if _, err := url.ParseRequestURI(c.Path); err != nil {
			errs = append(errs, config.FieldErrorf("path", "%q is not a URL path: %v", c.Path, errors.Unwrap(err)))
		}
	}
	if c.Methods != nil && len(c.Methods) == 0 {
		errs = append(errs, config.FieldErrorf("methods", "list at least one method, or leave the key out for POST"))
	}
	for i, m := range c.Methods {
		key := fmt.Sprintf("methods[%d]", i)
		switch {
		case !isToken(m):
			errs = append(errs, config.FieldErrorf(key, "%q is not an HTTP method", m))
		case m != strings.ToUpper(m):
			errs = append(errs, config.FieldErrorf(key, "%q: HTTP methods are case-sensitive (did you mean %q?)", m, strings.ToUpper(m)))
		case slices.Index(c.Methods, m) < i:
			errs = append(errs, config.FieldErrorf(key, "%q is listed twice", m))
		}
	}
	if c.MaxBodySize < 0 {
		errs = append(errs, config.FieldErrorf("maxBodySize", "must be positive"))
	}
	if c.Verify != nil {
		if err := c.Verify.validate("verify"); err != nil {
			errs = append(errs, err)
		}
	}
	comp, cerrs := compile(c.Attributes, c.Data)
	errs = append(errs, cerrs...)
	if len(errs) > 0 {
		c.compiled = nil
		return errors.Join(errs...)
	}
	c.compiled = comp
	return nil
}

// Build makes the webhook source. The result is a *Webhook, a
// sources.HTTPSource.
func (c *Config) Build(_ context.Context, deps sources.Deps) (any, error) {
	if c.compiled == nil {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("build webhook source %q: %w", deps.Name, err)
		}
	}
	u, err := url.ParseRequestURI(c.Path)
	if err != nil {
		return nil, fmt.Errorf("build webhook source %q: parse path: %w", deps.Name, err)
	}
	w := &Webhook{
		source:   cetypes.URIRef{URL: *u},
		path:     c.Path,
		methods:  c.Methods,
		maxBody:  int64(c.MaxBodySize),
		compiled: c.compiled,
		log:      deps.Logger,
		now:      time.Now,
	}
	if len(w.methods) == 0 {
		w.methods = []string{http.MethodPost}
	}
	w.allow = strings.Join(w.methods, ", ")
	if w.maxBody == 0 {
		w.maxBody = deps.MaxBodySize
	}
	if w.maxBody <= 0 {
		w.maxBody = int64(config.DefaultMaxBodySize)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if c.Verify != nil {
		v, err := c.Verify.build()
		if err != nil {
			return nil, fmt.Errorf("build webhook source %q: %w", deps.Name, err)
		}
		w.verifier = v
		_, w.idFromHeader = v.(*standardVerifier)
	}
	return w, nil
}

// Webhook is a built webhook source.
type Webhook struct {
	path         string
	source       cetypes.URIRef // the default source: the path
	methods      []string
	allow        string
	maxBody      int64
	compiled     *compiled
	verifier     verifier
	idFromHeader bool // the webhook-id header is the default event id
	log          *slog.Logger
	now          func() time.Time
}

// Path returns the URL path the source answers on.
func (w *Webhook) Path() string { return w.path }

// Handler returns the handler that turns each request into one CloudEvent
// and hands it to in.
func (w *Webhook) Handler(in sources.Ingester) http.Handler {
	return &handler{w: w, in: in}
}

type handler struct {
	w  *Webhook
	in sources.Ingester
}

// Labels passed to Ingester.Rejected.
const (
	reasonMalformed    = "malformed"
	reasonTooLarge     = "too_large"
	reasonUnauthorized = "unauthorized"
	reasonMethod       = "method_not_allowed"
	reasonUnavailable  = "unavailable"
	reasonCancelled    = "cancelled" // the request ended before ingest did
	reasonInternal     = "internal"
)

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w := h.w
	if !slices.Contains(w.methods, r.Method) {
		rw.Header().Set("Allow", w.allow)
		h.reject(rw, r, http.StatusMethodNotAllowed, reasonMethod, "method "+r.Method+" not allowed (use "+w.allow+")")
		return
	}
	body, err := readBody(rw, r, w.maxBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.reject(rw, r, http.StatusRequestEntityTooLarge, reasonTooLarge, fmt.Sprintf("body larger than %d bytes", w.maxBody))
			return
		}
		h.reject(rw, r, http.StatusBadRequest, reasonMalformed, "read body: "+err.Error())
		return
	}
	if w.verifier != nil {
		if err := w.verifier.verify(r.Header, body, w.now()); err != nil {
			h.reject(rw, r, http.StatusUnauthorized, reasonUnauthorized, err.Error())
			return
		}
	}
	e, err := w.event(r, body)
	if err != nil {
		h.reject(rw, r, http.StatusBadRequest, reasonMalformed, err.Error())
		return
	}
	err = h.in.Ingest(r.Context(), []*event.Event{e})
	if err == nil {
		rw.WriteHeader(http.StatusAccepted)
		return
	}
	log := w.log.With("ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
	switch {
	case errors.Is(err, sources.ErrTooLarge):
		h.in.Rejected(reasonTooLarge)
		log.Debug("webhook: event too large for the journal", "err", err)
		http.Error(rw, "event too large for the journal", http.StatusRequestEntityTooLarge)
	case r.Context().Err() != nil:
		h.in.Rejected(reasonCancelled)
		log.Debug("webhook: request cancelled before the event was journaled", "err", err)
		rw.Header().Set("Retry-After", "1")
		http.Error(rw, "request cancelled before the event was stored, retry", http.StatusServiceUnavailable)
	case errors.Is(err, sources.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		h.in.Rejected(reasonUnavailable)
		log.Warn("webhook: journal unavailable", "err", err)
		rw.Header().Set("Retry-After", "1")
		http.Error(rw, "journal unavailable, retry later", http.StatusServiceUnavailable)
	default:
		h.in.Rejected(reasonInternal)
		log.Error("webhook: ingest failed", "err", err)
		http.Error(rw, "internal error: could not store the event", http.StatusInternalServerError)
	}
}

func (h *handler) reject(rw http.ResponseWriter, r *http.Request, status int, label, reason string) {
	h.in.Rejected(label)
	reason = oneLine(reason)
	h.w.log.Debug("webhook: request rejected", "status", status, "reason", reason, "remote", r.RemoteAddr)
	http.Error(rw, reason, status)
}

// readBody reads the whole body, at most limit bytes (*http.MaxBytesError
// beyond).
func readBody(rw http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body := http.MaxBytesReader(rw, r.Body, limit)
	size := 512
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1 // +1: see EOF without growing
	}
	b := make([]byte, 0, size)
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// maxReason bounds a reason sent back to the client.
const maxReason = 300

// oneLine makes s one line of at most maxReason bytes (and "..."), without
// control characters or invalid UTF-8.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return '?'
		case r < 0x20 || r == 0x7f:
			return ' '
		}
		return r
	}, s)
	if len(s) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// isToken reports whether s is an RFC 9110 token (a method or header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
