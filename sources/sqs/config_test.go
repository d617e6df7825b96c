package sqssource

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
	return plugintest.Decode(t, src, `source "orders"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	const q = "queueUrl: https://sqs.eu-west-1.amazonaws.com/123456789012/orders\n"
	cases := []plugintest.Case{
		{"minimal", q, ""},
		{"full", q + `region: eu-west-1
endpoint: http://127.0.0.1:4566
pollers: 4
batchSize: 5
waitTime: 0s
visibilityTimeout: 12h
eventType: com.example.order`, ""},
		{"missing queueUrl", "pollers: 1", `config:1:1: source "orders": queueUrl: required`},
		{"queueUrl scheme", "queueUrl: sqs://orders", `config:1:11: source "orders": queueUrl: "sqs://orders" is not a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/orders`},
		{"queueUrl no name", "queueUrl: https://sqs.us-east-1.amazonaws.com/", `config:1:11: source "orders": queueUrl: "https://sqs.us-east-1.amazonaws.com/" has no queue name (the last path segment)`},
		{"region", q + "region: US East", `config:2:9: source "orders": region: "US East" is not a region name such as us-east-1`},
		{"endpoint", q + "endpoint: 127.0.0.1:4566", `config:2:11: source "orders": endpoint: "127.0.0.1:4566" is not an http or https URL such as http://127.0.0.1:4566`},
		{"pollers", q + "pollers: 0", `config:2:10: source "orders": pollers: must be between 1 and 100`},
		{"batchSize", q + "batchSize: 11", `config:2:12: source "orders": batchSize: must be between 1 and 10 (an SQS limit)`},
		{"waitTime too long", q + "waitTime: 21s", `config:2:11: source "orders": waitTime: must be whole seconds between 0s and 20s (an SQS limit)`},
		{"waitTime fraction", q + "waitTime: 1500ms", `config:2:11: source "orders": waitTime: must be whole seconds between 0s and 20s (an SQS limit)`},
		{"waitTime type", q + "waitTime: soon", `config:2:11: source "orders": waitTime: invalid duration "soon" (use a number with a unit: 200ms, 10s, 1m)`},
		{"visibilityTimeout zero", q + "visibilityTimeout: 0s", `config:2:20: source "orders": visibilityTimeout: must be whole seconds between 1s and 12h (an SQS limit)`},
		{"visibilityTimeout too long", q + "visibilityTimeout: 13h", `config:2:20: source "orders": visibilityTimeout: must be whole seconds between 1s and 12h (an SQS limit)`},
		{"eventType empty", q + "eventType: ' '", `config:2:12: source "orders": eventType: must not be empty`},
		{"unknown key", q + "queue: x", `config:2:1: source "orders": unknown key "queue" (known keys: batchSize, endpoint, eventType, pollers, queueUrl, region, visibilityTimeout, waitTime)`},
		{"every problem at once", "pollers: 101\nbatchSize: 0", strings.Join([]string{
			`config:1:1: source "orders": queueUrl: required`,
			`config:1:10: source "orders": pollers: must be between 1 and 100`,
			`config:2:12: source "orders": batchSize: must be between 1 and 10 (an SQS limit)`,
		}, "\n")},
	}
	plugintest.CheckCases(t, check, cases)
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "queueUrl: https://sqs.us-east-1.amazonaws.com/123456789012/orders")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.Pollers != 2 || c.BatchSize != 10 || c.WaitTime != 20*time.Second || c.VisibilityTimeout != 30*time.Second ||
		c.EventType != "com.amazonaws.sqs.message" || c.Region != "" || c.Endpoint != "" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sources.Lookup("sqs")
	if !ok {
		t.Fatal(`source type "sqs" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	for _, e := range plugintest.DecodeExample(t, exampleYAML, nil, "source", Type, NewConfig) {
		c := e.Config
		if c.QueueURL != "http://127.0.0.1:4566/000000000000/orders" || c.Endpoint != "http://127.0.0.1:4566" ||
			c.EventType != "com.example.order" || c.VisibilityTimeout != 30*time.Second {
			t.Errorf("example source: %+v", c)
		}
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
