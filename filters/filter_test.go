package filters

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/config"
)

func TestFilterMatch(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		src     string
		opts    []evOpt
		want    bool
		wantErr string // substring of the run-time error
	}{
		// Context attributes.
		{name: "type", src: `type == "com.example.order.created"`, want: true},
		{name: "type differs", src: `type == "com.example.order.deleted"`, want: false},
		{name: "source", src: `source == "/orders"`, want: true},
		{name: "id", src: `id == "1"`, want: true},
		{name: "specversion", src: `specversion == "1.0"`, want: true},
		{name: "datacontenttype", src: `datacontenttype == "application/json"`, want: true},
		{name: "type prefix", src: `type startsWith "com.example."`, want: true},
		{name: "type regexp", src: `type matches "order\\.(created|updated)$"`, want: true},
		{name: "subject set", src: `subject == "s-1"`, opts: []evOpt{withSubject("s-1")}, want: true},
		{name: "subject absent is nil", src: `subject == nil`, want: true},
		{name: "dataschema", src: `dataschema == "https://example.com/s.json"`, opts: []evOpt{withSchema("https://example.com/s.json")}, want: true},
		{name: "dataschema absent", src: `dataschema == nil`, want: true},
		{name: "in list", src: `type in ["a", "com.example.order.created"]`, want: true},

		// Extensions.
		{name: "string extension", src: `tenant == "acme"`, opts: []evOpt{withExt("tenant", "acme")}, want: true},
		{name: "bool extension alone", src: `urgent`, opts: []evOpt{withExt("urgent", true)}, want: true},
		{name: "bool extension false", src: `urgent`, opts: []evOpt{withExt("urgent", false)}, want: false},
		{name: "int extension", src: `priority > 4 && priority == 5`, opts: []evOpt{withExt("priority", 5)}, want: true},
		{name: "time extension", src: `deadline > date("2024-01-01")`, opts: []evOpt{withExt("deadline", t0)}, want: true},
		{name: "URI extension is a string", src: `link == "https://example.com/x"`, opts: []evOpt{withExt("link", mustURL(t, "https://example.com/x"))}, want: true},
		{name: "binary extension is base64", src: `blob == "AQI="`, opts: []evOpt{withExt("blob", []byte{1, 2})}, want: true},
		{name: "missing extension is nil", src: `tenant == nil`, want: true},
		{name: "missing extension alone", src: `urgent`, want: false},
		{name: "missing extension in comparison", src: `tenant != "acme"`, want: true},
		{name: "extension via $env", src: `$env["tenant"] == "acme" && $env.tenant == "acme"`, opts: []evOpt{withExt("tenant", "acme")}, want: true},
		{name: "attribute via $env", src: `$env.type == type && $env.data.amount == 150`, want: true},

		// Data.
		{name: "data number", src: `data.amount > 100`, want: true},
		{name: "data and type", src: `type == "com.example.order.created" && data.amount > 200`, want: false},
		{name: "nested data", src: `data.customer.id == "c-7"`, want: true},
		{name: "nested list", src: `data.items[1].sku == "b" && data.items[-1].qty == 1`, want: true},
		{name: "index syntax", src: `data["customer"]["tags"][0] == "vip"`, want: true},
		{name: "contains in list", src: `"eu" in data.customer.tags`, want: true},
		{name: "predicate", src: `any(data.items, .qty > 1) && all(data.items, .sku != "")`, want: true},
		{name: "sum", src: `sum(map(data.items, .qty)) == 3`, want: true},
		{name: "let", src: `let c = data.customer; c.id == "c-7" && len(c.tags) == 2`, want: true},
		{name: "let shadows data", src: `let data = 5; data == 5`, want: true},
		{name: "missing field is nil", src: `data.nope == nil`, want: true},
		{name: "missing nested field is nil", src: `data.nope.id == nil && data.customer.nope.deeper == nil`, want: true},
		{name: "field of a number is nil", src: `data.amount.cents == nil`, want: true},
		{name: "index out of range is nil", src: `data.items[9] == nil && data.items[9].sku == nil`, want: true},
		{name: "optional syntax still works", src: `data?.customer?.id == "c-7"`, want: true},
		{name: "nil coalescing", src: `(data.nope ?? "x") == "x"`, want: true},
		{name: "no data", src: `data == nil && data.x == nil`, opts: []evOpt{withData("", "")}, want: true},
		{name: "text data is a string", src: `data == "hello world" && data startsWith "hello"`, opts: []evOpt{withData("text/plain", "hello world")}, want: true},
		{name: "text data that looks like JSON stays a string", src: `data == "{\"a\":1}"`, opts: []evOpt{withData("text/plain", `{"a":1}`)}, want: true},
		{name: "xml data is a string", src: `data contains "<order>"`, opts: []evOpt{withData("application/xml", "<order></order>")}, want: true},
		{name: "text/json is JSON", src: `data.a == 1`, opts: []evOpt{withData("text/json", `{"a":1}`)}, want: true},
		{name: "+json is JSON", src: `data.a == 1`, opts: []evOpt{withData("application/vnd.example+json; charset=utf-8", `{"a":1}`)}, want: true},
		{name: "JSON with parameters", src: `data.a == 1`, opts: []evOpt{withData("Application/JSON; charset=utf-8", `{"a":1}`)}, want: true},
		{name: "no content type, JSON body", src: `data.a == 1`, opts: []evOpt{clearCT, withData("", `{"a":1}`)}, want: true},
		{name: "no content type, text body", src: `data == "a=1"`, opts: []evOpt{clearCT, withData("", `a=1`)}, want: true},
		{name: "invalid JSON is a string", src: `data == "{oops"`, opts: []evOpt{withData("application/json", `{oops`)}, want: true},
		{name: "JSON scalar", src: `data == true`, opts: []evOpt{withData("application/json", `true`)}, want: true},
		{name: "field of a string is nil", src: `data.customer == nil`, opts: []evOpt{withData("text/plain", "x")}, want: true},

		// Time.
		{name: "time after", src: `time > date("2024-01-01T00:00:00Z")`, opts: []evOpt{withTime(t0)}, want: true},
		{name: "time before", src: `time < date("2024-01-01T00:00:00Z")`, opts: []evOpt{withTime(t0)}, want: false},
		{name: "time window", src: `time >= date("2024-03-01T12:00:00Z") && time < date("2024-03-02")`, opts: []evOpt{withTime(t0)}, want: true},
		{name: "time methods", src: `time.Year() == 2024 && int(time.Month()) == 3 && time.Hour() == 12`, opts: []evOpt{withTime(t0)}, want: true},
		{name: "time vs now", src: `now() - time > duration("1h")`, opts: []evOpt{withTime(t0)}, want: true},
		{name: "time absent", src: `time == nil && time.Year() == nil`, want: true},
		{name: "time in data is a string", src: `date(data.at) > date("2024-01-01")`, opts: []evOpt{withData("application/json", `{"at":"2024-05-01T00:00:00Z"}`)}, want: true},

		// Run-time errors.
		{name: "missing field compared with a number", src: `data.nope > 100`, wantErr: `evaluate filter: invalid operation: <nil> > int (1:11)`},
		{name: "string extension as a bool", src: `tenant`, opts: []evOpt{withExt("tenant", "acme")}, wantErr: `evaluate filter: invalid operation: bool(string)`},
		{name: "bad date", src: `date(data.orderId) > now()`, wantErr: `evaluate filter: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CompileFilter(config.Expr{Src: tt.src, Pos: config.Pos{Line: 1, Col: 1}})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := m.Match(NewEnv(newEvent(t, tt.opts...)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				oneLine(t, err)
				if got {
					t.Errorf("matched despite the error")
				}
				return
			}
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			if got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompileFilterErrors(t *testing.T) {
	pos := config.Pos{Line: 7, Col: 13}
	tests := []struct {
		name string
		expr config.Expr
		want string
	}{
		{
			name: "arithmetic is not bool",
			expr: config.Expr{Src: `data.amount + 1`, Pos: pos},
			want: "config:7:13: filter: expected bool, but \"+\" does not yield one (1:13)\n | data.amount + 1\n | ............^",
		},
		{
			name: "known type is not bool",
			expr: config.Expr{Src: `len(type)`, Pos: pos},
			want: "config:7:13: filter: expected bool, but got int (1:1)\n | len(type)\n | ^",
		},
		{
			name: "string literal",
			expr: config.Expr{Src: `"com.example"`, Pos: pos},
			want: "config:7:13: filter: expected bool, but got string (1:1)\n | \"com.example\"\n | ^",
		},
		{
			name: "syntax error",
			expr: config.Expr{Src: `type == "a" &&`, Pos: pos},
			want: "config:7:13: filter: unexpected token EOF (1:14)\n | type == \"a\" &&\n | .............^",
		},
		{
			name: "mismatched types",
			expr: config.Expr{Src: `type > 3`, Pos: pos},
			want: "config:7:13: filter: invalid operation: > (mismatched types string and int) (1:6)\n | type > 3\n | .....^",
		},
		{
			name: "unknown function",
			expr: config.Expr{Src: `uper(type) == "A"`, Pos: pos},
			want: "config:7:13: filter: unknown name uper (1:1)\n | uper(type) == \"A\"\n | ^",
		},
		{
			name: "conditional with a number branch",
			expr: config.Expr{Src: `data.x ? true : data.y - 1`, Pos: pos},
			want: "config:7:13: filter: expected bool, but \"-\" does not yield one (1:24)\n | data.x ? true : data.y - 1\n | .......................^",
		},
		{
			name: "second line",
			expr: config.Expr{Src: "type == \"a\" &&\n  data.amount > > 1", Pos: pos},
			want: "config:7:13: filter: unexpected token Operator(\">\") (2:17)\n |   data.amount > > 1\n | ................^",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CompileFilter(tt.expr)
			if err == nil {
				t.Fatalf("compiled, want error %q", tt.want)
			}
			if m != nil {
				t.Errorf("got a matcher with the error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
			var errs config.Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Pos != pos {
				t.Errorf("error is not one config.Error at %v: %#v", pos, err)
			}
		})
	}
}

// TestFilterFromConfig compiles a filter decoded from YAML and checks the
// error position is the expression's.
func TestFilterFromConfig(t *testing.T) {
	src := "routes:\n  - name: r\n    filter: data.amount * 2\n"
	var r struct {
		Name   string      `yaml:"name"`
		Filter config.Expr `yaml:"filter"`
	}
	if err := config.Decode(yamlNode(t, src, "routes[0]"), &r); err != nil {
		t.Fatal(err)
	}
	_, err := CompileFilter(r.Filter)
	want := "config:3:13: filter: expected bool, but \"*\" does not yield one (1:13)"
	if !strings.HasPrefix(errText(err), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
}

func TestCompileFilterUnset(t *testing.T) {
	for _, e := range []config.Expr{{}, {Null: true, Pos: config.Pos{Line: 1, Col: 9}}} {
		if m, err := CompileFilter(e); m != nil || err != nil {
			t.Errorf("CompileFilter(%+v) = %v, %v; want nil, nil", e, m, err)
		}
	}
}

func TestDataParsedLazilyOnce(t *testing.T) {
	noData, err := CompileFilter(config.Expr{Src: `type == "other" && data.amount > 1`})
	if err != nil {
		t.Fatal(err)
	}
	withData, err := CompileFilter(config.Expr{Src: `data.amount > 1 && data.customer.id != ""`})
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(newEvent(t))
	if ok, err := noData.Match(env); ok || err != nil {
		t.Fatalf("match = %v, %v", ok, err)
	}
	if env.v.parses != 0 {
		t.Fatalf("data parsed %d times by a filter that did not read it", env.v.parses)
	}
	for range 3 {
		if ok, err := withData.Match(env); !ok || err != nil {
			t.Fatalf("match = %v, %v", ok, err)
		}
	}
	if env.v.parses != 1 {
		t.Fatalf("data parsed %d times, want 1", env.v.parses)
	}
}

func TestAll(t *testing.T) {
	yes, _ := CompileFilter(config.Expr{Src: `true`})
	no, _ := CompileFilter(config.Expr{Src: `false`})
	bad, _ := CompileFilter(config.Expr{Src: `data.nope > 1`})
	env := NewEnv(newEvent(t))
	if All() != nil || All(nil, nil) != nil {
		t.Fatal("All of nothing is not nil")
	}
	if All(nil, yes) != yes {
		t.Fatal("All of one matcher is not that matcher")
	}
	tests := []struct {
		ms      []Matcher
		want    bool
		wantErr bool
	}{
		{ms: []Matcher{yes, yes}, want: true},
		{ms: []Matcher{yes, nil, no}, want: false},
		{ms: []Matcher{no, bad}, want: false},
		{ms: []Matcher{yes, bad}, wantErr: true},
	}
	for i, tt := range tests {
		got, err := All(tt.ms...).Match(env)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%d: match = %v, %v; want %v, error %v", i, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEnvGet(t *testing.T) {
	e := newEvent(t, withExt("tenant", "acme"), withExt("n", 7), withSubject("s"))
	env := NewEnv(e)
	if env.Event() != e {
		t.Error("Event() is not the event")
	}
	checks := map[string]any{
		"id": "1", "source": "/orders", "type": "com.example.order.created", "specversion": "1.0",
		"subject": "s", "datacontenttype": "application/json", "dataschema": nil, "time": nil,
		"tenant": "acme", "n": 7, "absent": nil,
	}
	for name, want := range checks {
		if got := env.Get(name); got != want {
			t.Errorf("Get(%q) = %#v, want %#v", name, got, want)
		}
	}
	if d, ok := env.Data().(map[string]any); !ok || d["orderId"] != "o-1" {
		t.Errorf("Data() = %#v", env.Data())
	}
	// A nil event gives an empty environment, not a panic.
	empty := NewEnv(nil)
	m, _ := CompileFilter(config.Expr{Src: `type == "" && data == nil && tenant == nil`})
	if ok, err := m.Match(empty); !ok || err != nil {
		t.Errorf("match on an empty env = %v, %v", ok, err)
	}
	if _, err := m.Match(nil); err == nil {
		t.Error("match on a nil env did not fail")
	}
}

func TestEventV03(t *testing.T) {
	e := newEvent(t, withSubject("s"))
	e.SetSpecVersion("0.3")
	e.SetExtension("tenant", "acme")
	m, err := CompileFilter(config.Expr{Src: `specversion == "0.3" && subject == "s" && tenant == "acme" && data.amount == 150`})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Match(NewEnv(e)); !ok || err != nil {
		t.Fatalf("match = %v, %v", ok, err)
	}
	// 0.3 data with datacontentencoding base64.
	e.SetDataContentEncoding("base64")
	e.DataEncoded = []byte("eyJhbW91bnQiOjE1MH0=")
	if ok, err := m.Match(NewEnv(e)); !ok || err != nil {
		t.Fatalf("match base64 data = %v, %v", ok, err)
	}
}

// TestConcurrentMatch evaluates filters on one environment from many
// goroutines (run with -race): data is parsed once and shared.
func TestConcurrentMatch(t *testing.T) {
	m, err := CompileFilter(config.Expr{Src: `data.amount > 100 && data.customer.id == "c-7" && tenant == "acme"`})
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(newEvent(t, withExt("tenant", "acme")))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if ok, err := m.Match(env); !ok || err != nil {
					errs <- fmt.Errorf("match = %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if env.v.parses != 1 {
		t.Errorf("data parsed %d times, want 1", env.v.parses)
	}
}
