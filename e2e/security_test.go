package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/testcerts"
)

// certs writes a CA, a server pair of serial 1 for 127.0.0.1 and a client
// pair of that CA into dir.
type certs struct {
	ca                       *testcerts.CA
	certFile, keyFile, caPEM string
	client                   tls.Certificate
}

func newCerts(t *testing.T, dir string) *certs {
	t.Helper()
	ca, err := testcerts.NewCA("e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	c := &certs{ca: ca, certFile: filepath.Join(dir, "server.crt"), keyFile: filepath.Join(dir, "server.key"), caPEM: filepath.Join(dir, "ca.crt")}
	server, err := ca.Server(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Write(c.certFile, c.keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.caPEM, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client(100, "producer")
	if err != nil {
		t.Fatal(err)
	}
	if c.client, err = client.TLS(); err != nil {
		t.Fatal(err)
	}
	return c
}

// httpsClient trusts pool and presents the client certificates given.
func httpsClient(pool *x509.CertPool, client ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: client},
	}}
}

// call sends a request with c and returns the response (its body read
// into the string).
func call(t *testing.T, c *http.Client, method, url string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
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

// startTLS runs junction serve on the config text (see writeConfig) with
// env, its listeners on HTTPS, and waits until /readyz answers 200 to c.
func startTLS(t *testing.T, dir, text string, c *http.Client, env ...string) *junction {
	t.Helper()
	cfg, ingest, admin := writeConfig(t, dir, text)
	j := &junction{t: t, dir: dir, cfg: cfg, env: env,
		ingest: strings.Replace(ingest, "http://", "https://", 1),
		admin:  strings.Replace(admin, "http://", "https://", 1)}
	runTLS(t, j, c)
	return j
}

// runTLS starts j and waits until its admin API answers /readyz with 200
// to c.
func runTLS(t *testing.T, j *junction, c *http.Client) {
	t.Helper()
	j.stdout, j.stderr = &plugintest.LogBuffer{}, &plugintest.LogBuffer{}
	j.cmd = exec.Command(binary, "serve", "--config", j.cfg)
	j.cmd.Dir = j.dir
	j.cmd.Env = append(os.Environ(), j.env...)
	j.cmd.Stdout, j.cmd.Stderr = j.stdout, j.stderr
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j.exited = make(chan struct{})
	go func() { j.cmd.Wait(); close(j.exited) }()
	t.Cleanup(j.stop)
	waitReady(t, "junction", 60*time.Second, j.exited, j.stderr, func() bool {
		resp, err := c.Get(j.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestSecureEdge runs junction with HTTPS on ingress and admin, a bearer
// token on one source, basic users on a webhook source, a rate limit on a
// third, and a token on the admin API; then rotates the certificate.
func TestSecureEdge(t *testing.T) {
	dir := t.TempDir()
	cs := newCerts(t, dir)
	hook := newSink(t, ok)
	c := httpsClient(cs.ca.Pool())
	j := startTLS(t, dir, `
http:
  listen: "{{HTTP}}"
  tls: {certFile: `+cs.certFile+`, keyFile: `+cs.keyFile+`}
admin:
  listen: "{{ADMIN}}"
  tls: {certFile: `+cs.certFile+`, keyFile: `+cs.keyFile+`}
  auth:
    bearer:
      - ${ADMIN_TOKEN}
journal: {dir: "{{DATA}}"}
sources:
  - name: events
    type: http
    path: /events
    auth:
      bearer:
        - ${INGEST_TOKEN}
  - name: hooks
    type: webhook
    path: /hooks
    auth:
      basic:
        ci: ${CI_PASSWORD}
  - name: slow
    type: http
    path: /slow
    rateLimit: {rate: 1/h, burst: 1}
sinks:
  - {name: hook, type: webhook, url: "`+hook.url+`"}
routes:
  - {name: all, to: [hook]}
`, c, "ADMIN_TOKEN=adm1n-t0ken", "INGEST_TOKEN=ingest-t0ken", "CI_PASSWORD=ci-pw")
	ce := func(id string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": id, "ce-source": "/e2e", "ce-type": "t"}
	}
	with := func(h map[string]string, k, v string) map[string]string { h[k] = v; return h }

	// Ingress: 401 without or with a wrong token, nothing journaled; 202 with.
	for _, h := range []map[string]string{ce("no-token"), with(ce("wrong"), "Authorization", "Bearer ingest-t0ke")} {
		resp, body := call(t, c, "POST", j.ingest+"/events", h, `{}`)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="junction source events"` {
			t.Errorf("POST /events %v: %s %q, WWW-Authenticate %q; want 401 with a Bearer challenge", h["Authorization"], resp.Status, body, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if resp, body := call(t, c, "POST", j.ingest+"/events", with(ce("good"), "Authorization", "Bearer ingest-t0ken"), `{}`); resp.StatusCode != 202 {
		t.Errorf("POST /events with the token: %s %s", resp.Status, body)
	}
	// The webhook source with basic authentication.
	if resp, _ := call(t, c, "POST", j.ingest+"/hooks", map[string]string{"Authorization": "Basic Y2k6bm8="}, `{"a":1}`); resp.StatusCode != 401 ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="junction source hooks"`) {
		t.Errorf("POST /hooks ci:no: %s, WWW-Authenticate %q; want 401 with a Basic challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest("POST", j.ingest+"/hooks", strings.NewReader(`{"a":1}`))
	req.SetBasicAuth("ci", "ci-pw")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 202 {
		t.Errorf("POST /hooks as ci: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The rate limit: one request an hour.
	if resp, body := call(t, c, "POST", j.ingest+"/slow", ce("slow-1"), `{}`); resp.StatusCode != 202 {
		t.Errorf("first POST /slow: %s %s", resp.Status, body)
	}
	resp, body := call(t, c, "POST", j.ingest+"/slow", ce("slow-2"), `{}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second POST /slow: %s %q, Retry-After %q; want 429 with Retry-After", resp.Status, body, resp.Header.Get("Retry-After"))
	}
	plugintest.Eventually(t, 10*time.Second, "3 events at the sink", func() bool { return hook.count() >= 3 })
	if ids := hook.ids(); len(ids) != 3 || ids["good"] != 1 || ids["slow-1"] != 1 {
		t.Errorf("the sink got %v, want good, slow-1 and the webhook's event only", ids)
	}

	// Admin: /healthz and /readyz open, the rest needs the token.
	token := map[string]string{"Authorization": "Bearer adm1n-t0ken"}
	for _, tt := range []struct {
		path   string
		header map[string]string
		status int
	}{
		{"/healthz", nil, 200}, {"/readyz", nil, 200},
		{"/metrics", nil, 401}, {"/metrics", token, 200},
		{"/api/v1/deadletters", nil, 401}, {"/api/v1/deadletters", map[string]string{"Authorization": "Bearer x"}, 401}, {"/api/v1/deadletters", token, 200},
	} {
		resp, body := call(t, c, "GET", j.admin+tt.path, tt.header, "")
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s %v: %s %s, want %d", tt.path, tt.header, resp.Status, body, tt.status)
		}
		if tt.status == 401 && (!strings.HasPrefix(body, `{"error":"unauthorized`) || resp.Header.Get("WWW-Authenticate") == "") {
			t.Errorf("GET %s: 401 %q, WWW-Authenticate %q", tt.path, body, resp.Header.Get("WWW-Authenticate"))
		}
	}
	_, metrics := call(t, c, "GET", j.admin+"/metrics", token, "")
	for _, want := range []string{
		`junction_events_rejected_total{reason="unauthorized",source="events"} 2`,
		`junction_events_rejected_total{reason="unauthorized",source="hooks"} 1`,
		`junction_events_rejected_total{reason="rate_limited",source="slow"} 1`,
		`junction_events_received_total{source="events"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// junction healthcheck needs no token, and speaks HTTPS with admin.tls.
	hc := exec.Command(binary, "healthcheck", "-c", j.cfg)
	hc.Env = append(os.Environ(), j.env...)
	if out, err := hc.CombinedOutput(); err != nil || !strings.Contains(string(out), "200 OK") {
		t.Errorf("junction healthcheck: %v\n%s", err, out)
	}

	// Rotation: renamed over, then written in place; new handshakes see
	// the new serial.
	ingress := strings.TrimPrefix(j.ingest, "https://")
	serial := func(want int64) func() bool {
		return func() bool {
			got, err := testcerts.PeerSerial(ingress, cs.ca.Pool())
			return err == nil && got == want
		}
	}
	if !serial(1)() {
		t.Fatal("the ingress does not serve serial 1")
	}
	for _, step := range []struct {
		serial int64
		how    string
	}{{2, "rename"}, {3, "write"}} {
		pair, err := cs.ca.Server(step.serial)
		if err != nil {
			t.Fatal(err)
		}
		if step.how == "rename" {
			err = pair.Rename(cs.certFile, cs.keyFile)
		} else {
			err = pair.Write(cs.certFile, cs.keyFile)
		}
		if err != nil {
			t.Fatal(err)
		}
		plugintest.Eventually(t, 10*time.Second, "the new certificate after a "+step.how, serial(step.serial))
	}
	if resp, body := call(t, c, "POST", j.ingest+"/events", with(ce("after"), "Authorization", "Bearer ingest-t0ken"), `{}`); resp.StatusCode != 202 {
		t.Errorf("POST after the rotation: %s %s", resp.Status, body)
	}
}

// TestMutualTLSIngress: with clientCAFile a client without a certificate
// of the CA cannot connect; one with it can.
func TestMutualTLSIngress(t *testing.T) {
	dir := t.TempDir()
	cs := newCerts(t, dir)
	hook := newSink(t, ok)
	j := startTLS(t, dir, `
http:
  listen: "{{HTTP}}"
  tls: {certFile: `+cs.certFile+`, keyFile: `+cs.keyFile+`, clientCAFile: `+cs.caPEM+`, clientAuth: require}
admin:
  listen: "{{ADMIN}}"
  tls: {certFile: `+cs.certFile+`, keyFile: `+cs.keyFile+`}
journal: {dir: "{{DATA}}"}
sources:
  - {name: events, type: http, path: /events}
sinks:
  - {name: hook, type: webhook, url: "`+hook.url+`"}
routes:
  - {name: all, to: [hook]}
`, httpsClient(cs.ca.Pool()))
	event := map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "m1", "ce-source": "/e2e", "ce-type": "t"}
	req, _ := http.NewRequest("POST", j.ingest+"/events", strings.NewReader("{}"))
	if resp, err := httpsClient(cs.ca.Pool()).Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("without a client certificate: %s, want the handshake to fail", resp.Status)
	}
	resp, body := call(t, httpsClient(cs.ca.Pool(), cs.client), "POST", j.ingest+"/events", event, "{}")
	if resp.StatusCode != 202 {
		t.Fatalf("with a client certificate: %s %s", resp.Status, body)
	}
	plugintest.Eventually(t, 10*time.Second, "the event at the sink", func() bool { return hook.count() == 1 })
}

// TestAdminExposure: serve and validate refuse an admin API beyond loopback
// without admin.auth; with it (and openMetrics) it runs, /metrics open.
func TestAdminExposure(t *testing.T) {
	dir := t.TempDir()
	port := strings.Split(freePort(t), ":")[1]
	text := "http: {listen: \"{{HTTP}}\"}\njournal: {dir: \"{{DATA}}\"}\nadmin:\n  listen: 0.0.0.0:" + port + "\n"
	cfg, _, _ := writeConfig(t, dir, text)
	want := cfg + ":4:11: admin.listen: 0.0.0.0:" + port + " takes connections from other hosts and the admin API has no admin.auth"
	for _, cmd := range []string{"serve", "validate"} {
		out, err := exec.Command(binary, cmd, "--config", cfg).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.HasPrefix(string(out), want) {
			t.Errorf("%s: exit %d\n%s\nwant exit 1 and %s", cmd, code, out, want)
		}
	}
	cfg, _, _ = writeConfig(t, dir, text+"  auth: {bearer: [\"${ADMIN_TOKEN}\"], openMetrics: true}\n")
	j := &junction{t: t, dir: dir, cfg: cfg, admin: "http://127.0.0.1:" + port, env: []string{"ADMIN_TOKEN=s3cret"}}
	j.restart()
	t.Cleanup(j.stop)
	c := &http.Client{Timeout: 10 * time.Second}
	for path, status := range map[string]int{"/metrics": 200, "/healthz": 200, "/api/v1/deadletters": 401} {
		if resp, body := call(t, c, "GET", j.admin+path, nil, ""); resp.StatusCode != status {
			t.Errorf("GET %s: %s %s, want %d", path, resp.Status, body, status)
		}
	}
	// The CLI's clients send --token or $JUNCTION_ADMIN_TOKEN.
	for _, tc := range []struct {
		args []string
		env  string
		code int
		out  string
	}{
		{[]string{"deadletters", "list", "--admin", j.admin}, "", 1, "401 Unauthorized"},
		{[]string{"deadletters", "list", "--admin", j.admin, "--token", "wrong"}, "", 1, "invalid token"},
		{[]string{"deadletters", "list", "--admin", j.admin, "--json"}, "JUNCTION_ADMIN_TOKEN=s3cret", 0, "deadLetters"},
		{[]string{"deadletters", "list", "--admin", j.admin, "--token", "s3cret", "--json"}, "", 0, "deadLetters"},
	} {
		cmd := exec.Command(binary, tc.args...)
		cmd.Env = append(os.Environ(), "JUNCTION_ADMIN_TOKEN="+strings.TrimPrefix(tc.env, "JUNCTION_ADMIN_TOKEN="))
		out, err := cmd.CombinedOutput()
		if exitCode(err) != tc.code || !strings.Contains(string(out), tc.out) {
			t.Errorf("junction %v (%s): exit %d\n%s\nwant exit %d and %q", tc.args, tc.env, exitCode(err), out, tc.code, tc.out)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestSecureIngressExample runs examples/secure-ingress as its README
// says, with certificates made here: it validates, answers 401 without the
// token and 202 with it, delivers, and asks for a token on the admin API.
func TestSecureIngressExample(t *testing.T) {
	const cfg = "../examples/secure-ingress/junction.yaml"
	dir := t.TempDir()
	cs := newCerts(t, dir) // server.crt and server.key, as the example names them
	billing := newSink(t, ok)
	ingest, admin := freePort(t), freePort(t)
	env := []string{"TLS_DIR=" + dir, "INGEST_TOKEN=example-ingest-token", "JUNCTION_ADMIN_TOKEN=example-admin-token",
		"BILLING_URL=" + billing.url, "JUNCTION_HTTP_LISTEN=" + ingest, "JUNCTION_ADMIN_LISTEN=" + admin,
		"JUNCTION_JOURNAL_DIR=" + filepath.Join(dir, "data")}
	validate := exec.Command(binary, "validate", cfg)
	validate.Env = append(os.Environ(), env...)
	if out, err := validate.CombinedOutput(); err != nil || string(out) != cfg+": ok: 1 source, 2 sinks, 1 route\n" {
		t.Fatalf("junction validate: %v\n%s", err, out)
	}
	abs, _ := filepath.Abs(cfg)
	j := &junction{t: t, dir: dir, cfg: abs, env: env, ingest: "https://" + ingest, admin: "https://" + admin}
	c := httpsClient(cs.ca.Pool())
	runTLS(t, j, c)
	event := map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "order-1",
		"ce-source": "/shop", "ce-type": "com.example.order.created"}
	if resp, body := call(t, c, "POST", j.ingest+"/events", event, `{"amount":250}`); resp.StatusCode != 401 {
		t.Errorf("POST without the token: %s %s, want 401", resp.Status, body)
	}
	event["Authorization"] = "Bearer example-ingest-token"
	if resp, body := call(t, c, "POST", j.ingest+"/events", event, `{"amount":250}`); resp.StatusCode != 202 {
		t.Errorf("POST with the token: %s %s, want 202", resp.Status, body)
	}
	plugintest.Eventually(t, 10*time.Second, "the order at billing", func() bool { return billing.count() == 1 })
	if ids := billing.ids(); ids["order-1"] != 1 {
		t.Errorf("billing got %v", ids)
	}
	if resp, _ := call(t, c, "GET", j.admin+"/metrics", nil, ""); resp.StatusCode != 401 {
		t.Errorf("GET /metrics without the admin token: %s, want 401", resp.Status)
	}
	resp, metrics := call(t, c, "GET", j.admin+"/metrics", map[string]string{"Authorization": "Bearer example-admin-token"}, "")
	if resp.StatusCode != 200 || !strings.Contains(metrics, `junction_events_rejected_total{reason="unauthorized",source="orders"} 1`) {
		t.Errorf("GET /metrics with the admin token: %s, want 200 and 1 unauthorized request", resp.Status)
	}
}

// TestBenchTLS runs `junction bench --tls` briefly: the ingress serves
// HTTPS, and every accepted event is delivered.
func TestBenchTLS(t *testing.T) {
	var res struct {
		Sent, Accepted, Delivered, Lost int64
		TLS                             bool
	}
	stderr := runBench(t, &res, "bench", "--tls", "--duration", "1s", "--connections", "4", "--json")
	if !res.TLS || !strings.Contains(stderr, "serves HTTPS") {
		t.Errorf("tls %v, stderr:\n%s", res.TLS, stderr)
	}
	if res.Accepted == 0 || res.Delivered != res.Accepted || res.Lost != 0 {
		t.Errorf("sent %d accepted %d delivered %d lost %d: want every accepted event delivered", res.Sent, res.Accepted, res.Delivered, res.Lost)
	}
	out, err := exec.Command(binary, "bench", "--tls", "--baseline").CombinedOutput()
	if exitCode(err) != 2 || !strings.Contains(string(out), "--tls drive Junction itself") {
		t.Errorf("bench --tls --baseline: %v\n%s", err, out)
	}
}
