// Package webhooksource is the webhook source type: any HTTP request body becomes
// one CloudEvent. It is served on Junction's shared HTTP ingress at its path.
//
// The CloudEvent attributes are made from the request by expr-lang
// expressions (one per attribute), with defaults for id, source, type and
// datacontenttype. Requests can be authenticated by an HMAC-SHA256 signature
// (GitHub style) or by the Standard Webhooks scheme.
//
// A request is answered 202 only after the router has journaled the event.
package webhooksource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/text"
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
	if err := sources.CheckPath(c.Path); err != nil {
		errs = append(errs, err)
	}
	if c.Methods != nil && len(c.Methods) == 0 {
		errs = append(errs, config.FieldErrorf("methods", "list at least one method, or leave the key out for POST"))
	}
	for i, m := range c.Methods {
		key := fmt.Sprintf("methods[%d]", i)
		switch {
		case !text.IsToken(m):
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

var _ sources.HTTPConfig = (*Config)(nil)

// HTTPPath is the path the source answers on.
func (c *Config) HTTPPath() string { return c.Path }

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
		maxBody:  deps.BodyLimit(c.MaxBodySize),
		compiled: c.compiled,
		log:      deps.Logger,
		now:      time.Now,
	}
	if len(w.methods) == 0 {
		w.methods = []string{http.MethodPost}
	}
	w.allow = strings.Join(w.methods, ", ")
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if c.Verify != nil {
		v, err := c.Verify.build()
		if err != nil {
			return nil, fmt.Errorf("build webhook source %q: %w", deps.Name, err)
		}
		w.verifier = v
		if sv, ok := v.(*standardVerifier); ok {
			w.idFromHeader = true
			w.replay = newReplayGuard(sv.tolerance, MaxReplayIDs, w.log)
		}
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
	idFromHeader bool         // the webhook-id header is the default event id
	replay       *replayGuard // standard-webhooks: the webhook-ids ingested within the tolerance
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

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w := h.w
	if !slices.Contains(w.methods, r.Method) {
		rw.Header().Set("Allow", w.allow)
		h.reject(rw, r, http.StatusMethodNotAllowed, sources.ReasonMethodNotAllowed, "method "+r.Method+" not allowed (use "+w.allow+")")
		return
	}
	body, err := sources.ReadBody(rw, r, w.maxBody)
	if err != nil {
		status, label, reason := sources.ReadError(err)
		h.reject(rw, r, status, label, reason)
		return
	}
	var msg signedMessage
	if w.verifier != nil {
		if msg, err = w.verifier.verify(r.Header, body, w.now()); err != nil {
			h.reject(rw, r, http.StatusUnauthorized, sources.ReasonUnauthorized, err.Error())
			return
		}
	}
	e, err := w.event(r, body)
	if err != nil {
		h.reject(rw, r, http.StatusBadRequest, sources.ReasonMalformed, err.Error())
		return
	}
	events := []*event.Event{e}
	// A Standard Webhooks message is ingested once per webhook-id within
	// the tolerance: a replay, or a retry of a message already journaled, is
	// answered 202 so that the sender stops, and counted.
	done := func(bool) {}
	if w.replay != nil && msg.id != "" {
		dup, release, err := w.replay.claim(r.Context(), msg.id, msg.ts, w.now)
		switch {
		case err != nil:
			h.reject(rw, r, http.StatusServiceUnavailable, sources.ReasonCancelled, "request cancelled while a request with the same webhook-id was being ingested; retry")
			return
		case dup:
			w.log.Debug("webhook: webhook-id already ingested; answered 202 without ingesting it again",
				"webhook_id", text.OneLine(msg.id, 100), "remote", r.RemoteAddr)
			h.in.Rejected(ReasonDuplicate)
			rw.WriteHeader(http.StatusAccepted)
			return
		}
		done = release
		defer release(false) // if Ingest panics; no-op after the call below
	}
	err = h.in.Ingest(r.Context(), events)
	done(err == nil) // before answering: the sender's next try sees it
	sources.AnswerIngest(rw, r, h.in, events, err, w.log)
}

// reject answers status with reason and counts it under label; the router
// logs it (sources.RefusalLogger).
func (h *handler) reject(rw http.ResponseWriter, r *http.Request, status int, label, reason string) {
	sources.Refuse(rw, h.in, status, label, reason)
}
