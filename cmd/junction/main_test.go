package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestValidateGolden checks `junction validate` on each bad config in
// testdata/invalid against its .golden file (go test -update rewrites them).
func TestValidateGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, stdout, stderr := runCLI("validate", "--config", f)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want exit 1 and nothing on stdout", code, stdout)
			}
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !strings.HasPrefix(line, f+":") && !strings.HasPrefix(line, " ") {
					t.Errorf("line without FILE:LINE:COL: %q", line)
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(stderr), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./cmd/junction -update)", err)
			}
			if stderr != string(want) {
				t.Errorf("validate output differs from %s\n--- got\n%s--- want\n%s", golden, stderr, want)
			}
			// serve refuses the same config with the same lines.
			code, _, serveErr := runCLI("serve", "--config", f)
			if code != 1 || serveErr != stderr {
				t.Errorf("serve: exit %d, stderr\n%s\nwant exit 1 and the validate lines", code, serveErr)
			}
		})
	}
}

func TestValidateOK(t *testing.T) {
	code, stdout, stderr := runCLI("validate", "--config", "testdata/valid.yaml")
	if code != 0 || stdout != "testdata/valid.yaml: ok: 1 source, 1 sink, 1 route\n" || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestExamplesLoad runs every shipped example config through the real
// loader: examples/*/junction.yaml and each connector's example.yaml.
func TestExamplesLoad(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../examples/*/*.yaml", "../../sources/*/example.yaml", "../../sinks/*/example.yaml"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d example configs: %v", len(files), files)
	}
	for _, f := range files {
		if filepath.Base(f) == "tests.yaml" {
			continue // route tests (junction test), not a config
		}
		code, stdout, stderr := runCLI("validate", "--config", f)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s", f, code, stderr)
		} else if !strings.Contains(stdout, ": ok: ") {
			t.Errorf("%s: unexpected output %q", f, stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"validate"}, 2, "which config? give FILE or --config FILE (there is no junction.yaml here)"},
		{[]string{"validate", "testdata/valid.yaml", "other.yaml"}, 2, "one FILE at most, got 2"},
		{[]string{"validate", "testdata/valid.yaml", "-c", "other.yaml"}, 2, "two configs: testdata/valid.yaml and --config other.yaml; give one"},
		{[]string{"validate", "--frobnicate"}, 2, "junction validate: flag provided but not defined: --frobnicate\nRun 'junction help validate' for usage.\n"},
		{[]string{"validate", "--config"}, 2, "flag needs an argument: --config"},
		{[]string{"help", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"help", "serve", "validate"}, 2, "one COMMAND at most"},
		{[]string{"version", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"healthcheck", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"bench", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"bench", "--duration", "soon"}, 2, `invalid value "soon" for flag --duration`},
		{[]string{"validate", "--config", "testdata/does-not-exist.yaml"}, 1, "read config: open testdata/does-not-exist.yaml: no such file or directory"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"bench", "--connections", "0"}, 2, "--connections must be between 1 and 4096"},
		{[]string{"bench", "--fsync", "never"}, 2, "--fsync must be interval or always"},
		{[]string{"replay", "--admin", "127.0.0.1:1"}, 2, "junction replay: --from is required"},
		{[]string{"replay", "--admin", "127.0.0.1:1", "--from", "yesterday"}, 2, `--from: "yesterday" is not an RFC 3339 time`},
		{[]string{"replay", "--admin", "127.0.0.1:1", "--from", "-1h", "--to", "-x"}, 2, `--to: "-x" is not -DURATION`},
		{[]string{"replay", "--admin", "127.0.0.1:1", "frobnicate"}, 2, `unexpected arguments ["frobnicate"]`},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.err) {
			t.Errorf("junction %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.err)
		}
	}
}

func TestVersion(t *testing.T) {
	want := "junction dev (" + runtime.Version() + ")\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("junction %v: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, stdout, stderr, want)
		}
	}
}

// TestHelp checks every way of asking for help: on stdout, exit 0, nothing
// on stderr, the flags with --long names, and examples.
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"Usage:", "serve [--config FILE]", "validate [FILE]", "healthcheck", "junction help COMMAND"}},
		{[]string{"--help"}, []string{"Usage:", "Commands:"}},
		{[]string{"-h"}, []string{"Usage:", "Commands:"}},
		{[]string{"help", "help"}, []string{"Usage: junction help [COMMAND]", "-h, --help", "Examples:\n  junction help\n"}},
		{[]string{"help", "--help"}, []string{"Usage: junction help [COMMAND]"}},
	}
	for _, cmd := range []string{"serve", "validate", "bench", "healthcheck", "version", "replay"} {
		want := []string{"Usage: junction " + cmd, "\nFlags:\n", "  -h, --help", "\nExamples:\n  junction " + cmd}
		if cmd == "serve" || cmd == "validate" || cmd == "healthcheck" || cmd == "replay" {
			want = append(want, "  -c, --config FILE  ")
		}
		if cmd == "bench" {
			want = append(want, "      --duration DURATION  how long to send events", "payload BYTES per event (default 1024)", "      --url URL  ")
		}
		if cmd == "healthcheck" {
			want = append(want, "      --admin URL  ", "      --ready  ")
		}
		for _, form := range [][]string{{"help", cmd}, {cmd, "--help"}, {cmd, "-h"}, {cmd, "-help"}} {
			tests = append(tests, struct {
				args []string
				want []string
			}{form, want})
		}
	}
	// Help wins over the other arguments, wherever it is.
	tests = append(tests, struct {
		args []string
		want []string
	}{[]string{"validate", "testdata/valid.yaml", "--help"}, []string{"Usage: junction validate"}})
	for _, tt := range tests {
		code, stdout, stderr := runCLI(tt.args...)
		if code != 0 || stderr != "" {
			t.Errorf("junction %v: exit %d, stderr %q; want exit 0 and nothing on stderr", tt.args, code, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("junction %v: no %q in\n%s", tt.args, w, stdout)
			}
		}
		// The flag package's single-dash listing must not show through.
		if strings.Contains(stdout, "\n  -config") || strings.Contains(stdout, "\n  -duration") {
			t.Errorf("junction %v: single-dash flags in\n%s", tt.args, stdout)
		}
	}
}

// TestValidateArgs: the config as an argument, as --config or -c, with the
// flags before or after it, and ./junction.yaml when none is given.
func TestValidateArgs(t *testing.T) {
	const ok = "testdata/valid.yaml: ok: 1 source, 1 sink, 1 route\n"
	tests := [][]string{
		{"validate", "testdata/valid.yaml"},
		{"validate", "--config", "testdata/valid.yaml"},
		{"validate", "--config=testdata/valid.yaml"},
		{"validate", "-c", "testdata/valid.yaml"},
		{"validate", "testdata/valid.yaml", "-c", "testdata/valid.yaml"},
		{"validate", "-c", "testdata/valid.yaml", "testdata/valid.yaml"},
		{"validate", "--", "testdata/valid.yaml"},
	}
	for _, args := range tests {
		code, stdout, stderr := runCLI(args...)
		if code != 0 || stdout != ok || stderr != "" {
			t.Errorf("junction %v: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, stdout, stderr, ok)
		}
	}
	// A flag after the argument is still a flag: here a bad one.
	if code, _, stderr := runCLI("validate", "testdata/valid.yaml", "--nope"); code != 2 || !strings.Contains(stderr, "not defined: --nope") {
		t.Errorf("validate FILE --nope: exit %d, stderr %q", code, stderr)
	}

	valid, err := filepath.Abs("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(valid)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := os.WriteFile("junction.yaml", b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("validate")
	if code != 0 || stdout != "junction.yaml: ok: 1 source, 1 sink, 1 route\n" || stderr != "" {
		t.Errorf("validate in a dir with junction.yaml: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestServeFlags: -c and --config after nothing else reach the loader (an
// invalid config fails the same way through either).
func TestServeFlags(t *testing.T) {
	f := "testdata/invalid/" + firstInvalid(t)
	_, _, want := runCLI("validate", f)
	for _, args := range [][]string{{"serve", "-c", f}, {"serve", "--config", f}, {"serve", "--config=" + f}} {
		code, _, stderr := runCLI(args...)
		if code != 1 || stderr != want {
			t.Errorf("junction %v: exit %d, stderr\n%s\nwant exit 1 and\n%s", args, code, stderr, want)
		}
	}
}

func firstInvalid(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/invalid")
	}
	return filepath.Base(files[0])
}

// TestHealthcheck asks real HTTP servers: 200 is exit 0, 503 is exit 1 with
// the answer, a closed port is exit 1.
func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			fmt.Fprintln(w, "ok")
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"journal":"disk full","ready":false}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	closed := "http://" + closedAddr(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "junction.yaml")
	if err := os.WriteFile(cfg, []byte("admin: {listen: '0.0.0.0:"+strings.Split(host, ":")[1]+"'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	off := filepath.Join(dir, "off.yaml")
	if err := os.WriteFile(off, []byte("admin: {listen: 'off'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"--admin", srv.URL}, 0, srv.URL + "/healthz: 200 OK: ok\n", ""},
		{[]string{"--admin", srv.URL + "/"}, 0, srv.URL + "/healthz: 200 OK: ok\n", ""},
		{[]string{"--admin", host}, 0, srv.URL + "/healthz: 200 OK: ok\n", ""},
		{[]string{"--ready", "--admin", srv.URL}, 1, "", "junction healthcheck: " + srv.URL + `/readyz: 503 Service Unavailable: {"journal":"disk full","ready":false}` + "\n"},
		{[]string{"--admin", closed}, 1, "", "junction healthcheck: Get \"" + closed + "/healthz\": dial tcp " + strings.TrimPrefix(closed, "http://") + ": connect: connection refused\n"},
		// The admin URL from the config's admin.listen, 0.0.0.0 asked on loopback.
		{[]string{"-c", cfg}, 0, "http://127.0.0.1:" + strings.Split(host, ":")[1] + "/healthz: 200 OK: ok\n", ""},
		{[]string{"-c", off}, 1, "", "junction healthcheck: admin.listen is off in " + off + ": nothing to ask (give --admin URL)\n"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(append([]string{"healthcheck"}, tt.args...)...)
		if code != tt.code || stdout != tt.out || stderr != tt.errOut {
			t.Errorf("healthcheck %v: exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q", tt.args, code, stdout, stderr, tt.code, tt.out, tt.errOut)
		}
	}
}

func TestAdminURL(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ listen, want string }{
		{"127.0.0.1:9191", "http://127.0.0.1:9191"},
		{"0.0.0.0:9191", "http://127.0.0.1:9191"},
		{":9191", "http://127.0.0.1:9191"},
		{"[::]:9191", "http://[::1]:9191"},
		{"localhost:9191", "http://localhost:9191"},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
		if err := os.WriteFile(path, []byte(fmt.Sprintf("admin: {listen: %q}\n", tt.listen)), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := adminURL(path); err != nil || got != tt.want {
			t.Errorf("admin.listen %s: %q, %v; want %q", tt.listen, got, err, tt.want)
		}
	}
	// No config: the built-in default's, which JUNCTION_ADMIN_LISTEN changes.
	t.Chdir(dir)
	if got, err := adminURL(""); err != nil || got != "http://127.0.0.1:9090" {
		t.Errorf("built-in default: %q, %v", got, err)
	}
	t.Setenv("JUNCTION_ADMIN_LISTEN", "0.0.0.0:9393")
	if got, err := adminURL(""); err != nil || got != "http://127.0.0.1:9393" {
		t.Errorf("JUNCTION_ADMIN_LISTEN: %q, %v", got, err)
	}
}

// TestReadmeConfigValidates checks the configuration block of README.md
// (the first yaml block after "## Configuration") with the real loader.
func TestReadmeConfigValidates(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Configuration")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the Configuration section")
	}
	path := filepath.Join(t.TempDir(), "readme.yaml")
	if err := os.WriteFile(path, []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI("validate", "--config", path); code != 0 {
		t.Fatalf("the README's configuration does not validate:\n%s", stderr)
	}
}

func TestValidateWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("validate", "--config", path)
	wantErr := path + ":1:1: warning: no sources, sinks or routes: this config takes and delivers no events\n"
	if code != 0 || stdout != path+": ok: 0 sources, 0 sinks, 0 routes\n" || stderr != wantErr {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0, the summary, and %q", code, stdout, stderr, wantErr)
	}
}

// The real binary, built once by junctionBinary; TestMain removes it.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// junctionBinary builds ./cmd/junction (once) and returns its path.
func junctionBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "junction-cmd-*"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "junction")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestStartupFailures runs the real binary on configs that pass validate
// but cannot start: it must exit 1 with one line that names the cause as
// its last, never a panic or a stack trace.
func TestStartupFailures(t *testing.T) {
	bin := junctionBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file") // nothing can be made under a file, not even by root
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port, nats := busy.Addr().String(), closedAddr(t)
	free := "http: {listen: '127.0.0.1:0'}\nadmin: {listen: '127.0.0.1:0'}\n"
	locked := filepath.Join(dir, "locked")

	// The first junction holds the journal dir "locked"; it also logs the
	// config's warning at warn level.
	first := filepath.Join(dir, "first.yaml")
	if err := os.WriteFile(first, []byte(free+fmt.Sprintf("journal: {dir: %q}\n", locked)), 0o644); err != nil {
		t.Fatal(err)
	}
	var firstErr plugintest.LogBuffer
	cmd := exec.Command(bin, "serve", "--config", first)
	cmd.Stderr = &firstErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("the first junction did not stop within 30s:\n%s", firstErr.String())
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(firstErr.String(), "junction ready"); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("the first junction exited:\n%s", firstErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first junction not ready after 30s:\n%s", firstErr.String())
		}
	}
	if want := `level=WARN msg="` + first + `:1:1: warning: no sources, sinks or routes: this config takes and delivers no events"`; !strings.Contains(firstErr.String(), want) {
		t.Errorf("serve does not log the config's warning %s:\n%s", want, firstErr.String())
	}

	tests := []struct {
		name, config, want string
	}{
		{name: "journal dir in use",
			config: free + fmt.Sprintf("journal: {dir: %q}\n", locked),
			want:   "junction: cannot start: lock journal dir " + locked + ": another junction process uses it (resource temporarily unavailable)"},
		{name: "journal dir unwritable",
			config: free + fmt.Sprintf("journal: {dir: %q}\n", filepath.Join(file, "data")),
			want:   "junction: cannot start: open journal: mkdir " + file + ": not a directory"},
		{name: "journal url unreachable",
			config: free + "journal: {url: 'nats://" + nats + "'}\n",
			want:   "junction: cannot start: connect journal nats://" + nats + ": nats: no servers available for connection"},
		{name: "log sink file",
			config: free + fmt.Sprintf("journal: {dir: %q}\nsinks: [{name: out, type: log, output: %q}]\nroutes: [{name: r, to: [out]}]\n", filepath.Join(dir, "log-data"), filepath.Join(file, "out.log")),
			want:   `junction: cannot start: build sink "out": open log output ` + filepath.Join(file, "out.log") + ": not a directory"},
		{name: "http port in use",
			config: fmt.Sprintf("http: {listen: %q}\nadmin: {listen: '127.0.0.1:0'}\njournal: {dir: %q}\n", port, filepath.Join(dir, "http-data")),
			want:   "junction: cannot start: http listener: listen tcp " + port + ": bind: address already in use"},
		{name: "admin port in use",
			config: fmt.Sprintf("http: {listen: '127.0.0.1:0'}\nadmin: {listen: %q}\njournal: {dir: %q}\n", port, filepath.Join(dir, "admin-data")),
			want:   "junction: cannot start: admin listener: listen tcp " + port + ": bind: address already in use"},
		{name: "two sources on one path",
			config: free + fmt.Sprintf("journal: {dir: %q}\nsources:\n  - {name: a, type: http, path: /events}\n  - {name: b, type: webhook, path: /events}\n", filepath.Join(dir, "path-data")),
			want:   `CONFIG:6:36: source "b": path: /events is already the path of source "a"; each source on the HTTP ingress needs a path of its own`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("case%d.yaml", i))
			if err := os.WriteFile(path, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, "serve", "--config", path)
			cmd.Stderr = &stderr
			err := cmd.Run()
			out := stderr.String()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit %d (%v), want 1", code, err)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Errorf("a panic or a stack trace:\n%s", out)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			want := strings.ReplaceAll(tt.want, "CONFIG", path)
			if last := lines[len(lines)-1]; last != want {
				t.Errorf("last line of stderr:\n got  %s\n want %s\nstderr:\n%s", last, want, out)
			}
		})
	}
}

// TestStartupLines runs the real binary: at log.level error, and with the
// built-in default moved by JUNCTION_HTTP_LISTEN, it still prints the
// journal, the real URL of each HTTP source, the admin URL and the ready
// line; healthcheck then answers 0 against it.
func TestStartupLines(t *testing.T) {
	bin := junctionBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "quiet.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`http: {listen: '127.0.0.1:0'}
admin: {listen: '127.0.0.1:0'}
journal: {dir: %q}
log: {level: error}
sources:
  - {name: events, type: http, path: /events}
  - {name: github, type: webhook, path: /hooks/github}
sinks: [{name: out, type: log}]
routes: [{name: r, to: [out]}]
`, filepath.Join(dir, "quiet-data"))), 0o644); err != nil {
		t.Fatal(err)
	}
	port := closedAddr(t)
	tests := []struct {
		name   string
		args   []string
		env    []string
		want   []string // with INGRESS for the ingress address
		absent []string
	}{
		{name: "log level error", args: []string{"serve", "-c", cfg},
			want: []string{
				`msg="starting junction" version=dev go=` + runtime.Version(),
				"msg=journal dir=" + filepath.Join(dir, "quiet-data") + "\n",
				"msg=\"source listening\" source=events type=http url=http://INGRESS/events\n",
				"msg=\"source listening\" source=github type=webhook url=http://INGRESS/hooks/github\n",
				`msg="admin listening" url=http://127.0.0.1:`,
				`msg="junction ready" summary="2 sources, 1 sink, 1 route"`,
			},
			absent: []string{"route index"}, // an INFO line that log.level: error hides
		},
		{name: "built-in default elsewhere", args: []string{"serve"},
			env: []string{"JUNCTION_HTTP_LISTEN=" + port, "JUNCTION_ADMIN_LISTEN=127.0.0.1:0", "JUNCTION_JOURNAL_DIR=" + filepath.Join(dir, "default-data")},
			want: []string{
				"running the built-in default",
				"msg=\"source listening\" source=events type=http url=http://" + port + "/events\n",
				`msg="junction ready" summary="1 source, 1 sink, 1 route"`,
			},
			absent: []string{"8080"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr plugintest.LogBuffer
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), tt.env...)
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			defer func() {
				cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
					if code := cmd.ProcessState.ExitCode(); code != 0 {
						t.Errorf("exit %d after SIGINT, want 0:\n%s", code, stderr.String())
					}
				case <-time.After(30 * time.Second):
					cmd.Process.Kill()
					<-exited
					t.Errorf("did not stop within 30s:\n%s", stderr.String())
				}
			}()
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "junction ready"); time.Sleep(20 * time.Millisecond) {
				select {
				case <-exited:
					t.Fatalf("exited:\n%s", stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("not ready after 30s:\n%s", stderr.String())
				}
			}
			out := stderr.String()
			_, rest, _ := strings.Cut(out, `msg="http ingress listening" addr=`)
			ingress, _, _ := strings.Cut(rest, "\n")
			_, rest, _ = strings.Cut(out, `msg="admin listening" url=`)
			admin, _, _ := strings.Cut(rest, "\n")
			if ingress == "" || admin == "" {
				t.Fatalf("no ingress or admin address in\n%s", out)
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "INGRESS", ingress); !strings.Contains(out, w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out, a) {
					t.Errorf("%q in\n%s", a, out)
				}
			}
			for _, args := range [][]string{{"healthcheck", "--admin", admin}, {"healthcheck", "--ready", "--admin", admin}} {
				if code, stdout, errOut := runCLI(args...); code != 0 || !strings.Contains(stdout, ": 200 OK") {
					t.Errorf("junction %v: exit %d, stdout %q, stderr %q", args, code, stdout, errOut)
				}
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@a:4222,nats://b:4222", "nats://xxxxx@a:4222,nats://b:4222"},
		{"nats://s3cr3t-token@a:4222", "nats://xxxxx@a:4222"},
	}
	for _, tt := range tests {
		if got := redactURLs(tt.in); got != tt.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
