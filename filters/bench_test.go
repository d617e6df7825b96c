package filters

import (
	"fmt"
	"strings"
	"testing"

	"github.com/junctionhq/junction/config"
)

// BenchmarkFilter evaluates `type == "x" && data.amount > 100`: "env-reused"
// against one environment (data parsed once, as when several routes see
// the same event), "per-event" with a new environment each time (includes
// NewEnv and the JSON parse of a small payload), "type-only" when the type
// differs, so data is never parsed.
func BenchmarkFilter(b *testing.B) {
	m, err := CompileFilter(config.Expr{Src: `type == "com.example.order.created" && data.amount > 100`})
	if err != nil {
		b.Fatal(err)
	}
	ev := newEvent(b)
	b.Run("env-reused", func(b *testing.B) {
		env := NewEnv(ev)
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := m.Match(env); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("per-event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := m.Match(NewEnv(ev)); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("type-only", func(b *testing.B) {
		other := newEvent(b, withType("com.example.other"))
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := m.Match(NewEnv(other)); ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}

func BenchmarkDialects(b *testing.B) {
	n := yamlNode(b, `filters:
  - exact: {type: com.example.order.created}
  - prefix: {source: /ord}
  - any:
      - suffix: {type: .created}
      - not: {exact: {tenant: blocked}}`, "filters")
	m, err := CompileDialects(n)
	if err != nil {
		b.Fatal(err)
	}
	env := NewEnv(newEvent(b, withExt("tenant", "acme")))
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := m.Match(env); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkTransform(b *testing.B) {
	var tr config.Transform
	err := config.Decode(yamlNode(b, `transform:
  attributes:
    type: '"com.example.order.big"'
    subject: data.customer.id
  data: '{"id": data.orderId, "total": data.amount}'`, "transform"), &tr)
	if err != nil {
		b.Fatal(err)
	}
	t, err := CompileTransform(&tr)
	if err != nil {
		b.Fatal(err)
	}
	ev := newEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Apply(NewEnv(ev)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewEnv(b *testing.B) {
	ev := newEvent(b, withSubject("s"), withExt("tenant", "acme"))
	b.ReportAllocs()
	for b.Loop() {
		if NewEnv(ev).v.Type == "" {
			b.Fatal("no type")
		}
	}
}

// routes returns n realistic routes: route i is
// `type == "com.example.event.<i>" && data.amount > 10`.
func routes(b *testing.B, n int) []Matcher {
	ms := make([]Matcher, n)
	for i := range ms {
		m, err := CompileFilter(config.Expr{Src: fmt.Sprintf(`type == "com.example.event.%d" && data.amount > 10`, i)})
		if err != nil {
			b.Fatal(err)
		}
		ms[i] = m
	}
	return ms
}

// benchRoute routes one event that matches exactly one of n routes, as the
// router does: Candidates, then Match for each candidate. "event" is the
// whole cost of an event (NewEnv and the JSON parse of its payload
// included), "route" the routing alone against an environment whose
// payload is parsed already. "scan" matches every route, without the index.
func benchRoute(b *testing.B, n int, scan bool) {
	ms := routes(b, n)
	ix := NewIndex(ms)
	ev := newEvent(b, withType(fmt.Sprintf("com.example.event.%d", n/2)))
	run := func(b *testing.B, env func() *Env) {
		dst := make([]int, 0, 16)
		b.ReportAllocs()
		for b.Loop() {
			e := env()
			dst = ix.Candidates(e, dst[:0])
			matched := 0
			for _, i := range dst {
				if ok, err := ms[i].Match(e); ok && err == nil {
					matched++
				}
			}
			if matched != 1 {
				b.Fatalf("%d routes matched, want 1", matched)
			}
		}
	}
	b.Run("event", func(b *testing.B) { run(b, func() *Env { return NewEnv(ev) }) })
	shared := NewEnv(ev)
	b.Run("route", func(b *testing.B) { run(b, func() *Env { return shared }) })
	if scan {
		b.Run("scan", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				matched := 0
				for _, m := range ms {
					if ok, err := m.Match(shared); ok && err == nil {
						matched++
					}
				}
				if matched != 1 {
					b.Fatalf("%d routes matched, want 1", matched)
				}
			}
		})
	}
}

func BenchmarkRoute10(b *testing.B)    { benchRoute(b, 10, true) }
func BenchmarkRoute1000(b *testing.B)  { benchRoute(b, 1000, true) }
func BenchmarkRoute10000(b *testing.B) { benchRoute(b, 10000, false) }

// BenchmarkCompile10000 is the start-up cost of 10,000 routes: compiling
// their filters and indexing them.
func BenchmarkCompile10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ix := NewIndex(routes(b, 10000))
		if e, _, _ := ix.Stats(); e != 10000 {
			b.Fatalf("%d routes indexed by equality, want 10000", e)
		}
	}
}

// BenchmarkHostile is the cost of the hostile events of the cost budget's
// tests (see hostileData): each evaluation stops when the budget is spent
// and fails with ErrBudget. The payload (9.7 MB: the lists and a 7 MB
// string) is parsed once, outside the loop, but for "any-600k-per-event",
// which includes its JSON parse: no budget bounds that, the body limit does.
func BenchmarkHostile(b *testing.B) {
	body := `{"items":` + jsonList(600_000, `"a"`) +
		`,"a":` + jsonList(3_000, `"p"`) + `,"b":` + jsonList(3_000, `"q"`) +
		`,"s":"` + strings.Repeat("ab", 7<<19) + `"}`
	ev := newEvent(b, withData("application/json", body))
	env := NewEnv(ev)
	env.Data()
	for _, bm := range []struct{ name, src string }{
		{"any-600k", `any(data.items, {# == "x"})`},
		{"nested-3000x3000", `any(data.a, {any(data.b, {# == "x"})})`},
		{"matches-7MB", `data.s matches "(a|b)+c"`},
	} {
		m, err := CompileFilter(config.Expr{Src: bm.src})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, _ := m.Match(env); ok {
					b.Fatal("matched")
				}
			}
		})
		if bm.name == "any-600k" {
			b.Run("any-600k-per-event", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if ok, _ := m.Match(NewEnv(ev)); ok {
						b.Fatal("matched")
					}
				}
			})
		}
	}
}
