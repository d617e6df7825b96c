package lambdasink

import (
	_ "embed"
	"strings"
	"testing"

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
	return plugintest.Decode(t, src, `sink "fn"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	cases := []plugintest.Case{
		{"name", "function: label-push", ""},
		{"name and alias", "function: label-push:live", ""},
		{"ARN", "function: arn:aws:lambda:eu-west-1:123456789012:function:label-push", ""},
		{"ARN with version", "function: arn:aws:lambda:eu-west-1:123456789012:function:label-push:7", ""},
		{"partial ARN", "function: 123456789012:function:label-push", ""},
		{"full", `
function: label-push
region: eu-west-1
endpoint: http://127.0.0.1:3002
invocationType: Event
payload: data
qualifier: $LATEST`, ""},
		{"missing function", "region: us-east-1", `config:1:1: sink "fn": function: required`},
		{"bad function", "function: label push", `config:1:11: sink "fn": function: "label push" is not a function name (letters, digits, '-' and '_', at most 64) or ARN such as arn:aws:lambda:us-east-1:123456789012:function:label-push`},
		{"bad ARN", "function: arn:aws:s3:::bucket", `config:1:11: sink "fn": function: "arn:aws:s3:::bucket" is not a function name (letters, digits, '-' and '_', at most 64) or ARN such as arn:aws:lambda:us-east-1:123456789012:function:label-push`},
		{"name too long", "function: " + strings.Repeat("f", 65), `config:1:11: sink "fn": function: "` + strings.Repeat("f", 65) + `" is not a function name (letters, digits, '-' and '_', at most 64) or ARN such as arn:aws:lambda:us-east-1:123456789012:function:label-push`},
		{"region", "function: f\nregion: EU West", `config:2:9: sink "fn": region: "EU West" is not a region name such as us-east-1`},
		{"endpoint", "function: f\nendpoint: 127.0.0.1:3002", `config:2:11: sink "fn": endpoint: "127.0.0.1:3002" is not an http or https URL such as http://127.0.0.1:3002`},
		{"invocationType", "function: f\ninvocationType: DryRun", `config:2:17: sink "fn": invocationType: must be RequestResponse or Event, not "DryRun"`},
		{"invocationType case", "function: f\ninvocationType: event", `config:2:17: sink "fn": invocationType: must be RequestResponse or Event, not "event"`},
		{"payload", "function: f\npayload: body", `config:2:10: sink "fn": payload: must be event or data, not "body"`},
		{"qualifier", "function: f\nqualifier: v 1", `config:2:12: sink "fn": qualifier: "v 1" is not a version or alias name`},
		{"unknown key", "function: f\nfunctionName: f", `config:2:1: sink "fn": unknown key "functionName" (known keys: endpoint, function, invocationType, payload, qualifier, region)`},
		{"every problem at once", "invocationType: x\npayload: y", strings.Join([]string{
			`config:1:1: sink "fn": function: required`,
			`config:1:17: sink "fn": invocationType: must be RequestResponse or Event, not "x"`,
			`config:2:10: sink "fn": payload: must be event or data, not "y"`,
		}, "\n")},
	}
	plugintest.CheckCases(t, check, cases)
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "function: f")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.InvocationType != "RequestResponse" || c.Payload != "event" || c.Region != "" || c.Endpoint != "" || c.Qualifier != "" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sinks.Lookup(Type)
	if !ok {
		t.Fatal(`sink type "lambda" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	for _, env := range []struct {
		vars     map[string]string
		endpoint string
	}{
		{nil, "http://127.0.0.1:3002"},
		{map[string]string{"LAMBDA_ENDPOINT": "http://127.0.0.1:4002"}, "http://127.0.0.1:4002"},
	} {
		for _, e := range plugintest.DecodeExample(t, exampleYAML, env.vars, "sink", Type, NewConfig) {
			c := e.Config
			if c.Function != fnLabelPush || c.Endpoint != env.endpoint || c.InvocationType != InvocationRequestResponse || c.Payload != PayloadEvent {
				t.Errorf("example sink: %+v", c)
			}
		}
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
