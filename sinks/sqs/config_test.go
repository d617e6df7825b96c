package sqssink

import (
	_ "embed"
	"strings"
	"testing"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sinks"
)

//go:embed example.yaml
var exampleYAML string

//go:embed README.md
var readme string

// check decodes a sink's own keys like the loader does and returns every
// problem as FILE:LINE:COL lines.
func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	return plugintest.Decode(t, src, `sink "queue"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	const q = "queueUrl: https://sqs.eu-west-1.amazonaws.com/123456789012/orders\n"
	const fifo = "queueUrl: https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo\n"
	cases := []plugintest.Case{
		{"minimal", q, ""},
		{"full", q + "region: eu-west-1\nendpoint: https://sqs.internal:4566\nformat: binary\nmessageGroupId: data.customer", ""},
		{"fifo", fifo + "messageGroupId: subject ?? source", ""},
		{"fifo without group", fifo + "format: structured", `config:1:1: sink "queue": messageGroupId: required for a FIFO queue (the queueUrl ends in .fifo), e.g. messageGroupId: source`},
		{"group does not compile", q + "messageGroupId: subject +", "config:2:17: sink \"queue\": messageGroupId: unexpected token EOF (1:9)\n | subject +\n | ........^"},
		{"group empty", q + "messageGroupId: ''", `config:2:17: sink "queue": messageGroupId: empty expression`},
		{"missing queueUrl", "format: binary", `config:1:1: sink "queue": queueUrl: required`},
		{"queueUrl scheme", "queueUrl: sqs://orders", `config:1:11: sink "queue": queueUrl: "sqs://orders" is not a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/orders`},
		{"queueUrl no name", "queueUrl: http://127.0.0.1:4566", `config:1:11: sink "queue": queueUrl: "http://127.0.0.1:4566" has no queue name (the last path segment)`},
		{"region", q + "region: Frankfurt", `config:2:9: sink "queue": region: "Frankfurt" is not a region name such as us-east-1`},
		{"endpoint", q + "endpoint: localhost", `config:2:11: sink "queue": endpoint: "localhost" is not an http or https URL such as http://127.0.0.1:4566`},
		{"format", q + "format: json", `config:2:9: sink "queue": format: must be structured or binary, not "json"`},
		{"unknown key", q + "groupId: x", `config:2:1: sink "queue": unknown key "groupId" (known keys: endpoint, format, messageGroupId, queueUrl, region)`},
		{"every problem at once", "format: xml\nregion: X", strings.Join([]string{
			`config:1:1: sink "queue": queueUrl: required`,
			`config:1:9: sink "queue": format: must be structured or binary, not "xml"`,
			`config:2:9: sink "queue": region: "X" is not a region name such as us-east-1`,
		}, "\n")},
	}
	plugintest.CheckCases(t, check, cases)
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "queueUrl: https://sqs.us-east-1.amazonaws.com/123456789012/orders")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.Format != "structured" || c.Region != "" || c.Endpoint != "" || c.MessageGroupID.IsSet() {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sinks.Lookup("sqs")
	if !ok {
		t.Fatal(`sink type "sqs" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	for _, e := range plugintest.DecodeExample(t, exampleYAML, nil, "sink", Type, NewConfig) {
		c := e.Config
		if c.QueueURL != "http://127.0.0.1:4566/000000000000/orders.fifo" || c.Format != FormatBinary || c.MessageGroupID.Src != "subject ?? source" {
			t.Errorf("example sink: %+v", c)
		}
		pol := e.Plugin.Delivery.Apply(config.DefaultPolicy)
		if pol.Retry != 5 || pol.DeadLetter != "dead" || e.Plugin.Concurrency != 64 {
			t.Errorf("example delivery: %+v", pol)
		}
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
