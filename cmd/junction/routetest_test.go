package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRouteTestsPass(t *testing.T) {
	code, stdout, stderr := runCLI("test", "testdata/routetest/pass.yaml", "-c", "testdata/routetest/junction.yaml")
	want := `ok    big orders go to billing
ok    small orders match nothing
ok    partner events are audited
ok    a failed transform is dead-lettered
ok    tiers with a kind are audited
5 tests passed
`
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 0 and\n%s", code, stdout, stderr, want)
	}
}

// TestRouteTestsFail checks the report of failing tests (a wrong value, an
// unexpected delivery, a dead-lettered event, mistakes in the test file)
// against testdata/routetest/fail.golden (go test -update rewrites it).
func TestRouteTestsFail(t *testing.T) {
	code, stdout, stderr := runCLI("test", "--config", "testdata/routetest/junction.yaml", "testdata/routetest/fail.yaml")
	if code != 1 || stderr != "" {
		t.Errorf("exit %d, stderr %q; want exit 1 and the report on stdout", code, stderr)
	}
	const golden = "testdata/routetest/fail.golden"
	if *update {
		os.WriteFile(golden, []byte(stdout), 0o644)
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/junction -update)", err)
	}
	if stdout != string(want) {
		t.Errorf("report differs from %s\n--- got\n%s--- want\n%s", golden, stdout, want)
	}
	for _, s := range []string{
		"FAIL  big orders go to billing (testdata/routetest/fail.yaml:2)\n      sink billing, event 1: data.total: expected 15, got 150\n",
		"sink audit: expected nothing, got 1 event",
		`testdata/routetest/fail.yaml:23:14: test "typo in a sink": expect: unknown sink "biling" (did you mean "billing"?)`,
		"6 of 7 tests failed\n",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

func TestRouteTestsErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownKey := write("unknown.yaml", "tests:\n  - name: x\n    evnt: {}\n")
	empty := write("empty.yaml", "tests: []\n")
	badConfig := write("bad.yaml", "routes:\n  - {name: r, to: [nowhere]}\n")
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"test"}, 2, "", "junction test: name at least one FILE of tests\n"},
		{[]string{"test", "-c", "testdata/routetest/junction.yaml", unknownKey}, 1,
			unknownKey + ":3:5: tests[0]: unknown key \"evnt\" (did you mean \"event\"?)\n0 of 0 tests failed; 1 test file could not be read\n", ""},
		{[]string{"test", "-c", "testdata/routetest/junction.yaml", empty, "testdata/routetest/pass.yaml"}, 1,
			"", ""},
		{[]string{"test", "-c", badConfig, "testdata/routetest/pass.yaml"}, 1, "", badConfig + ":2:20: route \"r\": to: unknown sink \"nowhere\"\n"},
		{[]string{"test", "-c", "testdata/routetest/junction.yaml", dir + "/none.yaml"}, 1,
			"read tests: open " + dir + "/none.yaml: no such file or directory\n0 of 0 tests failed; 1 test file could not be read\n", ""},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(tt.args...)
		if code != tt.code || tt.stdout != "" && stdout != tt.stdout || !strings.HasPrefix(stderr, tt.stderr) || tt.stderr == "" && stderr != "" {
			t.Errorf("%q: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
	if _, stdout, _ := runCLI("test", "-c", "testdata/routetest/junction.yaml", empty, "testdata/routetest/pass.yaml"); !strings.HasPrefix(stdout, empty+"\n"+empty+":1:1: tests: the list is empty\ntestdata/routetest/pass.yaml\nok    big orders go to billing\n") ||
		!strings.HasSuffix(stdout, "0 of 5 tests failed; 1 test file could not be read\n") {
		t.Errorf("an empty file among others:\n%s", stdout)
	}
}

func TestRouteTestsHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "test"}, {"test", "--help"}} {
		code, stdout, _ := runCLI(args...)
		if code != 0 || !strings.HasPrefix(stdout, "Usage: junction test [--config FILE] FILE...") ||
			!strings.Contains(stdout, "--config FILE") || !strings.Contains(stdout, "expect: {}") {
			t.Errorf("%q: exit %d\n%s", args, code, stdout)
		}
	}
	code, stdout, _ := runCLI("help", "schema")
	if code != 0 || !strings.Contains(stdout, "# yaml-language-server: $schema=./junction.schema.json") {
		t.Errorf("help schema: exit %d\n%s", code, stdout)
	}
}

// TestExampleRouteTests runs `junction test` on every example: each
// examples/NAME has a tests.yaml beside its config, and its tests pass.
func TestExampleRouteTests(t *testing.T) {
	dirs, _ := filepath.Glob("../../examples/*")
	n := 0
	for _, dir := range dirs {
		configs, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		var cfg string
		for _, c := range configs {
			if filepath.Base(c) != "tests.yaml" {
				cfg = c
			}
		}
		if cfg == "" {
			continue // not an example with a config
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			tests := filepath.Join(dir, "tests.yaml")
			if _, err := os.Stat(tests); err != nil {
				t.Fatalf("%v: every example has route tests beside its config", err)
			}
			code, stdout, stderr := runCLI("test", "--config", cfg, tests)
			if code != 0 || !strings.HasSuffix(stdout, " passed\n") {
				t.Errorf("junction test -c %s %s: exit %d\n%s%s", cfg, tests, code, stdout, stderr)
			}
		})
	}
	if n < 5 {
		t.Errorf("found only %d examples", n)
	}
}
