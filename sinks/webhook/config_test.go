package webhooksink

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
	return plugintest.Decode(t, src, `sink "hook"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	cases := []plugintest.Case{
		{"minimal", "url: http://127.0.0.1:9999/hook", ""},
		{"full", `
url: https://hooks.example.com/in
format: structured
method: PUT
headers:
  Authorization: Bearer x
  X-Custom: "a\tb"
tls:
  caFile: /etc/ca.pem
  certFile: /etc/c.pem
  keyFile: /etc/c.key
  serverName: hooks.internal
maxIdleConns: 8`, ""},
		{"missing url", "format: binary", `config:1:1: sink "hook": url: required`},
		{"scheme", "url: ftp://example.com/x", `config:1:6: sink "hook": url: scheme must be http or https, not "ftp"`},
		{"no host", "url: 'http:///hook'", `config:1:6: sink "hook": url: missing host in "http:///hook"`},
		{"bad url", "url: 'http://a b/'", `config:1:6: sink "hook": url: invalid URL "http://a b/": invalid character " " in host name`},
		{"format", "url: http://h/\nformat: json", `config:2:9: sink "hook": format: must be binary or structured, not "json"`},
		{"method", "url: http://h/\nmethod: GET", `config:2:9: sink "hook": method: must be POST or PUT, not "GET"`},
		{"method lower case", "url: http://h/\nmethod: post", `config:2:9: sink "hook": method: must be POST or PUT, not "post"`},
		{"headers", `
url: http://h/
headers:
  Content-Type: text/plain
  ce-id: "1"
  bad name: x
  X-Secret: "s3cret\r\nInjected: yes"
  X-Ok: fine`, strings.Join([]string{
			`config:4:17: sink "hook": headers.Content-Type: set by the sink; it cannot be configured`,
			`config:5:10: sink "hook": headers.ce-id: set by the sink; it cannot be configured`,
			`config:6:13: sink "hook": headers.bad name: invalid header name`,
			`config:7:13: sink "hook": headers.X-Secret: invalid header value (control characters are not allowed)`,
		}, "\n")},
		{"headers not a map", "url: http://h/\nheaders: [a]", `config:2:10: sink "hook": headers: expected a mapping, got a list`},
		{"tls on http", "url: http://h/\ntls:\n  caFile: /ca.pem", `config:3:3: sink "hook": tls: only applies to an https url`},
		{"cert without key", "url: https://h/\ntls:\n  certFile: /c.pem", `config:3:3: sink "hook": tls.keyFile: required with tls.certFile`},
		{"key without cert", "url: https://h/\ntls:\n  keyFile: /c.key", `config:3:3: sink "hook": tls.certFile: required with tls.keyFile`},
		{"tls unknown key", "url: https://h/\ntls:\n  caFil: /ca.pem", `config:3:3: sink "hook": tls: unknown key "caFil" (did you mean "caFile"?)`},
		{"maxIdleConns", "url: http://h/\nmaxIdleConns: 0", `config:2:15: sink "hook": maxIdleConns: must be at least 1`},
		{"maxIdleConns type", "url: http://h/\nmaxIdleConns: many", `config:2:15: sink "hook": maxIdleConns: invalid integer "many"`},
		{"no timeout key", "url: http://h/\ntimeout: 5s", `config:2:1: sink "hook": unknown key "timeout" (known keys: format, headers, maxIdleConns, method, sign, tls, url)`},
		{"sign", "url: http://h/\nsign:\n  secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, raw-secret]", ""},
		{"sign without secrets", "url: http://h/\nsign: {}", `config:2:7: sink "hook": sign.secrets: at least one secret is required`},
		{"sign bad secrets", "url: http://h/\nsign:\n  secrets: ['whsec_not*base64', '']", strings.Join([]string{
			`config:3:13: sink "hook": sign.secrets[0]: a secret starting with whsec_ must continue in base64`,
			`config:3:33: sink "hook": sign.secrets[1]: empty secret (is its environment variable set?)`,
		}, "\n")},
		{"every problem at once", "format: xml\nmethod: DELETE\nmaxIdleConns: -1", strings.Join([]string{
			`config:1:1: sink "hook": url: required`,
			`config:1:9: sink "hook": format: must be binary or structured, not "xml"`,
			`config:2:9: sink "hook": method: must be POST or PUT, not "DELETE"`,
			`config:3:15: sink "hook": maxIdleConns: must be at least 1`,
		}, "\n")},
	}
	plugintest.CheckCases(t, check, cases, "s3cret")
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "url: http://127.0.0.1:9999/hook")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.Format != "binary" || c.Method != "POST" || c.MaxIdleConns != 64 || c.TLS != nil || c.Headers != nil {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sinks.Lookup("webhook")
	if !ok {
		t.Fatal(`sink type "webhook" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	for _, env := range []struct {
		vars map[string]string
		auth string
	}{
		{nil, "Bearer dev-token"},
		{map[string]string{"HOOK_TOKEN": "prod-token"}, "Bearer prod-token"},
	} {
		for _, e := range plugintest.DecodeExample(t, exampleYAML, env.vars, "sink", Type, NewConfig) {
			c := e.Config
			if c.URL != "http://127.0.0.1:9999/hook" || c.Format != FormatBinary || c.Headers["Authorization"] != env.auth {
				t.Errorf("example sink: %+v", c)
			}
			pol := e.Plugin.Delivery.Apply(config.DefaultPolicy)
			if pol.Retry != 5 || pol.BackoffPolicy != "exponential" || pol.BackoffDelay.String() != "200ms" || pol.DeadLetter != "dead" {
				t.Errorf("example delivery: %+v", pol)
			}
		}
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
