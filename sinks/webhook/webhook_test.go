package webhooksink

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"

	shared "github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/sinks"
)

// received is one request as the test server saw it.
type received struct {
	method     string
	path       string
	protoMajor int
	header     http.Header
	body       []byte
	peerCN     string
}

// recorder is a loopback HTTP server that records requests and answers
// with a configurable status, Retry-After and body.
type recorder struct {
	srv        *httptest.Server
	mu         sync.Mutex
	reqs       []received
	status     atomic.Int64
	retryAfter atomic.Value // string
	body       atomic.Value // string
	newConns   atomic.Int64
}

func newRecorder(t testing.TB, tlsMode string, tweak func(*httptest.Server)) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.status.Store(http.StatusAccepted)
	rec.retryAfter.Store("")
	rec.body.Store("")
	rec.srv = httptest.NewUnstartedServer(http.HandlerFunc(rec.serve))
	rec.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected TLS handshake failures
	rec.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rec.newConns.Add(1)
		}
	}
	if tweak != nil {
		tweak(rec.srv)
	}
	switch tlsMode {
	case "":
		rec.srv.Start()
	case "h2":
		rec.srv.EnableHTTP2 = true
		rec.srv.StartTLS()
	default:
		rec.srv.StartTLS()
	}
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got := received{method: r.Method, path: r.URL.Path, protoMajor: r.ProtoMajor, header: r.Header.Clone(), body: body}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		got.peerCN = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, got)
	rec.mu.Unlock()
	status := int(rec.status.Load())
	if ra := rec.retryAfter.Load().(string); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, rec.body.Load().(string))
}

func (rec *recorder) last(t *testing.T) received {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("the server received no request")
	}
	return rec.reqs[len(rec.reqs)-1]
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

func build(t testing.TB, c *Config) *Webhook {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := c.Build(context.Background(), sinks.Deps{Name: "hook"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.(*Webhook)
}

func cfgFor(url string) *Config {
	c := NewConfig()
	c.URL = url
	return c
}

func deliver(t testing.TB, w *Webhook, e *event.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Deliver(ctx, e)
}

// testEvent has every optional attribute, extensions of several types, and
// values that need percent-encoding in headers.
func testEvent(t testing.TB) *event.Event {
	t.Helper()
	e := event.New()
	e.SetID("evt-1")
	e.SetSource("/orders/eu")
	e.SetType("com.example.order.created")
	e.SetSubject(`order 42 ✓ "quoted" 100%`)
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600)))
	e.SetDataSchema("https://example.com/schemas/order.json")
	e.SetExtension("tenant", "acme corp")
	e.SetExtension("attempt", 3)
	e.SetExtension("vip", true)
	if err := e.SetData(event.ApplicationJSON, map[string]any{"amount": 150}); err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return &e
}

// sameEvent compares the attributes, extensions (by their canonical string
// form: binary mode carries no types) and data of two events.
func sameEvent(t *testing.T, got, want *event.Event) {
	t.Helper()
	attrs := func(e *event.Event) map[string]string {
		m := map[string]string{
			"specversion":     e.SpecVersion(),
			"id":              e.ID(),
			"source":          e.Source(),
			"type":            e.Type(),
			"subject":         e.Subject(),
			"dataschema":      e.DataSchema(),
			"datacontenttype": e.DataContentType(),
			"data":            string(e.Data()),
		}
		if !e.Time().IsZero() {
			m["time"] = e.Time().UTC().Format(time.RFC3339Nano)
		}
		for k, v := range e.Extensions() {
			s, err := types.Format(v)
			if err != nil {
				t.Fatalf("format extension %s: %v", k, err)
			}
			m["ext:"+k] = s
		}
		return m
	}
	g, w := attrs(got), attrs(want)
	for k, wv := range w {
		if gv, ok := g[k]; !ok || gv != wv {
			t.Errorf("%s: got %q, want %q", k, gv, wv)
		}
	}
	for k, gv := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("unexpected %s = %q", k, gv)
		}
	}
}

func TestDeliverBinary(t *testing.T) {
	rec := newRecorder(t, "", nil)
	c := cfgFor(rec.srv.URL + "/hook")
	c.Headers = map[string]string{"Authorization": "Bearer s3cret", "X-Team": "billing"}
	w := build(t, c)
	e := testEvent(t)
	if err := deliver(t, w, e); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := rec.last(t)
	if got.method != http.MethodPost || got.path != "/hook" {
		t.Errorf("request: got %s %s, want POST /hook", got.method, got.path)
	}
	wantHeaders := map[string]string{
		"Ce-Specversion": "1.0",
		"Ce-Id":          "evt-1",
		"Ce-Source":      "/orders/eu",
		"Ce-Type":        "com.example.order.created",
		"Ce-Subject":     "order%2042%20%E2%9C%93%20%22quoted%22%20100%25",
		"Ce-Time":        "2024-05-06T05:08:09.123456789Z",
		"Ce-Dataschema":  "https://example.com/schemas/order.json",
		"Ce-Tenant":      "acme%20corp",
		"Ce-Attempt":     "3",
		"Ce-Vip":         "true",
		"Content-Type":   "application/json",
		"Authorization":  "Bearer s3cret",
		"X-Team":         "billing",
		"User-Agent":     "junction",
	}
	for k, want := range wantHeaders {
		if v := got.header.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("header %s: got %q, want [%q]", k, v, want)
		}
	}
	nce := 0
	for k := range got.header {
		if strings.HasPrefix(k, "Ce-") {
			nce++
		}
	}
	if nce != 10 {
		t.Errorf("got %d ce- headers, want 10: %v", nce, got.header)
	}
	if string(got.body) != `{"amount":150}` {
		t.Errorf("body: got %q", got.body)
	}

	// Percent-decoding the headers gives back the attribute values.
	for k, want := range map[string]string{"Ce-Subject": e.Subject(), "Ce-Tenant": "acme corp"} {
		dec, err := url.PathUnescape(got.header.Get(k))
		if err != nil || dec != want {
			t.Errorf("decoded %s: got %q (%v), want %q", k, dec, err, want)
		}
	}
}

// sdk-go's receiver reads what the sink sends back into the same event
// (with values that need no percent-encoding: sdk-go does not decode it).
func TestDeliverBinaryReadBySDK(t *testing.T) {
	rec := newRecorder(t, "", nil)
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	e := testEvent(t)
	e.SetSubject("order-42")
	e.SetExtension("tenant", "acme")
	e.SetData("text/plain", []byte("hello"))
	if err := deliver(t, w, e); err != nil {
		t.Fatal(err)
	}
	got := rec.last(t)
	back, err := binding.ToEvent(context.Background(), cehttp.NewMessage(got.header, io.NopCloser(bytes.NewReader(got.body))))
	if err != nil {
		t.Fatalf("sdk-go ToEvent: %v", err)
	}
	sameEvent(t, back, e)
}

func TestDeliverStructured(t *testing.T) {
	rec := newRecorder(t, "", nil)
	c := cfgFor(rec.srv.URL + "/hook")
	c.Format = FormatStructured
	c.Method = http.MethodPut
	c.Headers = map[string]string{"X-Api-Key": "k"}
	w := build(t, c)
	for _, e := range []*event.Event{testEvent(t), func() *event.Event {
		e := testEvent(t)
		e.SetData("application/octet-stream", []byte{0, 1, 2, 0xFF})
		return e
	}()} {
		if err := deliver(t, w, e); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		got := rec.last(t)
		if got.method != http.MethodPut {
			t.Errorf("method: got %s, want PUT", got.method)
		}
		if ct := got.header.Get("Content-Type"); ct != "application/cloudevents+json; charset=utf-8" {
			t.Errorf("Content-Type: got %q", ct)
		}
		if got.header.Get("X-Api-Key") != "k" {
			t.Errorf("X-Api-Key: got %q", got.header.Get("X-Api-Key"))
		}
		for k := range got.header {
			if strings.HasPrefix(k, "Ce-") {
				t.Errorf("structured mode sent header %s", k)
			}
		}
		var back event.Event
		if err := back.UnmarshalJSON(got.body); err != nil {
			t.Fatalf("body is not a CloudEvent: %v\n%s", err, got.body)
		}
		sameEvent(t, &back, e)
		// And sdk-go's HTTP receiver agrees.
		sdk, err := binding.ToEvent(context.Background(), cehttp.NewMessage(got.header, io.NopCloser(bytes.NewReader(got.body))))
		if err != nil {
			t.Fatalf("sdk-go ToEvent: %v", err)
		}
		sameEvent(t, sdk, e)
	}
}

func TestDeliverV03Event(t *testing.T) {
	rec := newRecorder(t, "", nil)
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	e := event.New(event.CloudEventsVersionV03)
	e.SetID("old 1")
	e.SetSource("/legacy")
	e.SetType("com.example.legacy")
	e.SetExtension("region", "eu west")
	e.SetData("text/plain", "hi")
	if err := deliver(t, w, &e); err != nil {
		t.Fatal(err)
	}
	got := rec.last(t)
	for k, want := range map[string]string{
		"Ce-Specversion": "0.3", "Ce-Id": "old%201", "Ce-Source": "/legacy",
		"Ce-Type": "com.example.legacy", "Ce-Region": "eu%20west", "Content-Type": "text/plain",
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("header %s: got %q, want %q", k, v, want)
		}
	}
	if string(got.body) != "hi" {
		t.Errorf("body: got %q", got.body)
	}
}

func TestDeliverStatuses(t *testing.T) {
	rec := newRecorder(t, "", nil)
	c := cfgFor(rec.srv.URL + "/hook")
	c.Headers = map[string]string{"Authorization": "Bearer s3cret-token"}
	w := build(t, c)
	now := time.Now()
	prefix := "POST " + rec.srv.URL + "/hook: "
	cases := []struct {
		status     int
		retryAfter string
		body       string
		wantErr    string // "" for success
		permanent  bool
		after      time.Duration // at least, and within 2s for dates
	}{
		{status: 200},
		{status: 201, body: "created"},
		{status: 202},
		{status: 204},
		{status: 299},
		{status: 301, wantErr: "HTTP 301 Moved Permanently", permanent: true},
		{status: 302, wantErr: "HTTP 302 Found", permanent: true},
		{status: 400, body: "missing field\r\n\tamount\x00", wantErr: "HTTP 400 Bad Request: missing field amount", permanent: true},
		{status: 401, retryAfter: "5", wantErr: "HTTP 401 Unauthorized", permanent: true},
		{status: 404, body: "no such hook", wantErr: "HTTP 404 Not Found: no such hook", permanent: true},
		{status: 408, wantErr: "HTTP 408 Request Timeout"},
		{status: 409, wantErr: "HTTP 409 Conflict", permanent: true},
		{status: 410, wantErr: "HTTP 410 Gone", permanent: true},
		{status: 413, wantErr: "HTTP 413 Request Entity Too Large", permanent: true},
		{status: 422, body: `{"error":"bad"}`, wantErr: `HTTP 422 Unprocessable Entity: {"error":"bad"}`, permanent: true},
		{status: 429, retryAfter: "7", wantErr: "HTTP 429 Too Many Requests", after: 7 * time.Second},
		{status: 500, body: "boom", wantErr: "HTTP 500 Internal Server Error: boom"},
		{status: 502, wantErr: "HTTP 502 Bad Gateway"},
		{status: 503, retryAfter: now.Add(90 * time.Second).UTC().Format(http.TimeFormat), wantErr: "HTTP 503 Service Unavailable", after: 88 * time.Second},
		{status: 504, retryAfter: "99999", wantErr: "HTTP 504 Gateway Timeout", after: sinks.MaxRetryAfter},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			rec.status.Store(int64(tc.status))
			rec.retryAfter.Store(tc.retryAfter)
			rec.body.Store(tc.body)
			err := deliver(t, w, testEvent(t))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got success, want %q", tc.wantErr)
			}
			if err.Error() != prefix+tc.wantErr {
				t.Errorf("error:\n got %q\nwant %q", err.Error(), prefix+tc.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows a header value: %q", err)
			}
			perm, after := sinks.Classify(err)
			if perm != tc.permanent {
				t.Errorf("permanent: got %v, want %v", perm, tc.permanent)
			}
			if after < tc.after || tc.after > 0 && after > tc.after+2*time.Second || tc.after == 0 && after != 0 {
				t.Errorf("retry after: got %v, want %v", after, tc.after)
			}
		})
	}
}

func TestDeliverErrorIsOneBoundedLine(t *testing.T) {
	rec := newRecorder(t, "", nil)
	rec.status.Store(http.StatusInternalServerError)
	rec.body.Store(strings.Repeat("line\r\n\x00\x1b[31m é ", 2000) + "\xff\xfe")
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	err := deliver(t, w, testEvent(t))
	if err == nil {
		t.Fatal("got success")
	}
	msg := err.Error()
	if len(msg) > shared.MaxErrLen {
		t.Errorf("error is %d bytes, want at most %d: %q", len(msg), shared.MaxErrLen, msg)
	}
	if !strings.HasSuffix(msg, "…") || !strings.HasPrefix(msg, "POST "+rec.srv.URL+"/hook: HTTP 500 Internal Server Error: line [31m é line") {
		t.Errorf("error: %q", msg)
	}
	for _, r := range msg {
		if r < ' ' || r == 0x7F {
			t.Fatalf("error has control character %q: %q", r, msg)
		}
	}
}

func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder(t, "", func(s *httptest.Server) {
		inner := s.Config.Handler
		s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			inner.ServeHTTP(w, r)
		})
	})
	defer close(release)
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	ctx, cancel := sinks.WithAttemptTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := w.Deliver(ctx, testEvent(t))
	if err == nil {
		t.Fatal("got success, want a timeout")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Deliver took %v after a 150ms deadline", took)
	}
	want := "POST " + rec.srv.URL + "/hook: attempt timed out after 150ms (the delivery timeout)"
	if err.Error() != want {
		t.Errorf("error:\n got %q\nwant %q", err, want)
	}
	if perm, after := sinks.Classify(err); perm || after != 0 {
		t.Errorf("Classify: got permanent=%v after=%v, want retryable", perm, after)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap context.DeadlineExceeded")
	}
}

func TestDeliverConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w := build(t, cfgFor("http://"+addr+"/hook?token=secret"))
	err = deliver(t, w, testEvent(t))
	if err == nil {
		t.Fatal("got success")
	}
	want := "POST http://" + addr + "/hook?…: dial tcp " + addr + ": connect: connection refused"
	if err.Error() != want {
		t.Errorf("error:\n got %q\nwant %q", err, want)
	}
	if perm, _ := sinks.Classify(err); perm {
		t.Error("a refused connection is permanent, want retryable")
	}
}

func TestDeliverUnencodable(t *testing.T) {
	rec := newRecorder(t, "", nil)
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	e := event.New(event.CloudEventsVersionV03)
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	e.Context.(*event.EventContextV03).Extensions = map[string]any{"bad-name": "x"}
	err := deliver(t, w, &e)
	want := "POST " + rec.srv.URL + `/hook: encode event: extension name "bad-name" is not valid (lower-case letters and digits only)`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %q", err, want)
	}
	if perm, _ := sinks.Classify(err); !perm {
		t.Error("an unencodable event is retryable, want permanent")
	}
	if rec.count() != 0 {
		t.Error("the server received a request")
	}
}

func TestConnectionReuse(t *testing.T) {
	rec := newRecorder(t, "", nil)
	w := build(t, cfgFor(rec.srv.URL+"/hook"))
	e := testEvent(t)
	for i := 0; i < 200; i++ {
		if err := deliver(t, w, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := rec.newConns.Load(); n != 1 {
		t.Errorf("200 sequential deliveries opened %d connections, want 1", n)
	}
	// Error answers with a body are drained: the connection stays.
	rec.status.Store(http.StatusServiceUnavailable)
	rec.body.Store(strings.Repeat("busy ", 2000))
	for i := 0; i < 100; i++ {
		if err := deliver(t, w, e); err == nil {
			t.Fatal("got success from a 503")
		}
	}
	if n := rec.newConns.Load(); n != 1 {
		t.Errorf("after 100 error answers: %d connections, want 1", n)
	}
	// Concurrent deliveries use at most one connection each.
	rec.status.Store(http.StatusOK)
	const workers = 8
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := deliver(t, w, e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// net/http may dial once more for a request that then gets a freed
	// connection first; the extra connection joins the pool. So the bound
	// is per worker with that slack, far below one per request.
	if n := rec.newConns.Load(); n > 2*workers {
		t.Errorf("%d concurrent workers opened %d connections for %d requests", workers, n, workers*50)
	}
	if got := rec.count(); got != 200+100+workers*50 {
		t.Errorf("server got %d requests, want %d", got, 200+100+workers*50)
	}
}

// writeCA writes the test server's certificate as a PEM CA file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeClientCert writes a self-signed client certificate and its key.
func writeClientCert(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	rec := newRecorder(t, "h2", nil)
	ca := writeCA(t, rec.srv)
	e := testEvent(t)

	t.Run("caFile, HTTP/2, one connection", func(t *testing.T) {
		c := cfgFor(rec.srv.URL + "/hook")
		c.TLS = &TLS{CAFile: ca}
		w := build(t, c)
		before := rec.newConns.Load()
		for i := 0; i < 50; i++ {
			if err := deliver(t, w, e); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
		}
		if got := rec.last(t); got.protoMajor != 2 {
			t.Errorf("got HTTP/%d, want HTTP/2", got.protoMajor)
		}
		if got := rec.last(t).header.Get("Ce-Subject"); got != "order%2042%20%E2%9C%93%20%22quoted%22%20100%25" {
			t.Errorf("Ce-Subject over HTTP/2: %q", got)
		}
		if n := rec.newConns.Load() - before; n != 1 {
			t.Errorf("50 deliveries opened %d connections, want 1", n)
		}
	})
	t.Run("serverName", func(t *testing.T) {
		// httptest's certificate is valid for example.com.
		c := cfgFor(rec.srv.URL + "/hook")
		c.TLS = &TLS{CAFile: ca, ServerName: "example.com"}
		if err := deliver(t, build(t, c), e); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		c.TLS.ServerName = "wrong.test"
		err := deliver(t, build(t, c), e)
		if err == nil || !strings.Contains(err.Error(), "not wrong.test") {
			t.Fatalf("got %v, want a name mismatch", err)
		}
	})
	t.Run("system roots refuse a self-signed CA", func(t *testing.T) {
		err := deliver(t, build(t, cfgFor(rec.srv.URL+"/hook")), e)
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") ||
			!strings.HasPrefix(err.Error(), "POST "+rec.srv.URL+"/hook: ") {
			t.Fatalf("got %v, want an unknown authority error", err)
		}
		if perm, _ := sinks.Classify(err); perm {
			t.Error("a TLS failure is permanent, want retryable")
		}
	})
	t.Run("insecureSkipVerify", func(t *testing.T) {
		c := cfgFor(rec.srv.URL + "/hook")
		c.TLS = &TLS{InsecureSkipVerify: true}
		if err := deliver(t, build(t, c), e); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	})
}

func TestMutualTLS(t *testing.T) {
	rec := newRecorder(t, "tls", func(s *httptest.Server) {
		s.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	})
	ca := writeCA(t, rec.srv)
	certFile, keyFile := writeClientCert(t, "junction-test")
	c := cfgFor(rec.srv.URL + "/hook")
	c.TLS = &TLS{CAFile: ca, CertFile: certFile, KeyFile: keyFile}
	if err := deliver(t, build(t, c), testEvent(t)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if cn := rec.last(t).peerCN; cn != "junction-test" {
		t.Errorf("server saw client certificate %q, want junction-test", cn)
	}
	// Without a client certificate the handshake fails.
	c.TLS = &TLS{CAFile: ca}
	if err := deliver(t, build(t, c), testEvent(t)); err == nil {
		t.Error("got success without a client certificate")
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name string
		tls  TLS
		want string
	}{
		{"missing CA", TLS{CAFile: missing}, "read tls.caFile: open " + missing + ": no such file or directory"},
		{"CA without PEM", TLS{CAFile: bad}, "read tls.caFile " + bad + ": no PEM certificate found"},
		{"missing cert", TLS{CertFile: missing, KeyFile: bad}, "load tls.certFile and tls.keyFile: open " + missing + ": no such file or directory"},
		{"bad cert", TLS{CertFile: bad, KeyFile: bad}, "load tls.certFile and tls.keyFile: tls: failed to find any PEM data in certificate input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfgFor("https://127.0.0.1:1/hook")
			c.TLS = &tc.tls
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			_, err := c.Build(context.Background(), sinks.Deps{Name: "hook"})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Build:\n got %v\nwant %q", err, tc.want)
			}
		})
	}
}
