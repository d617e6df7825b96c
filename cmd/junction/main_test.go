package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
		{[]string{"validate"}, 2, "--config FILE is required"},
		{[]string{"validate", "--config", "testdata/does-not-exist.yaml"}, 1, "read config: open testdata/does-not-exist.yaml: no such file or directory"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"bench", "--connections", "0"}, 2, "--connections must be between 1 and 4096"},
		{[]string{"bench", "--fsync", "never"}, 2, "--fsync must be interval or always"},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.err) {
			t.Errorf("junction %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.err)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(stdout, "junction ") {
		t.Fatalf("exit %d, %q", code, stdout)
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
