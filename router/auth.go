package router

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/console"
	"github.com/junctionhq/junction/sources"
)

// Reasons of junction_events_rejected_total that the router's guard of a
// source (see guard) counts, besides the sources' own.
const (
	ReasonRateLimited    = "rate_limited"
	ReasonHeaderTooLarge = "header_too_large"
)

// maxAuthorization bounds the Authorization header that is parsed.
const maxAuthorization = 4096

// credentials are the hashes of the secrets that a request may present:
// bearer tokens, and basic users with their passwords. A presented secret
// is hashed and compared with every one in constant time, so that neither
// which one matched nor how much of it, nor its length, shows in the time
// taken.
type credentials struct {
	bearer [][32]byte
	basic  [][32]byte // of "user:password"
	realm  string
}

func newCredentials(realm string, bearer []string, basic map[string]string) *credentials {
	c := &credentials{realm: realm}
	for _, t := range bearer {
		c.bearer = append(c.bearer, sha256.Sum256([]byte(t)))
	}
	for u, p := range basic {
		c.basic = append(c.basic, sha256.Sum256([]byte(u+":"+p)))
	}
	return c
}

// check reports whether the Authorization header h carries a known
// credential.
func (c *credentials) check(h string) bool {
	scheme, param, ok := parseAuthorization(h)
	if !ok {
		return false
	}
	switch scheme {
	case "bearer":
		return anyEqual(c.bearer, sha256.Sum256([]byte(param)))
	case "basic":
		user, pass, ok := parseBasic(param)
		if !ok {
			return false
		}
		return anyEqual(c.basic, sha256.Sum256([]byte(user+":"+pass)))
	}
	return false
}

// anyEqual compares h with every one of known, all of them whatever
// matched.
func anyEqual(known [][32]byte, h [32]byte) bool {
	match := 0
	for i := range known {
		match |= subtle.ConstantTimeCompare(known[i][:], h[:])
	}
	return match == 1
}

// challenge sets WWW-Authenticate: one challenge per scheme c accepts.
func (c *credentials) challenge(w http.ResponseWriter) {
	if len(c.bearer) > 0 {
		w.Header().Add("WWW-Authenticate", fmt.Sprintf("Bearer realm=%q", c.realm))
	}
	if len(c.basic) > 0 {
		w.Header().Add("WWW-Authenticate", fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", c.realm))
	}
}

// parseAuthorization splits an Authorization header into its scheme (in
// lower case: "bearer" or "basic") and its parameter (RFC 9110 section
// 11.6.2: the scheme, one or more spaces, the credentials). ok is false for
// any other scheme, an empty parameter, a header over maxAuthorization
// bytes, or one with control characters or spaces inside the parameter.
func parseAuthorization(h string) (scheme, param string, ok bool) {
	if len(h) > maxAuthorization {
		return "", "", false
	}
	s, p, found := strings.Cut(h, " ")
	if !found {
		return "", "", false
	}
	switch {
	case strings.EqualFold(s, "bearer"):
		scheme = "bearer"
	case strings.EqualFold(s, "basic"):
		scheme = "basic"
	default:
		return "", "", false
	}
	p = strings.TrimLeft(p, " ")
	p = strings.TrimRight(p, " \t")
	if p == "" {
		return "", "", false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return "", "", false
		}
	}
	return scheme, p, true
}

// parseBasic decodes the parameter of a Basic Authorization header into a
// user and a password (RFC 7617: base64 of "user:password").
func parseBasic(param string) (user, pass string, ok bool) {
	b, err := base64.StdEncoding.DecodeString(param)
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	if !ok || user == "" {
		return "", "", false
	}
	return user, pass, true
}

// guard wraps the handler of source sp with what the router checks before
// the source reads the body: the size of the request's header (431), its
// credentials (auth: 401 with WWW-Authenticate) and the source's rate
// limit (429 with Retry-After). A refused request is counted in
// junction_events_rejected_total{source,reason} and nothing of it is
// journaled.
func (r *Router) guard(sp *SourcePlan, h http.Handler) http.Handler {
	name := sp.Plugin.Name
	rejected := r.metrics.Rejected.MustCurryWith(prometheus.Labels{"source": name})
	maxHeader := int(r.plan.Config.HTTP.MaxHeaderBytes)
	var creds *credentials
	if a := sp.Plugin.Auth; a != nil {
		creds = newCredentials("junction source "+name, a.Bearer, a.Basic)
	}
	var lim *rate.Limiter
	if rl := sp.Plugin.RateLimit; rl != nil {
		lim = rate.NewLimiter(rate.Limit(rl.PerSecond), rl.Burst)
	}
	// Refusals are logged once per logEvery at most, with how many there
	// were and the last client's address (never what it sent).
	var authLog, rateLog logLimiter
	log := r.log.With("source", name)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if maxHeader > 0 && headerSize(req) > maxHeader {
			rejected.WithLabelValues(ReasonHeaderTooLarge).Inc()
			http.Error(w, fmt.Sprintf("request header over %d bytes", maxHeader), http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		if creds != nil && !creds.check(req.Header.Get("Authorization")) {
			rejected.WithLabelValues(sources.ReasonUnauthorized).Inc()
			if ok, n := authLog.allow(time.Now()); ok {
				log.Warn("requests refused: no valid credentials (401)", "count", n, "remote", req.RemoteAddr)
			}
			creds.challenge(w)
			msg := "unauthorized: missing credentials"
			if req.Header.Get("Authorization") != "" {
				msg = "unauthorized: invalid credentials"
			}
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		if lim != nil {
			if wait := reserve(lim, time.Now()); wait > 0 {
				rejected.WithLabelValues(ReasonRateLimited).Inc()
				if ok, n := rateLog.allow(time.Now()); ok {
					log.Warn("requests refused: over the source's rateLimit (429)", "count", n, "remote", req.RemoteAddr)
				}
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				http.Error(w, fmt.Sprintf("rate limit of source %q exceeded", name), http.StatusTooManyRequests)
				return
			}
		}
		h.ServeHTTP(w, req)
	})
}

// reserve takes a token of lim at now, or says how long until one is free
// (and then takes none).
func reserve(lim *rate.Limiter, now time.Time) time.Duration {
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second
	}
	wait := res.DelayFrom(now)
	if wait > 0 {
		res.CancelAt(now)
	}
	return wait
}

// headerSize is about the size of the request's header on the wire: the
// request line and each field.
func headerSize(req *http.Request) int {
	n := len(req.Method) + len(req.RequestURI) + len(req.Proto) + len(req.Host) + 4
	for k, vs := range req.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// adminGuard asks for a token of admin.auth on every path of the admin API
// but those of adminOpen (the probes, /metrics with openMetrics, the
// console's assets): 401 with WWW-Authenticate and a JSON error otherwise.
// It wraps the whole admin handler, so that a route added to it is
// protected.
func (r *Router) adminGuard(h http.Handler) http.Handler {
	a := r.plan.Config.Admin.Auth
	if a == nil {
		return h
	}
	creds := newCredentials("junction admin", a.Bearer, nil)
	var authLog logLimiter
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == consoleSession {
			ok := creds.check(req.Header.Get("Authorization"))
			if !ok && req.Header.Get("Authorization") != "" {
				r.metrics.AdminUnauthorized.Inc()
			}
			writeJSON(w, http.StatusOK, sessionJSON{Auth: true, SignedIn: ok})
			return
		}
		if adminOpen(req.URL.Path, a.OpenMetrics) || creds.check(req.Header.Get("Authorization")) {
			h.ServeHTTP(w, req)
			return
		}
		r.metrics.AdminUnauthorized.Inc()
		if ok, n := authLog.allow(time.Now()); ok {
			r.log.Warn("admin API requests refused: no valid token (401)", "count", n, "remote", req.RemoteAddr, "path", oneLine(req.URL.Path, 200))
		}
		creds.challenge(w)
		msg := "unauthorized: this admin API needs a token (Authorization: Bearer TOKEN; junction CLI: --token or $JUNCTION_ADMIN_TOKEN)"
		if req.Header.Get("Authorization") != "" {
			msg = "unauthorized: invalid token"
		}
		apiError(w, http.StatusUnauthorized, msg)
	})
}

// consoleSession is where the console asks, without a 401 (which a
// browser logs as an error), whether the admin API needs a token and
// whether the one it holds works: GET /console/session answers
// {"auth": bool, "signedIn": bool}.
const consoleSession = console.Prefix + "session"

// sessionJSON is the answer of GET /console/session.
type sessionJSON struct {
	Auth     bool `json:"auth"`
	SignedIn bool `json:"signedIn"`
}

// adminOpen reports whether an admin path is served without a token:
// the probes, /metrics with openMetrics, and the console's page and assets,
// which hold no data (the page asks for a token and calls /api/* with it).
func adminOpen(path string, openMetrics bool) bool {
	switch path {
	case "/healthz", "/readyz", "/":
		return true
	case "/metrics":
		return openMetrics
	}
	return strings.HasPrefix(path, console.Prefix)
}

// sourcePlan returns the plan of the source named name.
func (r *Router) sourcePlan(name string) *SourcePlan {
	for i := range r.plan.Sources {
		if r.plan.Sources[i].Plugin.Name == name {
			return &r.plan.Sources[i]
		}
	}
	return &SourcePlan{Plugin: config.Plugin{Name: name}}
}

// securityMetrics makes and registers the series of TLS and admin auth.
func (m *Metrics) securityMetrics() {
	m.TLSReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "junction_tls_reloads_total",
		Help: "Changes of a listener's certificate files taken (result ok) or refused because they did not load (result error; the previous certificate stays).",
	}, []string{"listener", "result"})
	m.TLSExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "junction_tls_certificate_expiry_seconds",
		Help: "When the certificate a listener serves expires (Unix time).",
	}, []string{"listener"})
	m.AdminUnauthorized = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "junction_admin_unauthorized_total",
		Help: "Admin API requests refused with 401 (no or a wrong token).",
	})
	m.Registry.MustRegister(m.TLSReloads, m.TLSExpiry, m.AdminUnauthorized)
}
