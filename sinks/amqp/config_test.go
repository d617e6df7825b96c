package amqpsink

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
	return plugintest.Decode(t, src, `sink "rabbit"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	cases := []plugintest.Case{
		{"minimal", `url: amqp://127.0.0.1
routingKey: '"orders"'`, ""},
		{"exchange without routing key", "url: amqp://h\nexchange: fanout-x", ""},
		{"full", `
url: amqps://user:p%40ss@rabbit.example.com:5671/prod
exchange: orders
routingKey: '"orders." + type'
format: structured
persistent: false
mandatory: false`, ""},
		{"missing url", "routingKey: '\"q\"'", `config:1:1: sink "rabbit": url: required: the broker's AMQP URI, such as amqp://user:password@host:5672/vhost`},
		{"scheme", "url: https://h/\nroutingKey: '\"q\"'", `config:1:6: sink "rabbit": url: scheme must be amqp or amqps, not "https"`},
		{"password never echoed", "url: 'amqp://u:s3cr#t@h/'\nroutingKey: '\"q\"'", `config:1:6: sink "rabbit": url: invalid AMQP URI: invalid port (a password with reserved characters such as @ : / ? # must be percent-encoded)`},
		{"default exchange needs a routing key", "url: amqp://h", `config:1:1: sink "rabbit": routingKey: required with the default exchange: an expression such as '"orders"' (the queue name, quoted) or type`},
		{"routing key does not compile", "url: amqp://h\nroutingKey: 'type +'", "config:2:13: sink \"rabbit\": routingKey: unexpected token EOF (1:6)\n | type +\n | .....^"},
		{"empty routing key", "url: amqp://h\nroutingKey: ''", `config:2:13: sink "rabbit": routingKey: empty expression`},
		{"format", "url: amqp://h\nexchange: x\nformat: json", `config:3:9: sink "rabbit": format: must be binary or structured, not "json"`},
		{"persistent type", "url: amqp://h\nexchange: x\npersistent: maybe", `config:3:13: sink "rabbit": persistent: invalid boolean "maybe" (use true or false)`},
		{"long exchange", "url: amqp://h\nexchange: " + strings.Repeat("x", 256), `config:2:11: sink "rabbit": exchange: longer than 255 bytes`},
		{"unknown key", "url: amqp://h\nexchange: x\nqueue: q", `config:3:1: sink "rabbit": unknown key "queue" (known keys: exchange, format, mandatory, persistent, routingKey, url)`},
		{"typo", "url: amqp://h\nexchange: x\nroutingkey: a", `config:3:1: sink "rabbit": unknown key "routingkey" (did you mean "routingKey"?)`},
		{"every problem at once", "format: xml\nexchange: ''", strings.Join([]string{
			`config:1:1: sink "rabbit": url: required: the broker's AMQP URI, such as amqp://user:password@host:5672/vhost`,
			`config:1:1: sink "rabbit": routingKey: required with the default exchange: an expression such as '"orders"' (the queue name, quoted) or type`,
			`config:1:9: sink "rabbit": format: must be binary or structured, not "xml"`,
		}, "\n")},
	}
	plugintest.CheckCases(t, check, cases, "s3cr", "p%40ss")
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "url: amqp://127.0.0.1\nroutingKey: '\"q\"'")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.Format != "binary" || !c.Persistent || !c.Mandatory || c.Exchange != "" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sinks.Lookup(Type)
	if !ok {
		t.Fatal(`sink type "amqp" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	for _, e := range plugintest.DecodeExample(t, exampleYAML, nil, "sink", Type, NewConfig) {
		c := e.Config
		if c.URL != "amqp://guest:guest@127.0.0.1:5672/" || c.Exchange != "orders" || c.RoutingKey.Src != `"orders." + type` ||
			c.Format != FormatBinary || !c.Persistent || !c.Mandatory || e.Plugin.Concurrency != 16 {
			t.Errorf("example sink: %+v", c)
		}
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
