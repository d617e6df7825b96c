package sqssink

import (
	_ "embed"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sinks"
)

//go:embed example.yaml
var exampleYAML string

//go:embed README.md
var readme string

// check decodes a sink's own keys like the loader does and returns every
// problem as FILE:LINE:COL lines.
func check(t *testing.T, src string) (*Config, string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	node := doc.Content[0]
	c := NewConfig()
	var errs config.Errors
	if err := config.Decode(node, c); err != nil {
		errs.Add(node, `sink "queue"`, err)
	} else {
		errs.Add(node, `sink "queue"`, c.Validate())
	}
	if err := errs.Err(); err != nil {
		return c, err.Error()
	}
	return c, ""
}

func TestConfigValidate(t *testing.T) {
	const q = "queueUrl: https://sqs.eu-west-1.amazonaws.com/123456789012/orders\n"
	const fifo = "queueUrl: https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo\n"
	cases := []struct {
		name string
		yaml string
		want string
	}{
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
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := check(t, tc.yaml)
			if got != tc.want {
				t.Errorf("errors:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
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
	lookup := func(string) (string, bool) { return "", false }
	cfg, err := config.Parse("example.yaml", []byte(exampleYAML), lookup)
	if err != nil {
		t.Fatalf("parse example.yaml:\n%v", err)
	}
	var found bool
	for _, p := range cfg.Sinks {
		if p.Type != Type {
			continue
		}
		found = true
		c := NewConfig()
		var errs config.Errors
		if err := config.Decode(p.Own, c); err != nil {
			errs.Add(p.Own, p.Where("sink"), err)
		} else {
			errs.Add(p.Own, p.Where("sink"), c.Validate())
		}
		if err := errs.Err(); err != nil {
			t.Fatalf("example.yaml:\n%v", err)
		}
		if c.QueueURL != "http://127.0.0.1:4566/000000000000/orders.fifo" || c.Format != FormatBinary || c.MessageGroupID.Src != "subject ?? source" {
			t.Errorf("example sink: %+v", c)
		}
		pol := p.Delivery.Apply(config.DefaultPolicy)
		if pol.Retry != 5 || pol.DeadLetter != "dead" || p.Concurrency != 64 {
			t.Errorf("example delivery: %+v", pol)
		}
	}
	if !found {
		t.Fatal("example.yaml has no sqs sink")
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	if !strings.Contains(readme, exampleYAML) {
		t.Error("README.md does not contain example.yaml verbatim; paste it in again")
	}
}
