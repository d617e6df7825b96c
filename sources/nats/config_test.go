package natssource

import (
	_ "embed"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
)

//go:embed example.yaml
var exampleYAML string

//go:embed README.md
var readme string

// check decodes a source's own keys like the loader does and returns every
// problem as FILE:LINE:COL lines.
func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	return plugintest.Decode(t, src, `source "in"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	cases := []plugintest.Case{
		{"jetstream", "stream: ORDERS", ""},
		{"core", "subject: telemetry.>", ""},
		{"full jetstream", `
url: nats://a:4222, tls://b:4222
credentials: /etc/nats/user.creds
tls:
  caFile: /ca.pem
  certFile: /c.pem
  keyFile: /c.key
stream: ORDERS
subject: orders.*.created
durable: my-durable
concurrency: 8
maxAckPending: 100
ackWait: 1m
deliverPolicy: new
deadLetterSubject: dead.orders
eventType: com.example.msg`, ""},
		{"full core", "url: ws://h:80\nuser: u\npassword: p\nsubject: a.b\nqueue: q\nconcurrency: 1", ""},
		{"nothing", "url: nats://h:4222", `config:1:1: source "in": subject: required: set stream (JetStream, at least once) or subject (core NATS, at most once)`},
		{"empty url", "url: ''\nstream: S", `config:1:6: source "in": url: required`},
		{"url scheme", "url: http://h:4222\nstream: S", `config:1:6: source "in": url: server URL: scheme must be nats, tls, ws or wss, not "http"`},
		{"url list", "url: 'nats://a:1,,nats://b:2'\nstream: S", `config:1:6: source "in": url: empty server URL (server 2)`},
		{"url without host", "url: 'nats://'\nstream: S", `config:1:6: source "in": url: server URL: missing host`},
		{"url secret not echoed", "url: 'nats://u:s3cret@a b'\nstream: S", `config:1:6: source "in": url: invalid server URL: use nats://host:port`},
		{"two auth", "stream: S\ncredentials: /c\ntoken: s3cret", `config:3:8: source "in": token: use one of credentials, user/password or token, not credentials and token`},
		{"password alone", "stream: S\npassword: s3cret", `config:2:11: source "in": password: requires user`},
		{"cert without key", "stream: S\ntls:\n  certFile: /c.pem", `config:3:3: source "in": tls.keyFile: required with tls.certFile`},
		{"tls unknown key", "stream: S\ntls:\n  ca: /c.pem", `config:3:3: source "in": tls: unknown key "ca" (known keys: caFile, certFile, keyFile)`},
		{"bad stream", "stream: a.b", `config:1:9: source "in": stream: invalid stream name "a.b" (no spaces, '.', '*', '>', '/' or '\')`},
		{"queue with stream", "stream: S\nqueue: q", `config:2:8: source "in": queue: applies to core NATS only (without stream); a durable consumer already shares its messages among the replicas that use it`},
		{"durable without stream", "subject: a\ndurable: d", `config:2:10: source "in": durable: applies to JetStream only: set stream`},
		{"ackWait without stream", "subject: a\nackWait: 5s", `config:2:10: source "in": ackWait: applies to JetStream only: set stream`},
		{"bad subject", "subject: 'a..b'", `config:1:10: source "in": subject: invalid subject "a..b": empty token`},
		{"bad wildcard", "subject: 'a.b>'", `config:1:10: source "in": subject: invalid subject "a.b>": a wildcard must be a whole token`},
		{"gt not last", "subject: 'a.>.b'", `config:1:10: source "in": subject: invalid subject "a.>.b": '>' must be the last token`},
		{"bad durable", "stream: S\ndurable: 'a b'", `config:2:10: source "in": durable: invalid consumer name "a b" (no spaces, '.', '*', '>', '/' or '\')`},
		{"concurrency", "stream: S\nconcurrency: 0", `config:2:14: source "in": concurrency: must be between 1 and 10000`},
		{"maxAckPending", "stream: S\nmaxAckPending: 0", `config:2:16: source "in": maxAckPending: must be at least 1`},
		{"ackWait", "stream: S\nackWait: 100ms", `config:2:10: source "in": ackWait: must be at least 1s`},
		{"ackWait type", "stream: S\nackWait: soon", `config:2:10: source "in": ackWait: invalid duration "soon" (use a number with a unit: 200ms, 10s, 1m)`},
		{"deliverPolicy", "stream: S\ndeliverPolicy: last", `config:2:16: source "in": deliverPolicy: must be all or new, not "last"`},
		{"dead letter wildcard", "stream: S\ndeadLetterSubject: dead.*", `config:2:20: source "in": deadLetterSubject: invalid subject "dead.*": wildcards are not allowed here`},
		{"eventType", "stream: S\neventType: ' '", `config:2:12: source "in": eventType: must not be empty`},
		{"format s3", "stream: S\nformat: s3", ""},
		{"format cloudevents", "subject: a\nformat: cloudevents\neventType: t", ""},
		{"format", "stream: S\nformat: minio", `config:2:9: source "in": format: must be cloudevents or s3, not "minio"`},
		{"format empty", "stream: S\nformat: ''", `config:2:9: source "in": format: must be cloudevents or s3, not ""`},
		{"eventType with format s3", "stream: S\nformat: s3\neventType: t", `config:3:12: source "in": eventType: applies to format cloudevents only: format s3 gives S3 event types`},
		{"unknown key", "stream: S\nfilter: x", `config:2:1: source "in": unknown key "filter" (known keys: ackWait, concurrency, credentials, deadLetterSubject, deliverPolicy, durable, eventType, format, maxAckPending, password, queue, stream, subject, tls, token, url, user)`},
		{"every problem at once", "stream: a b\nconcurrency: -1\ndeliverPolicy: x", strings.Join([]string{
			`config:1:9: source "in": stream: invalid stream name "a b" (no spaces, '.', '*', '>', '/' or '\')`,
			`config:2:14: source "in": concurrency: must be between 1 and 10000`,
			`config:3:16: source "in": deliverPolicy: must be all or new, not "x"`,
		}, "\n")},
	}
	plugintest.CheckCases(t, check, cases, "s3cret")
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "stream: S")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.URL != "nats://127.0.0.1:4222" || c.Concurrency != 32 || c.MaxAckPending != 1000 || c.AckWait != 30*time.Second ||
		c.DeliverPolicy != "all" || c.EventType != "io.nats.message" || c.Format != "cloudevents" || c.Durable != "" || c.TLS != nil {
		t.Errorf("defaults: %+v", c)
	}
	built, err := c.Build(t.Context(), sources.Deps{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if d := built.(*Source).durable; d != "junction-orders" {
		t.Errorf("default durable %q", d)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
	}{
		{"stream: S\ncredentials: /nonexistent/user.creds", "read credentials: stat /nonexistent/user.creds: no such file or directory"},
		{"stream: S\ntls: {caFile: /nonexistent/ca.pem}", "read tls.caFile: open /nonexistent/ca.pem: no such file or directory"},
		{"stream: S\ntls: {caFile: config_test.go}", "read tls.caFile config_test.go: no PEM certificate found"},
	} {
		c, errs := check(t, tc.yaml)
		if errs != "" {
			t.Fatal(errs)
		}
		_, err := c.Build(t.Context(), sources.Deps{Name: "x"})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %s", tc.yaml, err, tc.want)
		}
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sources.Lookup("nats")
	if !ok {
		t.Fatal(`source type "nats" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

// TestExample loads example.yaml like the loader does and decodes and
// validates each nats source in it.
func TestExample(t *testing.T) {
	entries := plugintest.DecodeExample(t, exampleYAML, nil, "source", Type, NewConfig)
	for _, e := range entries {
		if e.Config.URL != "nats://127.0.0.1:4222" {
			t.Errorf("url default from ${NATS_URL:-...}: %q", e.Config.URL)
		}
	}
	if len(entries) != 2 {
		t.Fatalf("example.yaml has %d nats sources, want 2", len(entries))
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, plugintest.YAMLBlock(exampleYAML))
}
