package router

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sources"
)

// pathSource is a source type for these tests served on the ingress at its
// path, like the http, webhook and s3 types; with queue: true it serves
// none (like s3 on SQS).
type pathSource struct {
	Path        string          `yaml:"path"`
	Queue       bool            `yaml:"queue"`
	MaxBodySize config.ByteSize `yaml:"maxBodySize"`
}

var _ sources.HTTPConfig = (*pathSource)(nil)

func (c *pathSource) Validate() error { return nil }
func (c *pathSource) HTTPPath() string {
	if c.Queue {
		return ""
	}
	return c.Path
}
func (c *pathSource) Build(context.Context, sources.Deps) (any, error) {
	return pathHandler{c.Path}, nil
}

type pathHandler struct{ path string }

func (h pathHandler) Path() string                          { return h.path }
func (h pathHandler) Handler(sources.Ingester) http.Handler { return http.NotFoundHandler() }

func init() {
	sources.Register("test-path", func() sources.Config { return &pathSource{} })
}

func TestCompileChecksSources(t *testing.T) {
	tests := []struct {
		name, yaml, err string
	}{
		{name: "paths of their own", yaml: `
sources:
  - {name: a, type: test-path, path: /a}
  - {name: b, type: test-path, path: /b}
  - {name: c, type: test-path, path: /a/}
`},
		{name: "one path twice", yaml: `
sources:
  - {name: a, type: test-path, path: /events}
  - {name: b, type: test-path, path: /other}
  - {name: c, type: test-path, path: /events}
`, err: `test.yaml:5:38: source "c": path: /events is already the path of source "a"; each source on the HTTP ingress needs a path of its own`},
		{name: "one path three times", yaml: `
sources:
  - {name: a, type: test-path, path: /events}
  - {name: b, type: test-path, path: /events}
  - {name: c, type: test-path, path: /events}
`, err: `test.yaml:4:38: source "b": path: /events is already the path of source "a"; each source on the HTTP ingress needs a path of its own
test.yaml:5:38: source "c": path: /events is already the path of source "a"; each source on the HTTP ingress needs a path of its own`},
		{name: "not served on the ingress", yaml: `
sources:
  - {name: a, type: test-path, path: /events}
  - {name: b, type: test-path, path: /events, queue: true}
  - {name: c, type: test-idle}
`},
		{name: "auth and rateLimit on the ingress", yaml: `
sources:
  - {name: a, type: test-path, path: /a, auth: {bearer: [t0ken]}, rateLimit: 10/s}
`},
		{name: "auth and rateLimit off the ingress", yaml: `
sources:
  - {name: b, type: test-path, path: /b, queue: true, auth: {bearer: [t0ken]}}
  - {name: c, type: test-idle, rateLimit: 10/s}
`, err: `test.yaml:3:61: source "b": auth: applies to sources served on the HTTP ingress (with a path), and this test-path source has none
test.yaml:4:43: source "c": rateLimit: applies to sources served on the HTTP ingress (with a path), and this test-idle source has none`},
		{name: "body limit at the limit", yaml: `
sources:
  - {name: a, type: test-path, path: /a, maxBodySize: 4MiB}
`},
		{name: "body limit over the limit", yaml: `
sources:
  - {name: a, type: test-path, path: /a, maxBodySize: 8MiB}
`, err: `test.yaml:3:55: source "a": maxBodySize: 8MiB is above the limit of 4MiB (an event must fit in one journal entry, with its attributes and what transforms add)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("test.yaml", []byte(tt.yaml), os.LookupEnv)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile(cfg)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("compile:\n got  %s\n want %s", got, tt.err)
			}
		})
	}
}

// TestBodyLimitFitsJournal keeps config.MaxBodySizeLimit and the journal's
// largest entry from drifting apart: a body at the limit must leave room
// for the event's attributes and what transforms add.
func TestBodyLimitFitsJournal(t *testing.T) {
	if int64(config.MaxBodySizeLimit) > journal.MaxPayload/2 {
		t.Fatalf("config.MaxBodySizeLimit = %v, more than half of journal.MaxPayload (%v)", config.MaxBodySizeLimit, config.ByteSize(journal.MaxPayload))
	}
}

// replicaSource is a source type for these tests that warns when run on
// replicas unless its queue is set (like a core NATS subscription).
type replicaSource struct {
	Queue string `yaml:"queue"`
}

var _ sources.ReplicaConfig = (*replicaSource)(nil)

func (c *replicaSource) Validate() error { return nil }
func (c *replicaSource) ReplicaWarning() string {
	if c.Queue == "" {
		return "every replica receives every message"
	}
	return ""
}
func (c *replicaSource) Build(context.Context, sources.Deps) (any, error) { return nil, nil }

func init() {
	sources.Register("test-replica", func() sources.Config { return &replicaSource{} })
}

// TestReplicaWarning: a source whose config warns about replicas is warned
// about, at its position, only when replicas share a journal (journal.url).
func TestReplicaWarning(t *testing.T) {
	for _, tc := range []struct {
		journal, extra string
		warn           string
	}{
		{`journal: {url: "nats://127.0.0.1:4222"}`, "", `test.yaml:3:5: warning: source "n": every replica receives every message`},
		{`journal: {url: "nats://127.0.0.1:4222"}`, ", queue: junction", ""},
		{`journal: {dir: ./data}`, "", ""},
	} {
		p := compile(t, tc.journal+`
sources:
  - {name: n, type: test-replica`+tc.extra+`}
`)
		got := ""
		for _, w := range p.Warnings {
			got += w.Error()
		}
		if got != tc.warn {
			t.Errorf("%s%s: warnings %q, want %q", tc.journal, tc.extra, got, tc.warn)
		}
	}
}
