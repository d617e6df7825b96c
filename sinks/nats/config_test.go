package natssink

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
	return plugintest.Decode(t, src, `sink "out"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want string
	}{
		{"fixed subject", `subject: '"orders.created"'`, ""},
		{"single quotes", `subject: "'orders.created'"`, ""},
		{"expression", `subject: '"orders." + type'`, ""},
		{"extension", `subject: tenant`, ""},
		{"data path", `subject: data.customer.region`, ""},
		{"full", `
url: tls://a:4222,tls://b:4222
user: u
password: s3cret
tls: {caFile: /ca.pem}
subject: '"orders." + tenant'
jetstream: false
format: structured`, ""},
		{"missing subject", "format: binary", `config:1:1: sink "out": subject: required: an expression such as '"orders.created"' (a fixed subject, quoted) or '"orders." + type'`},
		{"bare subject", "url: nats://h:4222\nsubject: orders.created", `config:2:10: sink "out": subject: orders.created is an expression, not a fixed subject; write a fixed subject as a quoted string inside the YAML value: '"orders.created"'`},
		{"bare subject with dash", "subject: orders-eu", `config:1:10: sink "out": subject: orders-eu is an expression, not a fixed subject; write a fixed subject as a quoted string inside the YAML value: '"orders-eu"'`},
		{"bare wildcard", "subject: orders.*", `config:1:10: sink "out": subject: orders.* is an expression, not a fixed subject; write a fixed subject as a quoted string inside the YAML value: '"orders.*"'`},
		{"quoted wildcard", `subject: '"orders.>"'`, `config:1:10: sink "out": subject: invalid subject "orders.>": wildcards cannot be published to`},
		{"quoted empty token", `subject: '"orders..x"'`, `config:1:10: sink "out": subject: invalid subject "orders..x": empty token`},
		{"quoted space", `subject: '"orders x"'`, `config:1:10: sink "out": subject: invalid subject "orders x": white space and control characters are not allowed`},
		{"syntax error", `subject: '"orders." +'`, `config:1:10: sink "out": subject: unexpected token EOF (1:11)`},
		{"subject not a string", "subject: [a]", `config:1:10: sink "out": subject: expected an expression (a string), got a list`},
		{"format", "subject: tenant\nformat: json", `config:2:9: sink "out": format: must be binary or structured, not "json"`},
		{"jetstream type", "subject: tenant\njetstream: maybe", `config:2:12: sink "out": jetstream: invalid boolean "maybe" (use true or false)`},
		{"url", "subject: tenant\nurl: redis://h", `config:2:6: sink "out": url: server URL: scheme must be nats, tls, ws or wss, not "redis"`},
		{"token and user", "subject: tenant\nuser: u\ntoken: s3cret", `config:3:8: sink "out": token: use one of credentials, user/password or token, not user and token`},
		{"unknown key", "subject: tenant\nstream: S", `config:2:1: sink "out": unknown key "stream" (known keys: credentials, format, jetstream, password, subject, tls, token, url, user)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := check(t, tc.yaml)
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("errors:\n got %s\nwant %s", got, tc.want)
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("an error shows a secret: %s", got)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "subject: tenant")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.URL != "nats://127.0.0.1:4222" || !c.JetStream || c.Format != "binary" || c.TLS != nil {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sinks.Lookup("nats")
	if !ok {
		t.Fatal(`sink type "nats" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	if n := len(plugintest.DecodeExample(t, exampleYAML, nil, "sink", Type, NewConfig)); n != 2 {
		t.Fatalf("example.yaml has %d nats sinks, want 2", n)
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, plugintest.YAMLBlock(exampleYAML))
}
