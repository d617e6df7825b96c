package functionsink

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
		{"minimal", "url: http://127.0.0.1:8081/", ""},
		{"full", `
url: https://fn.example.com/invoke
format: structured
headers:
  Authorization: Bearer x
tls:
  caFile: /etc/ca.pem
  certFile: /etc/c.pem
  keyFile: /etc/c.key
  serverName: fn.internal
  insecureSkipVerify: false
maxReplySize: 256KiB`, ""},
		{"missing url", "format: binary", `config:1:1: sink "fn": url: required`},
		{"scheme", "url: grpc://fn:80", `config:1:6: sink "fn": url: scheme must be http or https, not "grpc"`},
		{"no host", "url: 'http:///fn'", `config:1:6: sink "fn": url: missing host in "http:///fn"`},
		{"bad url", "url: 'http://a b/'", `config:1:6: sink "fn": url: invalid URL "http://a b/": invalid character " " in host name`},
		{"format", "url: http://h/\nformat: json", `config:2:9: sink "fn": format: must be binary or structured, not "json"`},
		{"headers", `
url: http://h/
headers:
  Content-Type: text/plain
  Ce-Type: x
  "a b": c
  X-Secret: "s3cret\nInjected: yes"`, strings.Join([]string{
			`config:4:17: sink "fn": headers.Content-Type: set by the sink; it cannot be configured`,
			`config:5:12: sink "fn": headers.Ce-Type: set by the sink; it cannot be configured`,
			`config:6:10: sink "fn": headers.a b: invalid header name`,
			`config:7:13: sink "fn": headers.X-Secret: invalid header value (control characters are not allowed)`,
		}, "\n")},
		{"tls on http", "url: http://h/\ntls:\n  caFile: /ca.pem", `config:3:3: sink "fn": tls: only applies to an https url`},
		{"cert without key", "url: https://h/\ntls:\n  certFile: /c.pem", `config:3:3: sink "fn": tls.keyFile: required with tls.certFile`},
		{"tls unknown key", "url: https://h/\ntls:\n  ca: /ca.pem", `config:3:3: sink "fn": tls: unknown key "ca" (known keys: caFile, certFile, insecureSkipVerify, keyFile, serverName)`},
		{"maxReplySize zero", "url: http://h/\nmaxReplySize: 0", `config:2:15: sink "fn": maxReplySize: must be between 1B and 64MiB`},
		{"maxReplySize too big", "url: http://h/\nmaxReplySize: 1GiB", `config:2:15: sink "fn": maxReplySize: must be between 1B and 64MiB`},
		{"maxReplySize unit", "url: http://h/\nmaxReplySize: lots", `config:2:15: sink "fn": maxReplySize: invalid size "lots" (use bytes or a unit: 512KiB, 1MiB, 10MB)`},
		{"no method key", "url: http://h/\nmethod: PUT", `config:2:1: sink "fn": unknown key "method" (known keys: format, headers, maxReplySize, sign, tls, url)`},
		{"every problem at once", "format: xml\nmaxReplySize: 0", strings.Join([]string{
			`config:1:1: sink "fn": url: required`,
			`config:1:9: sink "fn": format: must be binary or structured, not "xml"`,
			`config:2:15: sink "fn": maxReplySize: must be between 1B and 64MiB`,
		}, "\n")},
	}
	plugintest.CheckCases(t, check, cases, "s3cret")
}

func TestConfigDefaults(t *testing.T) {
	c, errs := check(t, "url: http://127.0.0.1:8081/")
	if errs != "" {
		t.Fatal(errs)
	}
	if c.Format != "binary" || c.MaxReplySize != 1<<20 || c.TLS != nil || c.Headers != nil {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sinks.Lookup(Type)
	if !ok {
		t.Fatal(`sink type "function" is not registered`)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	for _, e := range plugintest.DecodeExample(t, exampleYAML, nil, "sink", Type, NewConfig) {
		c := e.Config
		if c.URL != "http://127.0.0.1:8081/" || c.Format != FormatBinary || c.Headers["Authorization"] != "Bearer dev-token" || c.MaxReplySize != 1<<20 {
			t.Errorf("example sink: %+v", c)
		}
		if e.Plugin.MaxHops != 4 {
			t.Errorf("example maxHops = %d, want 4", e.Plugin.MaxHops)
		}
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
