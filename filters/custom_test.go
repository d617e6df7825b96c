package filters

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
)

// requestEnv is a custom environment like the webhook source's.
var requestEnv = types.Map{
	"headers": types.TypeOf(map[string]any{}),
	"body":    types.Any,
	"method":  types.String,
}

func requestVars() map[string]any {
	items := make([]any, 600_000)
	for i := range items {
		items[i] = "y"
	}
	return map[string]any{
		"headers": map[string]any{"x-event": "push", "x-big": strings.Repeat("ab", 2<<20)},
		"body":    map[string]any{"repo": map[string]any{"name": "octo"}, "items": items, "small": []any{"x", "y"}},
		"method":  "POST",
	}
}

// TestCompileWith: names, nil-safe member access and undefined names as
// in filters; the result of each expression on requestVars.
func TestCompileWith(t *testing.T) {
	for _, tt := range []struct {
		src   string
		want  any
		names []string
	}{
		{`headers["x-event"]`, "push", []string{"headers"}},
		{`"com.github." + headers["x-event"]`, "com.github.push", []string{"headers"}},
		{`body.repo.name`, "octo", []string{"body"}},
		{`body.repo.nope.deeper`, nil, []string{"body"}},
		{`body.small[5]`, nil, []string{"body"}},
		{`body.small[-1]`, "y", []string{"body"}},
		{`method.x`, nil, []string{"method"}},
		{`nothing`, nil, []string{"nothing"}},
		{`$env.body.repo.name`, "octo", []string{"$env"}},
		{`len(filter(body.small, {# == "x"}))`, 1, []string{"body"}},
		// The patcher of filters: a method call on nil is nil, a?.b
		// is plain access, $env[x] a member, let variables stay.
		{`body.when.Year()`, nil, []string{"body"}},
		{`date("2024-05-01T10:00:00Z").Year()`, 2024, nil},
		{`body?.repo?.name`, "octo", []string{"body"}},
		{`$env["method"]`, "POST", []string{"$env"}},
		{`let m = method; m + "!"`, "POST!", []string{"m", "method"}},
	} {
		p, err := CompileWith(tt.src, requestEnv)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		vars := requestVars()
		got, err := p.Run(vars)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.src, got, err, tt.want)
		}
		if !slices.Equal(p.Names(), tt.names) {
			t.Errorf("%s: Names() = %v, want %v", tt.src, p.Names(), tt.names)
		}
		if _, ok := vars[meterName]; ok || len(vars) != 3 {
			t.Errorf("%s: Run left vars with %v", tt.src, slices.Sorted(maps.Keys(vars)))
		}
	}
}

// TestCompileWithBudget: hostile expressions over a custom environment
// fail quickly with ErrBudget.
func TestCompileWithBudget(t *testing.T) {
	vars := requestVars()
	for _, src := range []string{
		`len(filter(body.items, {# == "x"}))`,
		`count(body.small, {any(body.items, {# == "z"})})`,
		`headers["x-big"] matches "^(a|b)*c"`,
		`len(1..2000000)`,
	} {
		p, err := CompileWith(src, requestEnv)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		start := time.Now()
		_, err = p.Run(vars)
		took := time.Since(start)
		if !errors.Is(err, ErrBudget) {
			t.Errorf("%s: %v after %v, want ErrBudget", src, err, took)
			continue
		}
		if !strings.HasPrefix(err.Error(), "expression cost budget exceeded (500000 units") {
			t.Errorf("%s: %q", src, err)
		}
	}
	p, err := CompileWith(`len(body.small) > 1`, requestEnv, WithBudget(10))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Run(vars); ok != true || err != nil {
		t.Errorf("an ordinary expression with 10 units: %v, %v", ok, err)
	}
}

func TestCompileWithErrors(t *testing.T) {
	for _, tt := range []struct {
		src  string
		env  types.Map
		opts []Option
		want string
	}{
		{`method + 1`, requestEnv, nil, "invalid operation: + (mismatched types string and int)"},
		{`$meter`, requestEnv, nil, "unknown name $meter"},
		{`true`, types.Map{"$x": types.Any}, nil, `environment name "$x": must not start with $`},
		{`true`, requestEnv, []Option{WithBudget(0)}, "cost budget 0: must be positive"},
	} {
		_, err := CompileWith(tt.src, tt.env, tt.opts...)
		if !strings.HasPrefix(errText(err), tt.want) {
			t.Errorf("%s: %q, want %q", tt.src, errText(err), tt.want)
		}
	}
}

// TestBudgetKeepsTypeErrors: the $cost calls of the budget do not hide a
// type error from the checker; it is still a compile error.
func TestBudgetKeepsTypeErrors(t *testing.T) {
	const want = "invalid operation: + (mismatched types string and int)"
	if _, err := CompileFilter(config.Expr{Src: `type + 1 == "x"`}); !strings.Contains(errText(err), want) {
		t.Errorf("CompileFilter: %v, want %q", err, want)
	}
	if _, err := CompileString("subject", config.Expr{Src: `source + 1`}); !strings.Contains(errText(err), want) {
		t.Errorf("CompileString: %v, want %q", err, want)
	}
	if _, err := CompileWith(`method + 1`, requestEnv); !strings.Contains(errText(err), want) {
		t.Errorf("CompileWith: %v, want %q", err, want)
	}
}

// TestCompileExprWithPosition: the error of an expression of the config is
// at the column of the error itself in a one-line plain or quoted scalar,
// else at the scalar.
func TestCompileExprWithPosition(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want string
	}{
		{`type: method +`, "config:1:14: attributes.type: unexpected token EOF"}, // at the +
		{`type: 'method +'`, "config:1:15: attributes.type: unexpected token EOF"},
		{`type: "method +"`, "config:1:15: attributes.type: unexpected token EOF"},
		{"type: |\n  method +", "config:1:7: attributes.type: unexpected token EOF"},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
			t.Fatal(err)
		}
		var e config.Expr
		if err := doc.Content[0].Content[1].Decode(&e); err != nil {
			t.Fatal(err)
		}
		_, err := CompileExprWith("attributes.type", e, requestEnv)
		var ce *config.Error
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
}
