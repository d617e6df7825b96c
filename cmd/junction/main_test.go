package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
