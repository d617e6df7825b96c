// Package webhook is the "webhook" sink: it delivers each event as one HTTP
// request (POST by default) in the CloudEvents HTTP binding's binary or
// structured content mode, and classifies the answer: 2xx is success; 408,
// 429, 5xx, network errors and timeouts are retried (honouring Retry-After);
// any other status is permanent.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "webhook"

// Defaults of Config.
const (
	DefaultFormat       = FormatBinary
	DefaultMethod       = http.MethodPost
	DefaultMaxIdleConns = 64
)

// Content modes of the CloudEvents HTTP binding.
const (
	// FormatBinary puts the attributes in ce- headers and the data in the
	// body, with datacontenttype as Content-Type.
	FormatBinary = "binary"
	// FormatStructured sends the whole event as application/cloudevents+json.
	FormatStructured = "structured"
)

const (
	// maxDrain bounds how much of a response body is read so that the
	// connection can be reused; a longer body closes the connection.
	maxDrain = 64 << 10
	// maxErrBody is how much of an error answer's body goes into the error.
	maxErrBody = 256
	// maxErrLen bounds the error text (it becomes junctionerror on dead
	// letters).
	maxErrLen = 300
)

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the webhook sink's config.
type Config struct {
	// URL is where events are sent: http or https. Required.
	URL string `yaml:"url"`
	// Format is the content mode: binary (default) or structured.
	Format string `yaml:"format"`
	// Method is POST (default) or PUT.
	Method string `yaml:"method"`
	// Headers are added to every request. Values may hold secrets: they
	// are never logged nor put in errors.
	Headers map[string]string `yaml:"headers"`
	// TLS configures https connections.
	TLS *TLS `yaml:"tls"`
	// MaxIdleConns bounds the keep-alive connections kept open to the
	// destination. Default 64.
	MaxIdleConns int `yaml:"maxIdleConns"`
}

// TLS configures the client side of https connections.
type TLS struct {
	// CAFile is a PEM file of the CA certificates that the server's
	// certificate must chain to, instead of the system's.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that ask for one (mutual TLS). Both or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
	// ServerName overrides the name checked in the server's certificate
	// (and sent as SNI).
	ServerName string `yaml:"serverName"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config {
	return &Config{Format: DefaultFormat, Method: DefaultMethod, MaxIdleConns: DefaultMaxIdleConns}
}

var _ sinks.Config = (*Config)(nil)

// reservedHeaders are set by the sink itself and cannot be configured.
var reservedHeaders = map[string]bool{
	"Content-Type":      true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Host":              true,
	"Connection":        true,
}

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	var errs []error
	u, err := parseURL(c.URL)
	if err != nil {
		errs = append(errs, config.FieldErrorf("url", "%v", err))
	}
	switch c.Format {
	case FormatBinary, FormatStructured:
	default:
		errs = append(errs, config.FieldErrorf("format", "must be binary or structured, not %q", c.Format))
	}
	switch c.Method {
	case http.MethodPost, http.MethodPut:
	default:
		errs = append(errs, config.FieldErrorf("method", "must be POST or PUT, not %q", c.Method))
	}
	names := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		path := "headers." + k
		canon := http.CanonicalHeaderKey(k)
		switch {
		case !validHeaderName(k):
			errs = append(errs, config.FieldErrorf(path, "invalid header name"))
		case reservedHeaders[canon] || strings.HasPrefix(canon, "Ce-"):
			errs = append(errs, config.FieldErrorf(path, "set by the sink; it cannot be configured"))
		case !validHeaderValue(c.Headers[k]):
			// Never echo the value: it may be a secret.
			errs = append(errs, config.FieldErrorf(path, "invalid header value (control characters are not allowed)"))
		}
	}
	if c.TLS != nil {
		if u != nil && u.Scheme != "https" {
			errs = append(errs, config.FieldErrorf("tls", "only applies to an https url"))
		}
		if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
			errs = append(errs, config.FieldErrorf("tls.keyFile", "required with tls.certFile"))
		}
		if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
			errs = append(errs, config.FieldErrorf("tls.certFile", "required with tls.keyFile"))
		}
	}
	if c.MaxIdleConns < 1 {
		errs = append(errs, config.FieldErrorf("maxIdleConns", "must be at least 1"))
	}
	return errors.Join(errs...)
}

func parseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid URL %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("missing host in %q", s)
	}
	return u, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
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

// validHeaderValue refuses control characters other than tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7F {
			return false
		}
	}
	return true
}

// Build reads the TLS files and makes the sink with its own HTTP client.
func (c *Config) Build(ctx context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return New(c, deps)
}

// New makes a webhook sink from a validated config.
func New(c *Config, deps sinks.Deps) (*Webhook, error) {
	u, err := parseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsConf, err := c.tlsConfig(u)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil && tlsConf.InsecureSkipVerify {
		log.Warn("webhook sink does not verify the server's TLS certificate (tls.insecureSkipVerify)")
	}
	maxIdle := c.MaxIdleConns
	if maxIdle < 1 {
		maxIdle = DefaultMaxIdleConns
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: dialer.DialContext,
		// One destination: keep as many idle connections to it as the
		// sink may use at once, so that bursts do not re-dial.
		MaxIdleConns:          maxIdle,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 0,
		// Answers are drained and dropped: do not ask for gzip.
		DisableCompression: true,
		TLSClientConfig:    tlsConf,
		// A custom TLS config turns HTTP/2 off unless asked for.
		ForceAttemptHTTP2: true,
	}
	h := make(http.Header, len(c.Headers)+1)
	h.Set("User-Agent", "junction")
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	w := &Webhook{
		url:        u.String(),
		display:    displayURL(u),
		method:     c.Method,
		structured: c.Format == FormatStructured,
		headers:    h,
		transport:  tr,
		client: &http.Client{
			Transport: tr,
			// A redirect of a POST would become a GET: report it instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if w.method == "" {
		w.method = DefaultMethod
	}
	log.Debug("webhook sink ready", "url", w.display, "format", c.Format, "method", w.method)
	return w, nil
}

func (c *Config) tlsConfig(u *url.URL) (*tls.Config, error) {
	if c.TLS == nil || u.Scheme != "https" {
		return nil, nil
	}
	t := c.TLS
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: t.InsecureSkipVerify,
		ServerName:         t.ServerName,
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read tls.caFile %s: no PEM certificate found", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls.certFile and tls.keyFile: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// displayURL is the URL as errors show it: without user info and query,
// which may hold credentials.
func displayURL(u *url.URL) string {
	d := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	s := d.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// Webhook is the webhook sink. It is safe for concurrent use.
type Webhook struct {
	url        string
	display    string
	method     string
	structured bool
	headers    http.Header
	transport  *http.Transport
	client     *http.Client
}

var _ sinks.Sink = (*Webhook)(nil)

// Deliver sends e in one request and classifies the outcome (see the
// package doc). ctx's deadline bounds the attempt.
func (w *Webhook) Deliver(ctx context.Context, e *event.Event) error {
	start := time.Now()
	req, err := w.request(ctx, e)
	if err != nil {
		return w.fail(sinks.Permanent(fmt.Errorf("encode event: %w", err)))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return w.transportError(ctx, start, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		drainClose(resp.Body)
		return nil
	}
	var snippet [maxErrBody]byte
	n, _ := io.ReadFull(resp.Body, snippet[:])
	drainClose(resp.Body)
	serr := sinks.HTTPStatusError(resp.StatusCode, resp.Header, time.Now())
	switch {
	case n == 0:
		return w.fail(serr)
	case n == len(snippet):
		// There may be more: say so even if the line has room.
		return w.failf(serr, "%s: %s…", serr.Error(), snippet[:n])
	}
	return w.failf(serr, "%s: %s", serr.Error(), snippet[:n])
}

func (w *Webhook) request(ctx context.Context, e *event.Event) (*http.Request, error) {
	var body []byte
	h := make(http.Header, len(w.headers)+12)
	for k, v := range w.headers {
		h[k] = v
	}
	if w.structured {
		b, err := e.MarshalJSON()
		if err != nil {
			return nil, err
		}
		body = b
		h[hdrContentType] = []string{structuredContentType}
	} else {
		if err := setBinaryHeaders(h, e); err != nil {
			return nil, err
		}
		body = e.Data()
	}
	req, err := http.NewRequestWithContext(ctx, w.method, w.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = h
	return req, nil
}

func (w *Webhook) transportError(ctx context.Context, start time.Time, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		d := time.Since(start)
		if dl, ok := ctx.Deadline(); ok {
			d = max(dl.Sub(start), 0)
		}
		return w.failf(sinks.Retryable(err, 0), "attempt timed out after %s (the delivery timeout)", roundDuration(d))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return w.failf(sinks.Retryable(err, 0), "%v", ue.Err)
	}
	return w.failf(sinks.Retryable(err, 0), "%v", err)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d
}

// fail wraps a classified error with the request line.
func (w *Webhook) fail(err error) error {
	return w.failf(err, "%v", err)
}

// failf returns an error that reads "METHOD URL: msg" on one bounded line
// and unwraps to err, which carries the classification.
func (w *Webhook) failf(err error, format string, args ...any) error {
	msg := w.method + " " + w.display + ": " + fmt.Sprintf(format, args...)
	return &deliveryError{msg: oneLine(msg, maxErrLen), err: err}
}

// deliveryError is a delivery failure whose text is made for users (one
// line, bounded) while Unwrap keeps the classification for sinks.Classify.
type deliveryError struct {
	msg string
	err error
}

func (e *deliveryError) Error() string { return e.msg }
func (e *deliveryError) Unwrap() error { return e.err }

// oneLine replaces runs of control characters, white space and invalid
// UTF-8 with one space, and cuts s to at most max bytes, marking a cut with
// "…".
func oneLine(s string, max int) string {
	var b strings.Builder
	b.Grow(min(len(s), max+8))
	space := false
	for _, r := range s {
		if r == utf8.RuneError || r <= ' ' || r >= 0x7F && r < 0xA0 || r == '\u2028' || r == '\u2029' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		if b.Len() > max {
			break
		}
	}
	out := b.String()
	if len(out) <= max {
		return out
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return strings.TrimRight(out[:cut], " ") + "…"
}

// drainClose reads what is left of a response body, up to maxDrain, so that
// the connection can carry the next request, then closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	_ = body.Close()
}

// Close closes the idle connections. No Deliver runs after Close.
func (w *Webhook) Close() error {
	w.transport.CloseIdleConnections()
	return nil
}
