package filters

import (
	"testing"

	"github.com/junctionhq/junction/config"
)

// FuzzCompileFilter: any source text compiles or fails with an error, and a
// compiled filter evaluates without panicking.
func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{
		`type == "x" && data.amount > 100`,
		`data.customer.id == nil`,
		`let x = data.items; x[0].sku == "a"`,
		`let data = 1; data == 1`,
		`$env.tenant == "a" || $env["data"]?.x != nil`,
		`all(data.items, .qty > 0) and any(data.items, #.sku == "b")`,
		`time.Year() == 2024`,
		`data.amount + 1`,
		`(data ?? 1) | string()`,
		`{a: 1}.a == 1`,
		`data.items[1:2][0] == nil`,
		`if data.x { true } else { false }`,
		`$ext($env, "x") == nil`,
		`$data(1) == nil`,
		`any(data.items, {.sku matches "a" && upper(.sku) in data.customer.tags})`,
		`repeat(data.customer.id, 3) + replace(type, "", "xx") == join(map(1..3, {string(#)}))`,
		`$cost($env, data, 4) != nil && $cost(1, 2, 3) == nil`,
		`"a" + `,
		"",
	} {
		f.Add(s)
	}
	env := NewEnv(newEvent(f, withExt("tenant", "acme")))
	f.Fuzz(func(t *testing.T, src string) {
		m, err := CompileFilter(config.Expr{Src: src, Pos: config.Pos{Line: 1, Col: 1}})
		if err != nil || m == nil {
			return
		}
		_, _ = m.Match(env)
	})
}

// FuzzEnvData: any bytes as data, with or without a JSON content type, give
// an environment whose data filters and transforms can read without
// panicking.
func FuzzEnvData(f *testing.F) {
	for _, s := range []string{`{"amount": 150, "a": {"b": [1, "x"]}}`, `[1,2,3]`, `"str"`, `1e400`, `{"a":`, "\xff\xfe", ``, `null`} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	m, err := CompileFilter(config.Expr{Src: `data.amount > 100 || data.a.b[1] == "x" || data[0] == 1 || data == "str"`})
	if err != nil {
		f.Fatal(err)
	}
	tr, err := CompileTransform(&config.Transform{
		Attributes: config.ExprMap{{Name: "subject", Expr: config.Expr{Src: `data.a`}}},
		Data:       config.Expr{Src: `data`},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		ct := "text/plain"
		if asJSON {
			ct = "application/json"
		}
		ev := newEvent(t, withData(ct, string(data)))
		env := NewEnv(ev)
		_ = env.Data()
		_, _ = m.Match(env)
		_, _ = tr.Apply(env)
		clearCT(ev)
		env = NewEnv(ev)
		_, _ = m.Match(env)
	})
}
