package filters

import (
	"errors"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
)

func TestDialects(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := newEvent(t, withSubject("orders/eu/42"), withTime(t0),
		withExt("tenant", "acme"), withExt("priority", 5), withExt("urgent", true))
	tests := []struct {
		name string
		yaml string
		want bool
	}{
		{name: "exact", yaml: `[{exact: {type: com.example.order.created}}]`, want: true},
		{name: "exact differs", yaml: `[{exact: {type: com.example.order}}]`, want: false},
		{name: "exact is case-sensitive", yaml: `[{exact: {type: COM.example.order.created}}]`, want: false},
		{name: "exact several attributes", yaml: `[{exact: {type: com.example.order.created, source: /orders}}]`, want: true},
		{name: "exact several, one differs", yaml: `[{exact: {type: com.example.order.created, source: /other}}]`, want: false},
		{name: "exact extension", yaml: `[{exact: {tenant: acme}}]`, want: true},
		{name: "exact int extension", yaml: `[{exact: {priority: 5}}]`, want: true},
		{name: "exact bool extension", yaml: `[{exact: {urgent: true}}]`, want: true},
		{name: "exact time", yaml: `[{exact: {time: "2024-03-01T12:00:00Z"}}]`, want: true},
		{name: "exact specversion", yaml: `[{exact: {specversion: "1.0"}}]`, want: true},
		{name: "missing attribute never matches", yaml: `[{exact: {dataschema: ""}}]`, want: false},
		{name: "missing extension never matches", yaml: `[{prefix: {region: ""}}]`, want: false},
		{name: "prefix", yaml: `[{prefix: {type: com.example.}}]`, want: true},
		{name: "prefix differs", yaml: `[{prefix: {type: org.example.}}]`, want: false},
		{name: "suffix", yaml: `[{suffix: {type: .created}}]`, want: true},
		{name: "suffix subject", yaml: `[{suffix: {subject: /42}}]`, want: true},
		{name: "suffix differs", yaml: `[{suffix: {type: .deleted}}]`, want: false},
		{name: "list means all", yaml: `[{prefix: {type: com.}}, {exact: {tenant: acme}}]`, want: true},
		{name: "list means all, one fails", yaml: `[{prefix: {type: com.}}, {exact: {tenant: other}}]`, want: false},
		{name: "any", yaml: `[{any: [{exact: {type: a}}, {exact: {tenant: acme}}]}]`, want: true},
		{name: "any none", yaml: `[{any: [{exact: {type: a}}, {exact: {tenant: b}}]}]`, want: false},
		{name: "all", yaml: `[{all: [{exact: {tenant: acme}}, {suffix: {type: created}}]}]`, want: true},
		{name: "all one fails", yaml: `[{all: [{exact: {tenant: acme}}, {suffix: {type: deleted}}]}]`, want: false},
		{name: "not", yaml: `[{not: {exact: {tenant: other}}}]`, want: true},
		{name: "not of a match", yaml: `[{not: {exact: {tenant: acme}}}]`, want: false},
		{name: "not of a missing attribute", yaml: `[{not: {exact: {region: eu}}}]`, want: true},
		{
			name: "nested",
			yaml: `
- any:
    - all:
        - prefix: {type: com.example.}
        - not: {exact: {tenant: blocked}}
    - exact: {urgent: "true"}`,
			want: true,
		},
		{name: "block style", yaml: "- exact:\n    type: com.example.order.created\n- suffix:\n    source: orders", want: true},
	}
	env := NewEnv(ev)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CompileDialects(yamlNode(t, "filters: "+indentYAML(tt.yaml), "filters"))
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := m.Match(env)
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			if got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
}

// indentYAML puts a block-style list under a key.
func indentYAML(s string) string {
	if len(s) > 0 && s[0] == '[' {
		return s
	}
	out := "\n"
	for _, line := range splitLines(s) {
		if line != "" {
			out += "  " + line + "\n"
		}
	}
	return out
}

func splitLines(s string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			lines = append(lines, s[start:i])
			start = i + 1
		}
	}
	return append(lines, s[start:])
}

func TestDialectsEmpty(t *testing.T) {
	for _, src := range []string{"filters:", "filters: null", "filters: []"} {
		m, err := CompileDialects(yamlNode(t, src+"\nx: 1", "filters"))
		if m != nil || err != nil {
			t.Errorf("%q: got %v, %v; want nil, nil", src, m, err)
		}
	}
	if m, err := CompileDialects(nil); m != nil || err != nil {
		t.Errorf("nil node: got %v, %v", m, err)
	}
	if m, err := CompileDialects(&yaml.Node{}); m != nil || err != nil {
		t.Errorf("zero node: got %v, %v", m, err)
	}
}

func TestDialectErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{name: "not a list", yaml: "filters: {exact: {type: a}}", want: `config:1:10: filters: expected a list of filters such as - exact: {type: com.example.created}, got a mapping`},
		{name: "unknown dialect", yaml: "filters:\n  - exakt: {type: a}", want: `config:2:5: filters[0]: unknown dialect "exakt" (did you mean "exact"?)`},
		{name: "unknown dialect far off", yaml: "filters:\n  - jsonpath: {type: a}", want: `config:2:5: filters[0]: unknown dialect "jsonpath" (use exact, prefix, suffix, all, any, not)`},
		{name: "sql", yaml: "filters:\n  - sql: \"type = 'a'\"", want: `config:2:5: filters[0]: the sql dialect is not supported; use filter: with an expression instead`},
		{name: "item not a mapping", yaml: "filters:\n  - exact", want: `config:2:5: filters[0]: expected a mapping with one of exact, prefix, suffix, all, any, not, got "exact"`},
		{name: "two dialects in one item", yaml: "filters:\n  - exact: {type: a}\n    prefix: {type: b}", want: `config:3:5: filters[0]: one dialect per filter: "exact" and "prefix" are in the same item (use all: [...] to combine them)`},
		{name: "empty exact", yaml: "filters:\n  - exact: {}", want: `config:2:12: filters[0].exact: expected a mapping of attribute names to values, such as {type: com.example.created}, got an empty mapping`},
		{name: "exact list", yaml: "filters:\n  - exact: [type]", want: `config:2:12: filters[0].exact: expected a mapping of attribute names to values, such as {type: com.example.created}, got a list`},
		{name: "null value", yaml: "filters:\n  - prefix: {type: null}", want: `config:2:20: filters[0].prefix.type: expected a string, got nothing`},
		{name: "mapping value", yaml: "filters:\n  - prefix: {type: {a: b}}", want: `config:2:20: filters[0].prefix.type: expected a string, got a mapping`},
		{name: "upper-case attribute", yaml: "filters:\n  - suffix: {Type: a}", want: `config:2:14: filters[0].suffix.Type: invalid attribute name "Type" (CloudEvents attribute names are lower-case letters a-z and digits 0-9)`},
		{name: "data", yaml: "filters:\n  - exact: {data: a}", want: `config:2:13: filters[0].exact.data: data is not an attribute; use filter: with an expression to test data`},
		{name: "empty any", yaml: "filters:\n  - any: []", want: `config:2:10: filters[0].any: expected a non-empty list of filters, got an empty list`},
		{name: "all not a list", yaml: "filters:\n  - all: {exact: {type: a}}", want: `config:2:10: filters[0].all: expected a non-empty list of filters, got a mapping`},
		{name: "not a list under not", yaml: "filters:\n  - not: [{exact: {type: a}}]", want: `config:2:10: filters[0].not: expected a mapping with one of exact, prefix, suffix, all, any, not, got a list`},
		{name: "nested error", yaml: "filters:\n  - any:\n      - exact: {type: a}\n      - not:\n          exakt: {type: b}", want: `config:5:11: filters[0].any[1].not: unknown dialect "exakt" (did you mean "exact"?)`},
		{
			name: "every error reported",
			yaml: "filters:\n  - exakt: {type: a}\n  - prefix: {}\n  - sql: x",
			want: "config:2:5: filters[0]: unknown dialect \"exakt\" (did you mean \"exact\"?)\n" +
				"config:3:13: filters[1].prefix: expected a mapping of attribute names to values, such as {type: com.example.created}, got an empty mapping\n" +
				"config:4:5: filters[2]: the sql dialect is not supported; use filter: with an expression instead",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CompileDialects(yamlNode(t, tt.yaml, "filters"))
			if err == nil {
				t.Fatalf("compiled, want error %q", tt.want)
			}
			if m != nil {
				t.Error("got a matcher with the error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Errorf("error is not config.Errors: %T", err)
			}
		})
	}
}

// TestDialectsFromRoute compiles the filters of a route decoded by the config
// package, as the router does.
func TestDialectsFromRoute(t *testing.T) {
	src := `
sinks:
  - name: s
    type: webhook
    url: http://127.0.0.1:1/
routes:
  - name: r
    filters:
      - exact: {type: com.example.order.created}
      - not: {prefix: {source: /internal}}
    filter: data.amount > 100
    to: [s]
`
	cfg, err := config.Parse("junction.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	d, err := CompileDialects(&r.Filters)
	if err != nil {
		t.Fatal(err)
	}
	f, err := CompileFilter(r.Filter)
	if err != nil {
		t.Fatal(err)
	}
	m := All(d, f)
	for _, tc := range []struct {
		ev   []evOpt
		want bool
	}{
		{want: true},
		{ev: []evOpt{withType("x")}, want: false},
		{ev: []evOpt{withData("application/json", `{"amount":5}`)}, want: false},
	} {
		got, err := m.Match(NewEnv(newEvent(t, tc.ev...)))
		if err != nil || got != tc.want {
			t.Errorf("match = %v, %v; want %v", got, err, tc.want)
		}
	}
}
