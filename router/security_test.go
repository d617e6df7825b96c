package router

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/testcerts"
	"github.com/junctionhq/junction/sources"
)

// ingestSource is a source type for these tests served on the ingress at
// its path: each request becomes one event (its body the data), answered
// 202 once journaled.
type ingestSource struct {
	Path string `yaml:"path"`
}

func (c *ingestSource) Validate() error  { return nil }
func (c *ingestSource) HTTPPath() string { return c.Path }
func (c *ingestSource) Build(context.Context, sources.Deps) (any, error) {
	return ingestHandler{c.Path}, nil
}

type ingestHandler struct{ path string }

func (h ingestHandler) Path() string { return h.path }
func (h ingestHandler) Handler(in sources.Ingester) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		e := event.New()
		e.SetID(req.Header.Get("Ce-Id"))
		e.SetSource("/test")
		e.SetType("test")
		e.SetData("text/plain", body)
		if err := in.Ingest(req.Context(), []*event.Event{&e}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

func init() {
	sources.Register("test-ingest", func() sources.Config { return &ingestSource{} })
}

// runWithAdmin runs plan like runRouter, with its admin API on a free port.
func runWithAdmin(t *testing.T, p *Plan) *Router {
	t.Helper()
	p.Config.HTTP.Listen = "127.0.0.1:0"
	p.Config.Admin.Listen = "127.0.0.1:0"
	r, err := New(context.Background(), p, Options{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	eventually(t, 5*time.Second, "ready", r.Ready)
	return r
}

func send(t *testing.T, c *http.Client, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestIngressGuard(t *testing.T) {
	p := compile(t, `
sources:
  - name: tokens
    type: test-ingest
    path: /tokens
    auth:
      bearer: [t0ken-a, t0ken-b]
  - name: users
    type: test-ingest
    path: /users
    auth:
      basic: {alice: s3cret}
  - name: limited
    type: test-ingest
    path: /limited
    rateLimit: {rate: 1/h, burst: 2}
  - name: open
    type: test-ingest
    path: /open
sinks:
  - {name: recguard, type: test-recorder}
routes:
  - {name: all, to: [recguard]}
`)
	p.Config.HTTP.MaxHeaderBytes = 2048
	r := startRouter(t, p)
	base := "http://" + r.IngressAddr()
	c := &http.Client{}
	tests := []struct {
		path   string
		header map[string]string
		status int
		// challenge is the WWW-Authenticate of a 401.
		challenge string
	}{
		{path: "/tokens", status: 401, challenge: `Bearer realm="junction source tokens"`},
		{path: "/tokens", header: map[string]string{"Authorization": "Bearer wrong"}, status: 401, challenge: `Bearer realm="junction source tokens"`},
		{path: "/tokens", header: map[string]string{"Authorization": "Bearer t0ken-a-longer"}, status: 401, challenge: `Bearer realm="junction source tokens"`},
		{path: "/tokens", header: map[string]string{"Authorization": "Basic dDBrZW4tYTp4"}, status: 401, challenge: `Bearer realm="junction source tokens"`},
		{path: "/tokens", header: map[string]string{"Authorization": "Bearer t0ken-a", "Ce-Id": "1"}, status: 202},
		{path: "/tokens", header: map[string]string{"Authorization": "bearer t0ken-b", "Ce-Id": "2"}, status: 202},
		{path: "/users", header: map[string]string{"Authorization": "Bearer s3cret"}, status: 401, challenge: `Basic realm="junction source users", charset="UTF-8"`},
		// alice:wrong, bob:s3cret
		{path: "/users", header: map[string]string{"Authorization": "Basic YWxpY2U6d3Jvbmc="}, status: 401, challenge: `Basic realm="junction source users", charset="UTF-8"`},
		{path: "/users", header: map[string]string{"Authorization": "Basic Ym9iOnMzY3JldA=="}, status: 401, challenge: `Basic realm="junction source users", charset="UTF-8"`},
		// alice:s3cret
		{path: "/users", header: map[string]string{"Authorization": "Basic YWxpY2U6czNjcmV0", "Ce-Id": "3"}, status: 202},
		{path: "/open", header: map[string]string{"Ce-Id": "4"}, status: 202},
		{path: "/open", header: map[string]string{"X-Big": strings.Repeat("x", 3000)}, status: 431},
		{path: "/limited", header: map[string]string{"Ce-Id": "5"}, status: 202},
		{path: "/limited", header: map[string]string{"Ce-Id": "6"}, status: 202},
		{path: "/limited", header: map[string]string{"Ce-Id": "7"}, status: 429},
	}
	for _, tt := range tests {
		resp, body := send(t, c, "POST", base+tt.path, tt.header)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %v: %d %s, want %d", tt.path, tt.header, resp.StatusCode, body, tt.status)
			continue
		}
		if got := strings.Join(resp.Header.Values("WWW-Authenticate"), "; "); got != tt.challenge {
			t.Errorf("%s %v: WWW-Authenticate %q, want %q", tt.path, tt.header, got, tt.challenge)
		}
		if tt.status == 429 {
			// A token of 1/h comes back within the hour.
			if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" || len(ra) > 4 {
				t.Errorf("429: Retry-After %q, want the seconds until a request is allowed", ra)
			}
		}
	}
	rec := recorderNamed("recguard")
	eventually(t, 5*time.Second, "6 events delivered", func() bool { return len(rec.got()) >= 6 })
	var ids []string
	for _, e := range rec.got() {
		ids = append(ids, e.ID())
	}
	if got := strings.Join(sorted(ids), ","); got != "1,2,3,4,5,6" {
		t.Errorf("delivered %s, want 1,2,3,4,5,6: the events of the accepted requests only", got)
	}
	m := r.Metrics()
	for _, c := range []struct {
		source, reason string
		want           float64
	}{{"tokens", "unauthorized", 4}, {"users", "unauthorized", 3}, {"open", ReasonHeaderTooLarge, 1}, {"limited", ReasonRateLimited, 1}} {
		if got := value(m.Rejected.WithLabelValues(c.source, c.reason)); got != c.want {
			t.Errorf("rejected{source=%s,reason=%s} = %v, want %v", c.source, c.reason, got, c.want)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestAdminGuard(t *testing.T) {
	for _, open := range []bool{false, true} {
		p := compile(t, `
admin:
  auth:
    bearer: [adm1n-token]
sources:
  - {name: a, type: test-ingest, path: /a}
sinks:
  - {name: rec2, type: test-recorder}
routes:
  - {name: all, to: [rec2]}
`)
		p.Config.Admin.Auth.OpenMetrics = open
		r := runWithAdmin(t, p)
		base := "http://" + r.AdminAddr()
		c := &http.Client{}
		token := map[string]string{"Authorization": "Bearer adm1n-token"}
		metrics := 401
		if open {
			metrics = 200
		}
		tests := []struct {
			path   string
			header map[string]string
			status int
		}{
			{"/healthz", nil, 200},
			{"/readyz", nil, 200},
			{"/metrics", nil, metrics},
			{"/metrics", token, 200},
			{"/api/v1/deadletters", nil, 401},
			{"/api/v1/deadletters", map[string]string{"Authorization": "Bearer nope"}, 401},
			{"/api/v1/deadletters", token, 200},
			// The console's page and assets hold no data: the page asks
			// for a token.
			{"/", nil, 200},
			{"/console/app.js", nil, 200},
			{"/api/v1/tail", nil, 401},
			{"/api/v1/unknown", nil, 401},
			{"/api/v1/unknown", token, 404},
		}
		for _, tt := range tests {
			resp, body := send(t, c, "GET", base+tt.path, tt.header)
			if resp.StatusCode != tt.status {
				t.Errorf("openMetrics %v: GET %s %v: %d %s, want %d", open, tt.path, tt.header, resp.StatusCode, body, tt.status)
				continue
			}
			if tt.status != 401 {
				continue
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.HasPrefix(e.Error, "unauthorized") {
				t.Errorf("GET %s: 401 body %q, want {\"error\": \"unauthorized...\"}", tt.path, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="junction admin"` {
				t.Errorf("GET %s: WWW-Authenticate %q", tt.path, got)
			}
		}
	}
}

// tlsSetup writes a CA's server pair with serial 1 into dir and returns
// the CA and the file names.
func tlsSetup(t *testing.T) (ca *testcerts.CA, certFile, keyFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcerts.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Server(1)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	if err := pair.Write(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, certFile, keyFile, caFile
}

func TestTLSReload(t *testing.T) {
	ca, certFile, keyFile, _ := tlsSetup(t)
	p := compile(t, `
http:
  tls:
    certFile: `+certFile+`
    keyFile: `+keyFile+`
sources:
  - {name: a, type: test-ingest, path: /a}
sinks:
  - {name: rec3, type: test-recorder}
routes:
  - {name: all, to: [rec3]}
`)
	r := startRouter(t, p)
	addr := r.IngressAddr()
	serial := func(want int64) func() bool {
		return func() bool {
			got, err := testcerts.PeerSerial(addr, ca.Pool())
			return err == nil && got == want
		}
	}
	eventually(t, 5*time.Second, "serial 1", serial(1))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	if resp, body := send(t, c, "POST", "https://"+addr+"/a", map[string]string{"Ce-Id": "1"}); resp.StatusCode != 202 {
		t.Fatalf("POST over TLS: %d %s", resp.StatusCode, body)
	}
	// Renamed over.
	pair2, _ := ca.Server(2)
	if err := pair2.Rename(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "serial 2 after a rename", serial(2))
	// Written in place.
	pair3, _ := ca.Server(3)
	if err := pair3.Write(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "serial 3 after a write in place", serial(3))
	// A key that does not load: the pair in use stays.
	// (A look between the writes of a certificate and its key may have
	// counted a failure already: the pair did not match for a moment.)
	reloads := r.Metrics().TLSReloads
	failed := value(reloads.WithLabelValues("http", "error"))
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The files are looked at by handshakes.
	eventually(t, 10*time.Second, "a failed reload counted", func() bool {
		testcerts.PeerSerial(addr, ca.Pool())
		return value(reloads.WithLabelValues("http", "error")) == failed+1
	})
	if !serial(3)() {
		t.Error("after a bad key: the server no longer serves the certificate with serial 3")
	}
	if got := value(reloads.WithLabelValues("http", "ok")); got != 2 {
		t.Errorf("reloads ok = %v, want 2", got)
	}
}

func TestMutualTLS(t *testing.T) {
	ca, certFile, keyFile, caFile := tlsSetup(t)
	p := compile(t, `
http:
  tls:
    certFile: `+certFile+`
    keyFile: `+keyFile+`
    clientCAFile: `+caFile+`
sources:
  - {name: a, type: test-ingest, path: /a}
sinks:
  - {name: rec4, type: test-recorder}
routes:
  - {name: all, to: [rec4]}
`)
	r := startRouter(t, p)
	url := "https://" + r.IngressAddr() + "/a"
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	if resp, err := anon.Post(url, "text/plain", strings.NewReader("x")); err == nil {
		resp.Body.Close()
		t.Fatalf("without a client certificate: %s, want the handshake to fail", resp.Status)
	}
	other, _ := testcerts.NewCA("other CA")
	for _, tc := range []struct {
		name string
		ca   *testcerts.CA
		ok   bool
	}{{"a certificate of another CA", other, false}, {"a certificate of the CA", ca, true}} {
		pair, err := tc.ca.Client(10, "producer")
		if err != nil {
			t.Fatal(err)
		}
		cert, err := pair.TLS()
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}}}
		resp, err := c.Post(url, "text/plain", strings.NewReader("x"))
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.ok && resp.StatusCode != 202:
			t.Errorf("%s: %s, want 202", tc.name, resp.Status)
		case !tc.ok && err == nil:
			t.Errorf("%s: %s, want the handshake to fail", tc.name, resp.Status)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}
