// Package e2e holds end-to-end tests: they build the real junction binary,
// run it on loopback with real HTTP sinks, and check what arrives.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/internal/plugintest"
)

var binary string

// configHead is the start of every e2e config: the listen addresses and the
// journal directory that writeConfig fills in.
const configHead = `
http: {listen: "{{HTTP}}"}
admin: {listen: "{{ADMIN}}"}
journal: {dir: "{{DATA}}"}
`

// httpSource is configHead with one http source on /events.
const httpSource = configHead + `sources:
  - {name: events, type: http, path: /events}
`

// base is httpSource with debug logging.
const base = httpSource + `log: {level: debug}
`

// hookConfig is base with one webhook sink "hook" at url and one route "r"
// to it, with the delivery policy delivery (a YAML flow mapping) unless it
// is empty.
func hookConfig(url, delivery string) string {
	route := "\n    delivery: " + delivery
	if delivery == "" {
		route = ""
	}
	return base + fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - name: r
    to: [hook]%s
`, url, route)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "junction-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "junction")
	build := exec.Command("go", "build", "-o", binary, "../cmd/junction")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build junction:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address that was free a moment ago and that
// no other caller in this test binary was given: the kernel may hand the
// same ephemeral port out again once it is closed, and two parallel tests
// (a junction and a nats-server's monitor, say) then race for it.
func freePort(t testing.TB) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		portsMu.Lock()
		taken := portsGiven[addr]
		portsGiven[addr] = true
		portsMu.Unlock()
		if !taken {
			return addr
		}
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[string]bool{}
)

// junction is a running junction process.
type junction struct {
	t      testing.TB
	cmd    *exec.Cmd
	dir    string
	cfg    string
	ingest string // http://host:port
	admin  string
	stdout *plugintest.LogBuffer
	stderr *plugintest.LogBuffer
	env    []string
	exited chan struct{}
}

// writeConfig writes a config to dir: the text's {{HTTP}}, {{ADMIN}} and
// {{DATA}} are replaced by free loopback addresses and a journal directory.
func writeConfig(t testing.TB, dir, text string) (path, ingest, admin string) {
	t.Helper()
	ingest, admin = freePort(t), freePort(t)
	text = strings.NewReplacer("{{HTTP}}", ingest, "{{ADMIN}}", admin, "{{DATA}}", filepath.Join(dir, "data")).Replace(text)
	path = filepath.Join(dir, "junction.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, "http://" + ingest, "http://" + admin
}

// start runs junction serve on the config text (see writeConfig) and waits
// until it is ready.
func start(t testing.TB, text string) *junction {
	t.Helper()
	dir := t.TempDir()
	cfg, ingest, admin := writeConfig(t, dir, text)
	j := &junction{t: t, dir: dir, cfg: cfg, ingest: ingest, admin: admin}
	j.restart()
	t.Cleanup(j.stop)
	return j
}

// startFile runs junction serve on an existing config file with extra
// environment variables; JUNCTION_HTTP_LISTEN, JUNCTION_ADMIN_LISTEN and
// JUNCTION_JOURNAL_DIR are set to free addresses and a temporary directory.
func startFile(t testing.TB, cfg string, env ...string) *junction {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ingest, admin := freePort(t), freePort(t)
	j := &junction{t: t, dir: dir, cfg: abs, ingest: "http://" + ingest, admin: "http://" + admin}
	j.env = append([]string{
		"JUNCTION_HTTP_LISTEN=" + ingest,
		"JUNCTION_ADMIN_LISTEN=" + admin,
		"JUNCTION_JOURNAL_DIR=" + filepath.Join(dir, "data"),
	}, env...)
	j.restart()
	t.Cleanup(j.stop)
	return j
}

// restart starts the process again with the same config and journal.
func (j *junction) restart() {
	j.t.Helper()
	j.stdout, j.stderr = &plugintest.LogBuffer{}, &plugintest.LogBuffer{}
	j.cmd = exec.Command(binary, "serve", "--config", j.cfg)
	j.cmd.Dir = j.dir
	j.cmd.Env = append(os.Environ(), j.env...)
	j.cmd.Stdout, j.cmd.Stderr = j.stdout, j.stderr
	if err := j.cmd.Start(); err != nil {
		j.t.Fatal(err)
	}
	j.exited = make(chan struct{})
	go func() { j.cmd.Wait(); close(j.exited) }()
	// 60 s: a replica joining a JetStream cluster under CI's load was seen
	// to need more than 30 s for its stream and consumer requests.
	waitReady(j.t, "junction", 60*time.Second, j.exited, j.stderr, httpOK(j.admin+"/readyz"))
}

// waitReady polls ready until it is true. It fails the test with out's
// text when the process called name ends first (exited closes) or timeout
// passes.
func waitReady(t testing.TB, name string, timeout time.Duration, exited <-chan struct{}, out fmt.Stringer, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case <-exited:
			t.Fatalf("%s exited during start-up:\n%s", name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v:\n%s", name, timeout, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpOK is a waitReady probe: url answers 200 OK.
func httpOK(url string) func() bool {
	return func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// watchProcess follows cmd, called name, which the test started with its
// output in out, and returns a channel closed when it ends. When the test
// ends it is stopped with SIGTERM (its process group, by its id, when cmd
// sets Setpgid) and killed if it has not ended within grace, which fails
// the test when mustStop; out is logged if the test failed.
func watchProcess(t testing.TB, name string, cmd *exec.Cmd, out fmt.Stringer, grace time.Duration, mustStop bool) <-chan struct{} {
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	signal := func(sig syscall.Signal) {
		if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
			_ = syscall.Kill(-cmd.Process.Pid, sig)
			return
		}
		_ = cmd.Process.Signal(sig)
	}
	t.Cleanup(func() {
		signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
			signal(syscall.SIGKILL)
			<-exited
			if mustStop {
				t.Errorf("%s did not stop within %v of SIGTERM", name, grace)
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return exited
}

// kill stops the process with SIGKILL: no shutdown code runs.
func (j *junction) kill() {
	j.cmd.Process.Signal(syscall.SIGKILL)
	<-j.exited
}

// stop stops the process with SIGTERM and waits for it.
func (j *junction) stop() {
	select {
	case <-j.exited:
		return
	default:
	}
	j.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-j.exited:
	case <-time.After(30 * time.Second):
		j.cmd.Process.Kill()
		<-j.exited
		j.t.Errorf("junction did not stop within 30s of SIGTERM:\n%s", j.stderr.String())
	}
	if j.t.Failed() {
		j.t.Logf("junction log:\n%s", j.stderr.String())
	}
}

// metric returns the value of the series whose name and labels contain all
// of parts (e.g. `junction_deliveries_total`, `outcome="retried"`), summed.
func (j *junction) metric(parts ...string) float64 {
	j.t.Helper()
	resp, err := http.Get(j.admin + "/metrics")
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// post sends a request to the ingress and returns the status and body.
func post(t testing.TB, url, contentType string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// binaryEvent posts a binary-mode CloudEvent.
func binaryEvent(t testing.TB, url, id, typ, data string) int {
	t.Helper()
	code, body := post(t, url, "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": id, "ce-source": "/test", "ce-type": typ,
	}, data)
	if code != http.StatusAccepted {
		t.Logf("POST %s id %s: %d %s", url, id, code, body)
	}
	return code
}

// sink is a webhook sink on loopback that records every event it receives
// and answers with the status answer returns (-1: 429 with Retry-After: 1).
type sink struct {
	mu     sync.Mutex
	events []event.Event
	calls  int
	answer func(call int, e *event.Event) int
	srv    *http.Server
	ln     net.Listener
	url    string
}

func newSink(t testing.TB, answer func(call int, e *event.Event) int) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveSink(t, ln, answer)
}

func serveSink(t testing.TB, ln net.Listener, answer func(call int, e *event.Event) int) *sink {
	s := &sink{answer: answer, ln: ln, url: "http://" + ln.Addr().String() + "/hook"}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e, err := cehttp.ParseEvent(r.Header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.calls++
		call := s.calls
		s.mu.Unlock()
		code := http.StatusOK
		if s.answer != nil {
			code = s.answer(call, e)
		}
		if code == -1 {
			w.Header().Set("Retry-After", "1")
			code = http.StatusTooManyRequests
		}
		if code >= 200 && code < 300 {
			s.mu.Lock()
			s.events = append(s.events, *e)
			s.mu.Unlock()
		}
		w.WriteHeader(code)
	})}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *sink) received() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.events...)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// ids counts the events received under each id.
func (s *sink) ids() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]int{}
	for _, e := range s.events {
		seen[e.ID()]++
	}
	return seen
}

// distinct is the number of different event ids received.
func (s *sink) distinct() int { return len(s.ids()) }

// duplicates is the number of events received again under an id already
// seen.
func (s *sink) duplicates() int {
	dups := 0
	for _, n := range s.ids() {
		dups += n - 1
	}
	return dups
}

func (s *sink) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

var logLineRE = regexp.MustCompile(`(?m)^\{.*\}$`)

// ctx returns a context that ends with the test.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return c
}

// waitFor polls ok until it is true, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCount waits until s has received n events.
func waitCount(t testing.TB, s *sink, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d events at the sink", n), func() bool { return s.count() >= n })
}
