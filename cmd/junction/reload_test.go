package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/router"
)

func TestReloadStatusHelp(t *testing.T) {
	for _, cmd := range []string{"reload", "status"} {
		for _, form := range [][]string{{"help", cmd}, {cmd, "--help"}, {cmd, "-h"}} {
			code, stdout, stderr := runCLI(form...)
			for _, want := range []string{"Usage: junction " + cmd, "      --admin URL ", "  -c, --config FILE ", "      --json ", "\nExamples:\n  junction " + cmd} {
				if code != 0 || stderr != "" || !strings.Contains(stdout, want) {
					t.Errorf("junction %v: exit %d, stderr %q, no %q in\n%s", form, code, stderr, want, stdout)
				}
			}
		}
	}
	if code, _, stderr := runCLI("reload", "extra"); code != 2 || !strings.Contains(stderr, `junction reload: unexpected argument "extra"`) {
		t.Errorf("reload extra: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI("serve", "--watch", "-c", "testdata/valid.yaml", "x"); code != 2 || !strings.Contains(stderr, "unexpected argument") {
		t.Errorf("serve --watch x: exit %d, %q", code, stderr)
	}
}

// TestLenientAdminURL: a config that does not load (the broken edit a
// reload refuses) still says where its admin API is.
func TestLenientAdminURL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "junction.yaml")
	os.WriteFile(path, []byte(`admin: {listen: 127.0.0.1:9191}
routes:
  - {name: r, to: [nowhere]}
`), 0o644)
	if _, err := adminURL(path); err == nil {
		t.Fatal("the broken config loads; the test needs one that does not")
	}
	if got, ok := lenientAdminURL(path); !ok || got != "127.0.0.1:9191" {
		t.Errorf("lenientAdminURL = %q, %v", got, ok)
	}
	os.WriteFile(path, []byte("admin: {listen: off}\n"), 0o644)
	if got, ok := lenientAdminURL(path); ok {
		t.Errorf("lenientAdminURL of admin.listen off = %q", got)
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	at := now.Add(-90 * time.Second)
	pending, limit, msg := uint64(3), "200/s", "POST http://127.0.0.1:9/hook: connection refused"
	st := router.Status{Ready: true, Version: "v1.2.3", Summary: "1 source, 2 sinks, 1 route",
		Sources: []router.SourceStatus{{Name: "events", Type: "http", Ready: true}},
		Routes:  []router.RouteStatus{{Name: "all", Sources: []string{}, To: []string{"billing", "audit"}}},
		Sinks: []router.SinkStatus{
			{Name: "billing", Type: "webhook", Pending: &pending, Circuit: "open", RateLimit: &limit, LastError: &msg, LastErrorAt: &at},
			{Name: "audit", Type: "webhook", Circuit: "closed"},
		}}
	var out bytes.Buffer
	printStatus(&out, st, now)
	want := `junction v1.2.3: ready: 1 source, 2 sinks, 1 route

SOURCES
NAME    TYPE  READY
events  http  yes

ROUTES
NAME  SOURCES  TO
all   (all)    billing,audit

SINKS
NAME     TYPE     PENDING  CIRCUIT  RATE LIMIT  LAST ERROR
billing  webhook  3        open     200/s       POST http://127.0.0.1:9/hook: connection refused (1m30s ago)
audit    webhook  ?        closed   -           -
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestWatchNeedsAFile(t *testing.T) {
	t.Chdir(t.TempDir()) // no junction.yaml: the built-in default
	code, _, stderr := runCLI("serve", "--watch")
	if code != 2 || !strings.Contains(stderr, "junction serve: --watch needs a config file") {
		t.Errorf("serve --watch without a file: exit %d, %q", code, stderr)
	}
}
