// Package cehttp holds what the HTTP sinks (webhook, function) share: the
// CloudEvents HTTP binding in both directions (binary-mode headers written
// and read with the spec's percent-encoding, structured mode), the client
// side of an HTTP destination (URL, headers, TLS, keep-alive transport),
// the classification of its failures, and one-line bounded error texts.
package cehttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/internal/text"
	"github.com/junctionhq/junction/sinks"
)

const (
	// maxDrain bounds how much of a response body is read so that the
	// connection can be reused; a longer body closes the connection.
	maxDrain = 64 << 10
	// maxErrBody is how much of an error answer's body goes into the error.
	maxErrBody = 256
	// MaxErrLen bounds error texts (they become junctionerror on dead
	// letters).
	MaxErrLen = 300
)

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

// ParseURL checks an http or https destination URL; its errors are made
// to follow "url: ".
func ParseURL(s string) (*url.URL, error) {
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
	if u.Scheme == "" && !strings.HasPrefix(s, "/") || u.Opaque != "" && u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q has no scheme (did you mean %q?)", s, "http://"+s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("missing host in %q", s)
	}
	return u, nil
}

// DisplayURL is the URL as errors show it: without user info and query,
// which may hold credentials.
func DisplayURL(u *url.URL) string {
	d := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	s := d.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// reservedHeaders are set by the sink itself and cannot be configured.
var reservedHeaders = map[string]bool{
	"Content-Type":      true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Host":              true,
	"Connection":        true,
}

// ValidateHeaders checks configured request headers (the key "headers"):
// valid names, no header the sink sets itself (Content-Type, ce-*, ...), no
// control characters in values. Values are never echoed: they may be
// secrets.
func ValidateHeaders(headers map[string]string) []error {
	var errs []error
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		path := "headers." + k
		canon := http.CanonicalHeaderKey(k)
		switch {
		case !text.IsToken(k):
			errs = append(errs, config.FieldErrorf(path, "invalid header name"))
		case reservedHeaders[canon] || strings.HasPrefix(canon, "Ce-"):
			errs = append(errs, config.FieldErrorf(path, "set by the sink; it cannot be configured"))
		case !validHeaderValue(headers[k]):
			errs = append(errs, config.FieldErrorf(path, "invalid header value (control characters are not allowed)"))
		}
	}
	return errs
}

// ValidateTLS checks the key "tls" for a destination URL u (nil when the
// URL is invalid).
func ValidateTLS(t *TLS, u *url.URL) []error {
	if t == nil {
		return nil
	}
	var errs []error
	if u != nil && u.Scheme != "https" {
		errs = append(errs, config.FieldErrorf("tls", "only applies to an https url"))
	}
	if t.CertFile != "" && t.KeyFile == "" {
		errs = append(errs, config.FieldErrorf("tls.keyFile", "required with tls.certFile"))
	}
	if t.KeyFile != "" && t.CertFile == "" {
		errs = append(errs, config.FieldErrorf("tls.certFile", "required with tls.keyFile"))
	}
	return errs
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

// tlsConfig reads the files of t; nil for an http URL or without t.
func tlsConfig(t *TLS, u *url.URL) (*tls.Config, error) {
	if t == nil || u.Scheme != "https" {
		return nil, nil
	}
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

// Options configure a Sender.
type Options struct {
	// URL is the destination, checked with ParseURL.
	URL string
	// Method is POST or PUT.
	Method string
	// Structured sends application/cloudevents+json; else binary mode.
	Structured bool
	// Headers are added to every request.
	Headers map[string]string
	// TLS configures https connections; nil for the defaults.
	TLS *TLS
	// MaxIdleConns bounds the keep-alive connections kept to the
	// destination.
	MaxIdleConns int
	// Kind names the sink in log lines, e.g. "webhook sink".
	Kind string
	// Logger receives a warning when certificates are not verified.
	Logger *slog.Logger
	// Name is the sink's name, for the delivery id of a signature when a
	// request is made outside the router.
	Name string
	// Sign adds Standard Webhooks signatures; nil for none.
	Sign *Sign
}

// Sender sends events to one HTTP destination over keep-alive connections.
// It is safe for concurrent use.
type Sender struct {
	url        *url.URL
	display    string
	method     string
	structured bool
	headers    http.Header
	transport  *http.Transport
	client     *http.Client
	name       string
	signer     *Signer
}

// NewSender reads the TLS files and makes a Sender with its own transport.
func NewSender(o Options) (*Sender, error) {
	u, err := ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsConf, err := tlsConfig(o.TLS, u)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil && tlsConf.InsecureSkipVerify {
		log.Warn(o.Kind + " does not verify the server's TLS certificate (tls.insecureSkipVerify)")
	}
	maxIdle := max(o.MaxIdleConns, 1)
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
		// Answers are small or dropped, and read with a bound: do not ask
		// for gzip.
		DisableCompression: true,
		TLSClientConfig:    tlsConf,
		// A custom TLS config turns HTTP/2 off unless asked for.
		ForceAttemptHTTP2: true,
	}
	h := make(http.Header, len(o.Headers)+1)
	h.Set("User-Agent", "junction")
	for k, v := range o.Headers {
		h.Set(k, v)
	}
	method := o.Method
	if method == "" {
		method = http.MethodPost
	}
	var signer *Signer
	if o.Sign != nil {
		if signer, err = NewSigner(o.Sign); err != nil {
			return nil, err
		}
	}
	return &Sender{
		name:       o.Name,
		signer:     signer,
		url:        u,
		display:    DisplayURL(u),
		method:     method,
		structured: o.Structured,
		headers:    h,
		transport:  tr,
		client: &http.Client{
			Transport: tr,
			// A redirect of a POST would become a GET: report it instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Display is the destination as errors and logs show it.
func (s *Sender) Display() string { return s.display }

// Method is the request method.
func (s *Sender) Method() string { return s.method }

// Send sends e in one request. It returns the response, whatever its
// status, or an error made by Failf: permanent when e cannot be encoded,
// retryable for network errors and timeouts. The caller closes the body
// (DrainClose).
func (s *Sender) Send(ctx context.Context, e *event.Event) (*http.Response, error) {
	start := time.Now()
	req, err := s.request(ctx, e)
	if err != nil {
		return nil, s.Fail(sinks.Permanent(fmt.Errorf("encode event: %w", err)))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, s.transportError(ctx, start, err)
	}
	return resp, nil
}

func (s *Sender) request(ctx context.Context, e *event.Event) (*http.Request, error) {
	var body []byte
	h := make(http.Header, len(s.headers)+12)
	for k, v := range s.headers {
		h[k] = v
	}
	if s.structured {
		b, err := cejson.Marshal(e)
		if err != nil {
			return nil, err
		}
		body = b
		h[HeaderContentType] = []string{StructuredContentType}
	} else {
		if err := SetBinaryHeaders(h, e); err != nil {
			return nil, err
		}
		body = e.Data()
	}
	setTrace(ctx, h)
	if s.signer != nil {
		s.signer.SetHeaders(h, sinks.DeliveryID(ctx, s.name, e), time.Now(), body)
	}
	// The URL was parsed once; each request gets its own copy.
	req, err := http.NewRequestWithContext(ctx, s.method, "", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	u := *s.url
	req.URL, req.Header = &u, h
	return req, nil
}

// Deliver sends e and reads the answer as a delivery: nil for 2xx (the
// body is drained), else the classified StatusError.
func (s *Sender) Deliver(ctx context.Context, e *event.Event) error {
	resp, err := s.Send(ctx, e)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		DrainClose(resp.Body)
		return nil
	}
	return s.StatusError(resp)
}

// BatchContentType is the media type of a batch-mode request: a JSON array
// of events in the CloudEvents JSON format. It has no charset parameter
// (JSON is UTF-8): sdk-go's receivers recognise a batch only by the bare
// media type.
const BatchContentType = mediaBatch

// DeliverBatch sends events in one request in the CloudEvents HTTP
// binding's batch mode (a JSON array of structured events) and returns one
// error per event: the answer to the request is every event's, classified
// as for Deliver (Retry-After honoured); an event that cannot be encoded
// fails permanently and is left out of the request.
func (s *Sender) DeliverBatch(ctx context.Context, events []*event.Event) []error {
	start := time.Now()
	errs := make([]error, len(events))
	var body bytes.Buffer
	body.WriteByte('[')
	n := 0
	for i, e := range events {
		b, err := cejson.Marshal(e)
		if err != nil {
			errs[i] = s.Fail(sinks.Permanent(fmt.Errorf("encode event %s: %w", e.ID(), err)))
			continue
		}
		if n > 0 {
			body.WriteByte(',')
		}
		body.Write(b)
		n++
	}
	body.WriteByte(']')
	if n == 0 {
		return errs
	}
	err := s.sendBatch(ctx, start, sent(events, errs), body.Bytes())
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	return errs
}

func (s *Sender) sendBatch(ctx context.Context, start time.Time, events []*event.Event, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, s.method, "", bytes.NewReader(body))
	if err != nil {
		return s.Fail(sinks.Permanent(err))
	}
	h := make(http.Header, len(s.headers)+1)
	for k, v := range s.headers {
		h[k] = v
	}
	h[HeaderContentType] = []string{BatchContentType}
	// No traceparent header: the request carries the attempts of several
	// deliveries; each event has its traceparent extension.
	if s.signer != nil {
		s.signer.SetHeaders(h, s.batchID(events), time.Now(), body)
	}
	u := *s.url
	req.URL, req.Header = &u, h
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(ctx, start, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		DrainClose(resp.Body)
		return nil
	}
	return s.StatusError(resp)
}

// StatusError classifies a response that is not 2xx with
// sinks.HTTPStatusError, adds the start of its body to the text, and closes
// the body.
func (s *Sender) StatusError(resp *http.Response) error {
	var snippet [maxErrBody]byte
	n, _ := io.ReadFull(resp.Body, snippet[:])
	DrainClose(resp.Body)
	serr := sinks.HTTPStatusError(resp.StatusCode, resp.Header, time.Now())
	switch {
	case n == 0:
		return s.Fail(serr)
	case n == len(snippet):
		// There may be more: say so even if the line has room.
		return s.Failf(serr, "%s: %s…", serr.Error(), snippet[:n])
	}
	return s.Failf(serr, "%s: %s", serr.Error(), snippet[:n])
}

// TimeoutError is the error of an attempt that began at start and ran out
// of time: its timeout is the attempt timeout (sinks.AttemptTimeout).
func (s *Sender) TimeoutError(ctx context.Context, start time.Time, err error) error {
	return s.Failf(sinks.Retryable(err, 0), "attempt timed out after %s (the delivery timeout)", sinks.AttemptTimeout(ctx, start))
}

func (s *Sender) transportError(ctx context.Context, start time.Time, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return s.TimeoutError(ctx, start, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return s.Failf(sinks.Retryable(err, 0), "%v", ue.Err)
	}
	return s.Failf(sinks.Retryable(err, 0), "%v", err)
}

// Fail wraps a classified error with the request line.
func (s *Sender) Fail(err error) error {
	return s.Failf(err, "%v", err)
}

// Failf returns an error that reads "METHOD URL: msg" on one bounded line
// and unwraps to cls, which carries the classification.
func (s *Sender) Failf(cls error, format string, args ...any) error {
	msg := s.method + " " + s.display + ": " + fmt.Sprintf(format, args...)
	return &sinks.Failure{Msg: text.OneLine(msg, MaxErrLen), Err: cls}
}

// Close closes the idle connections.
func (s *Sender) Close() {
	s.transport.CloseIdleConnections()
}

// DrainClose reads what is left of a response body, up to 64 KiB, so that
// the connection can carry the next request, then closes it.
func DrainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	_ = body.Close()
}

// sent are the events of a batch that went into its request (those
// without an encoding error).
func sent(events []*event.Event, errs []error) []*event.Event {
	out := make([]*event.Event, 0, len(events))
	for i, e := range events {
		if errs[i] == nil {
			out = append(out, e)
		}
	}
	return out
}

// setTrace writes the W3C trace context of the delivery attempt of ctx, if
// any, as the traceparent and tracestate headers.
func setTrace(ctx context.Context, h http.Header) {
	tp, ts := sinks.TraceOf(ctx)
	if tp == "" {
		return
	}
	h["Traceparent"] = []string{tp}
	if ts != "" {
		h["Tracestate"] = []string{ts}
	}
}

// batchID is the webhook-id of a batch request: the delivery ids of its
// events hashed together, so that a batch sent again as it was keeps its id.
func (s *Sender) batchID(events []*event.Event) string {
	h := sha256.New()
	for _, e := range events {
		h.Write([]byte(sinks.DeliveryID(context.Background(), s.name, e)))
	}
	var sum [sha256.Size]byte
	return "batch_" + base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16])
}
