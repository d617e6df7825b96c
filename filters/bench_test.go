package filters

import (
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
