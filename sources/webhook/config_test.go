package webhooksource

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(sources.Types(), "webhook") {
		t.Fatalf("webhook is not a registered source type: %v", sources.Types())
	}
	f, _ := sources.Lookup("webhook")
	c, ok := f().(*Config)
	if !ok {
		t.Fatalf("factory returns %T, want *Config", f())
	}
	if !slices.Equal(c.Methods, []string{http.MethodPost}) {
		t.Errorf("default methods = %v, want [POST]", c.Methods)
	}
}

// The source's own keys start on line 4, column 5.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"missing path", `methods: [POST]`,
			`test.yaml:2:5: source "gh": path: required: the URL path to serve, such as /events`},
		{"relative path", `path: hooks`,
			`test.yaml:4:11: source "gh": path: must start with "/", got "hooks"`},
		{"path with query", `path: /hooks?x=1`,
			`test.yaml:4:11: source "gh": path: must be a plain URL path (no spaces, '?', '#', '{' or '}'), got "/hooks?x=1"`},
		{"bad escape in path", `path: /a%zz`,
			`test.yaml:4:11: source "gh": path: "/a%zz" is not a URL path: invalid URL escape "%zz"`},
		{"unknown key", "path: /h\nmethod: [POST]",
			`test.yaml:5:5: source "gh": unknown key "method" (did you mean "methods"?)`},
		{"empty methods", "path: /h\nmethods: []",
			`test.yaml:5:14: source "gh": methods: list at least one method, or leave the key out for POST`},
		{"lower-case method", "path: /h\nmethods: [POST, put]",
			`test.yaml:5:21: source "gh": methods[1]: "put": HTTP methods are case-sensitive (did you mean "PUT"?)`},
		{"bad method", "path: /h\nmethods: [\"PO ST\"]",
			`test.yaml:5:15: source "gh": methods[0]: "PO ST" is not an HTTP method`},
		{"duplicate method", "path: /h\nmethods: [POST, POST]",
			`test.yaml:5:21: source "gh": methods[1]: "POST" is listed twice`},
		{"bad size", "path: /h\nmaxBodySize: 1XB",
			`test.yaml:5:18: source "gh": maxBodySize: invalid size unit in "1XB" (use B, KiB, MiB, GiB, KB, MB or GB)`},
		{"attribute name", "path: /h\nattributes:\n  Type: '\"x\"'",
			`test.yaml:6:7: source "gh": attributes.Type: "Type" is not a CloudEvents attribute name (lower-case letters a-z and digits, at most 20)`},
		{"long attribute name", "path: /h\nattributes:\n  abcdefghijklmnopqrstu: '1'",
			`test.yaml:6:7: source "gh": attributes.abcdefghijklmnopqrstu: "abcdefghijklmnopqrstu" is not a CloudEvents attribute name (lower-case letters a-z and digits, at most 20)`},
		{"specversion", "path: /h\nattributes:\n  specversion: '\"0.3\"'",
			`test.yaml:6:7: source "gh": attributes.specversion: cannot be set (it is always 1.0)`},
		{"data attribute", "path: /h\nattributes:\n  data: body",
			`test.yaml:6:7: source "gh": attributes.data: data is not an attribute; use the data key`},
		{"null id", "path: /h\nattributes:\n  id: null",
			`test.yaml:6:11: source "gh": attributes.id: cannot be null (id is required; leave the key out for the default)`},
		{"empty expression", "path: /h\nattributes:\n  subject: ''",
			`test.yaml:6:16: source "gh": attributes: subject: empty expression`},
		{"syntax error", "path: /h\nattributes:\n  subject: body.a +",
			"test.yaml:6:23: source \"gh\": attributes.subject: unexpected token EOF\n | body.a +\n | .......^"},
		{"syntax error, quoted", "path: /h\nattributes:\n  type: \"(method\"",
			"test.yaml:6:20: source \"gh\": attributes.type: unexpected token EOF\n | (method\n | ......^"},
		{"type error", "path: /h\nattributes:\n  type: method + 1",
			"test.yaml:6:20: source \"gh\": attributes.type: invalid operation: + (mismatched types string and int)\n | method + 1\n | .......^"},
		{"data error", "path: /h\ndata: '{\"a\": }'",
			"test.yaml:5:18: source \"gh\": data: unexpected token Bracket(\"}\")\n | {\"a\": }\n | ......^"},
		{"verify without scheme", "path: /h\nverify:\n  secret: s",
			`test.yaml:6:7: source "gh": verify.scheme: required (hmac-sha256 or standard-webhooks)`},
		{"verify typo", "path: /h\nverify:\n  scheme: hmac-sha265\n  secret: s",
			`test.yaml:6:15: source "gh": verify.scheme: must be hmac-sha256 or standard-webhooks, not "hmac-sha265" (did you mean "hmac-sha256"?)`},
		{"verify without secret", "path: /h\nverify:\n  scheme: hmac-sha256",
			`test.yaml:6:7: source "gh": verify.secret: required`},
		{"verify empty secret from env", "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: ${EMPTY:-}",
			`test.yaml:7:15: source "gh": verify.secret: required`},
		{"standard secret not base64", "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: whsec_not*base64",
			`test.yaml:7:15: source "gh": verify.secret: must be base64, optionally prefixed with whsec_`},
		{"tolerance with hmac", "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: s\n  tolerance: 1m",
			`test.yaml:8:18: source "gh": verify.tolerance: only for scheme standard-webhooks`},
		{"header with standard", "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: c2VjcmV0\n  header: X-Sig",
			`test.yaml:8:15: source "gh": verify.header: only for scheme hmac-sha256 (standard-webhooks uses webhook-signature)`},
		{"prefix with standard", "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: c2VjcmV0\n  prefix: x",
			`test.yaml:8:15: source "gh": verify.prefix: only for scheme hmac-sha256`},
		{"negative tolerance", "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: c2VjcmV0\n  tolerance: -1s",
			`test.yaml:8:18: source "gh": verify.tolerance: must be positive`},
		{"bad header name", "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: s\n  header: X Sig",
			`test.yaml:8:15: source "gh": verify.header: "X Sig" is not a valid header name`},
		{"unknown verify key", "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: s\n  secrett: s",
			`test.yaml:8:7: source "gh": verify: unknown key "secrett" (did you mean "secret"?)`},
		{"every error at once", "path: h\nmethods: [get]\nattributes:\n  type: method +\n  subject: 1 +",
			"test.yaml:4:11: source \"gh\": path: must start with \"/\", got \"h\"\n" +
				"test.yaml:5:15: source \"gh\": methods[0]: \"get\": HTTP methods are case-sensitive (did you mean \"GET\"?)\n" +
				"test.yaml:7:20: source \"gh\": attributes.type: unexpected token EOF\n | method +\n | .......^\n" +
				"test.yaml:8:18: source \"gh\": attributes.subject: unexpected token EOF\n | 1 +\n | ..^"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, "test.yaml", sourceYAML(tc.body), nil)
			if err == nil {
				t.Fatalf("no error, want\n%s", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestConfigValid(t *testing.T) {
	for _, body := range []string{
		"path: /h",
		"path: /h\nmethods: [POST, PUT]\nmaxBodySize: 64KiB",
		"path: /h\nattributes:\n  datacontenttype: null\n  subject: null\n  tenant: query.tenant\n  time: now()",
		"path: /h\ndata: null",
		"path: /h\nverify:\n  scheme: hmac-sha256\n  secret: s\n  header: X-Signature\n  prefix: ''",
		"path: /h\nverify:\n  scheme: standard-webhooks\n  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n  tolerance: 10m",
		"path: /h\nverify:\n  scheme: standard-webhooks\n  secret: MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	} {
		if _, err := load(t, "test.yaml", sourceYAML(body), nil); err != nil {
			t.Errorf("%s:\n%v", body, err)
		}
	}
}

func TestBuildDefaults(t *testing.T) {
	c, err := load(t, "test.yaml", sourceYAML("path: /h\nverify:\n  scheme: hmac-sha256\n  secret: s"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "gh", MaxBodySize: 123})
	if err != nil {
		t.Fatal(err)
	}
	w := s.(*Webhook)
	if w.Path() != "/h" || w.maxBody != 123 || w.allow != "POST" {
		t.Errorf("path %q, maxBody %d, allow %q; want /h, 123, POST", w.Path(), w.maxBody, w.allow)
	}
	v := w.verifier.(*hmacVerifier)
	if v.header != DefaultSignatureHeader || v.prefix != DefaultSignaturePrefix {
		t.Errorf("hmac header %q prefix %q, want the defaults", v.header, v.prefix)
	}
	// Build without Validate (compiles then) and without a body limit.
	c2 := NewConfig()
	c2.Path = "/x"
	s2, err := c2.Build(context.Background(), sources.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.(*Webhook).maxBody; got != int64(config.DefaultMaxBodySize) {
		t.Errorf("maxBody = %d, want %d", got, config.DefaultMaxBodySize)
	}
	// Build of an invalid config fails.
	if _, err := NewConfig().Build(context.Background(), sources.Deps{Name: "x"}); err == nil || !strings.Contains(err.Error(), "path: required") {
		t.Errorf("Build of a config without path: %v", err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	c, err := load(t, "test.yaml", sourceYAML("path: /h\nverify:\n  scheme: hmac-sha256\n  secret: ${SECRET}"), map[string]string{"SECRET": "hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Verify.Secret != "hunter2" {
		t.Fatalf("secret = %q", string(c.Verify.Secret))
	}
	for _, s := range []string{fmt.Sprint(c.Verify), fmt.Sprintf("%+v", *c.Verify), fmt.Sprintf("%#v", *c.Verify), fmt.Sprintf("%v", c.Verify.Secret)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("secret printed: %s", s)
		}
	}
}
