package amqpsource

import (
	"context"
	_ "embed"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
)

//go:embed example.yaml
var exampleYAML string

//go:embed README.md
var readme string

func sourcesDeps(name string, logs io.Writer) sources.Deps {
	return sources.Deps{Name: name, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// check decodes a source's own keys like the loader does and returns every
// problem as FILE:LINE:COL lines.
func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	return plugintest.Decode(t, src, `source "q"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	cases := []plugintest.Case{
		{"minimal", "url: amqp://127.0.0.1\nqueue: orders", ""},
		{"full", `
url: amqps://user:p%40ss@rabbit.example.com:5671/prod?heartbeat=5
queue: orders
prefetch: 500
consumerTag: junction-1
eventType: com.example.thing
declare:
  arguments:
    x-queue-type: quorum
    x-dead-letter-exchange: dlx
    x-delivery-limit: 20
    x-single-active-consumer: true`, ""},
		{"declare without arguments", "url: amqp://h\nqueue: q\ndeclare: {}", ""},
		{"missing url and queue", "prefetch: 1", strings.Join([]string{
			`config:1:1: source "q": url: required: the broker's AMQP URI, such as amqp://user:password@host:5672/vhost`,
			`config:1:1: source "q": queue: required: the queue to consume`,
		}, "\n")},
		{"scheme", "url: http://h/\nqueue: q", `config:1:6: source "q": url: scheme must be amqp or amqps, not "http"`},
		{"no host", "url: 'amqp://'\nqueue: q", `config:1:6: source "q": url: missing host`},
		{"bad password never echoed", "url: 'amqp://u:s3cr#t@h/'\nqueue: q", `config:1:6: source "q": url: invalid AMQP URI: invalid port (a password with reserved characters such as @ : / ? # must be percent-encoded)`},
		{"bad port", "url: 'amqp://u:s3cret@h:port/'\nqueue: q", `config:1:6: source "q": url: invalid AMQP URI: invalid port (a password with reserved characters such as @ : / ? # must be percent-encoded)`},
		{"bad heartbeat", "url: 'amqp://u:s3cret@h/?heartbeat=x'\nqueue: q", `config:1:6: source "q": url: invalid AMQP URI: heartbeat is not an uint16: strconv.ParseUint: parsing "x": invalid syntax`},
		{"prefetch zero", "url: amqp://h\nqueue: q\nprefetch: 0", `config:3:11: source "q": prefetch: must be between 1 and 65535, not 0`},
		{"prefetch too big", "url: amqp://h\nqueue: q\nprefetch: 70000", `config:3:11: source "q": prefetch: must be between 1 and 65535, not 70000`},
		{"prefetch type", "url: amqp://h\nqueue: q\nprefetch: lots", `config:3:11: source "q": prefetch: invalid integer "lots"`},
		{"empty eventType", "url: amqp://h\nqueue: q\neventType: ''", `config:3:12: source "q": eventType: must be a non-empty CloudEvents type`},
		{"long queue", "url: amqp://h\nqueue: " + strings.Repeat("q", 256), `config:2:8: source "q": queue: longer than 255 bytes`},
		{"null argument", "url: amqp://h\nqueue: q\ndeclare:\n  arguments:\n    x-dead-letter-exchange:", `config:5:28: source "q": declare.arguments.x-dead-letter-exchange: needs a value`},
		{"declare unknown key", "url: amqp://h\nqueue: q\ndeclare:\n  durable: true", `config:4:3: source "q": declare: unknown key "durable" (known keys: arguments)`},
		{"format s3", "url: amqp://h\nqueue: q\nformat: s3", ""},
		{"format cloudevents", "url: amqp://h\nqueue: q\nformat: cloudevents\neventType: t", ""},
		{"format", "url: amqp://h\nqueue: q\nformat: minio", `config:3:9: source "q": format: must be cloudevents or s3, not "minio"`},
		{"format empty is the default", "url: amqp://h\nqueue: q\nformat: ''", ""},
		{"eventType with format s3", "url: amqp://h\nqueue: q\nformat: s3\neventType: t", `config:4:12: source "q": eventType: applies to format cloudevents only: format s3 gives S3 event types`},
		{"unknown key", "url: amqp://h\nqueue: q\nexchange: x", `config:3:1: source "q": unknown key "exchange" (known keys: consumerTag, declare, eventType, format, prefetch, queue, url)`},
		{"typo", "url: amqp://h\nqueue: q\nprefech: 3", `config:3:1: source "q": unknown key "prefech" (did you mean "prefetch"?)`},
	}
	plugintest.CheckCases(t, check, cases, "s3cret", "s3cr#t", "p%40ss")
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "url: amqp://guest:guest@127.0.0.1:5672/\nqueue: orders")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.Prefetch != 64 || c.EventType != "com.rabbitmq.message" || c.Format != "cloudevents" || c.ConsumerTag != "" || c.Declare != nil {
		t.Errorf("defaults: %+v", c)
	}
	built, err := c.Build(context.Background(), sourcesDeps("orders", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	s := built.(*Source)
	if s.tag != "junction-orders" || s.source != "amqp://127.0.0.1:5672/orders" || s.host != "127.0.0.1:5672" || s.declare {
		t.Errorf("built: tag %q source %q host %q declare %v", s.tag, s.source, s.host, s.declare)
	}
}

func TestDeclareArguments(t *testing.T) {
	c, errs := check(t, `
url: amqp://h
queue: q
declare:
  arguments:
    x-queue-type: quorum
    x-delivery-limit: 20
    x-single-active-consumer: true
    x-list: [1, a]`)
	if errs != "" {
		t.Fatal(errs)
	}
	built, err := c.Build(context.Background(), sourcesDeps("q", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	s := built.(*Source)
	if err := s.args.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.args["x-queue-type"] != "quorum" || s.args["x-delivery-limit"] != int64(20) || s.args["x-single-active-consumer"] != true {
		t.Errorf("args: %#v", s.args)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sources.Lookup(Type)
	if !ok {
		t.Fatal(`source type "amqp" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	for _, e := range plugintest.DecodeExample(t, exampleYAML, nil, "source", Type, NewConfig) {
		c := e.Config
		if c.URL != "amqp://guest:guest@127.0.0.1:5672/" || c.Queue != "orders" || c.Declare == nil ||
			c.Declare.Arguments["x-queue-type"] != "quorum" || c.EventType != "com.example.order" {
			t.Errorf("example source: %+v", c)
		}
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
