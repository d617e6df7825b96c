package filters

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the time zones of the tests, wherever they run

	"github.com/junctionhq/junction/config"
)

// jsonList returns a JSON list of n copies of the JSON value item.
func jsonList(n int, item string) string {
	if n == 0 {
		return "[]"
	}
	return "[" + strings.Repeat(item+",", n-1) + item + "]"
}

// hostileData is the payload of the hostile events of the tests: 600,000
// items, two lists of 3,000 for quadratic loops, a 4 MB string and a
// time zone (loading one takes up to 150µs).
func hostileData() string {
	return `{"items":` + jsonList(600_000, `"a"`) +
		`,"a":` + jsonList(3_000, `"p"`) + `,"b":` + jsonList(3_000, `"q"`) +
		`,"s":"` + strings.Repeat("ab", 2<<20) + `","tz":"America/New_York"}`
}

// ordinaryData is a small payload with the same fields.
const ordinaryData = `{"items":["a","b","x"],"a":["p","q"],"b":["q","r"],"s":"abcxyz","tz":"Europe/Paris","amount":150}`

// TestBudgetStopsHostileEvents: every expression below runs for seconds
// (or exhausts memory) on the hostile event without a budget. With one, it
// fails quickly with ErrBudget, and succeeds on an ordinary event.
func TestBudgetStopsHostileEvents(t *testing.T) {
	hostile := NewEnv(newEvent(t, withData("application/json", hostileData())))
	hostile.Data() // parse once, outside the timings
	ordinary := NewEnv(newEvent(t, withData("application/json", ordinaryData)))
	tests := []struct {
		name, src string
	}{
		{"any over 600,000 items", `any(data.items, {# == "x"})`},
		{"nested loops", `any(data.a, {any(data.b, {# == "x"})})`},
		{"nested loops through a let", `let b = data.b; any(data.a, {let x = #; any(b, {# == x})})`},
		{"matches over 4 MB", `data.s matches "(a|b)+c"`},
		{"dynamic pattern", `data.s matches data.s`},
		{"contains in a loop", `any(data.a, {data.s contains "c"})`},
		{"upper in a loop", `any(data.a, {upper(data.s) == "X"})`},
		{"len in a loop", `any(data.a, {len(data.s) == 1})`},
		{"in over a list", `"x" in data.items`},
		{"not in over a list", `"a" not in data.items`},
		{"filter", `len(filter(data.items, {# != "a"})) > 0`},
		{"map and count", `count(map(data.items, {# + "b"}), {# == "x"}) > 0`},
		{"sum", `sum(data.items, {len(#)}) == 0`},
		{"reduce concatenating", `len(reduce(data.a, #acc + data.s, "")) == 0`},
		{"sortBy", `first(sortBy(data.items, #)) == "x"`},
		{"groupBy", `len(groupBy(data.items, #)) > 1`},
		{"pipe", `data.items | any(# == "x")`},
		{"split", `len(split(data.s, "")) == 0`},
		{"repeat", `len(repeat(data.s, 1000)) == 0`},
		{"repeat of a literal", `len(repeat("ab", len(data.items) * 1000)) == 0`},
		{"replace", `len(replace(data.s, "a", data.s)) == 0`},
		{"toJSON in a loop", `any(data.a, {len(toJSON(data)) == 0})`},
		{"join", `len(join(map(data.a, {data.s}))) == 0`},
		{"deep comparison in a loop", `any(data.a, {data.items == data.b})`},
		{"time zones", `any(data.a, {date("2024-01-01", "2006-01-02", data.tz) == nil})`},
		{"timezone", `any(data.a, {timezone(data.tz) == nil})`},
		{"range", `any(1..len(data.items)*20, {# == 0})`},
		{"map allocates", `len(map(1..len(data.items), {[#, #]})) == 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CompileFilter(config.Expr{Src: tt.src})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			ok, err := m.Match(hostile)
			took := time.Since(start)
			if !errors.Is(err, ErrBudget) {
				t.Fatalf("Match = %v, %v after %v; want ErrBudget", ok, err, took)
			}
			oneLine(t, err)
			if !strings.HasPrefix(err.Error(), "evaluate filter: expression cost budget exceeded") {
				t.Errorf("error %q", err)
			}
			t.Logf("failed after %v", took) // BenchmarkHostile times it
			if _, err := m.Match(ordinary); err != nil {
				t.Errorf("ordinary event: %v", err)
			}
		})
	}
}

// TestBudgetOrdinaryEvent: ordinary filters, the common one included, do
// not charge (they run unmetered) or stay far from the budget.
func TestBudgetOrdinaryEvent(t *testing.T) {
	env := NewEnv(newEvent(t))
	tests := []struct {
		src     string
		metered bool
	}{
		{`type == "com.example.order.created" && data.amount > 100`, false},
		{`type in ["a", "com.example.order.created"] && source startsWith "/ord"`, false},
		{`type matches "order\\.(created|updated)$"`, true},
		{`any(data.items, .qty > 1) && all(data.items, .sku != "")`, true},
		{`sum(map(data.items, .qty)) == 3 && "eu" in data.customer.tags`, true},
		{`upper(data.customer.id) == "C-7" && len(toJSON(data)) > 10`, true},
	}
	for _, tt := range tests {
		m, err := CompileFilter(config.Expr{Src: tt.src}, WithBudget(100))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.(*exprFilter).p.metered; got != tt.metered {
			t.Errorf("%s: metered = %v, want %v", tt.src, got, tt.metered)
		}
		if ok, err := m.Match(env); !ok || err != nil {
			t.Errorf("%s: Match = %v, %v (budget 100 units)", tt.src, ok, err)
		}
	}
}

// TestBudgetUnits pins the cost model: the budget at which an expression
// stops failing.
func TestBudgetUnits(t *testing.T) {
	env := NewEnv(newEvent(t, withData("application/json",
		`{"items":`+jsonList(100, `"a"`)+`,"s":"`+strings.Repeat("x", 1000)+`","m":{"k":["ab","cd"]}}`)))
	tests := []struct {
		src   string
		units int
	}{
		{`!any(data.items, {# == "x"})`, 100},                              // one a list element
		{`!any(data.items, {any(data.items, {# == "x"})})`, 100 + 100*100}, // again for each outer element
		{`data.s matches "^x+$"`, 1000},                                    // one a byte
		{`data.s contains "x"`, 125},                                       // one per 8 bytes
		{`"b" not in data.items`, 100},                                     // one an element
		{`len(data.items) == 100`, 0},                                      // free
		{`len(toJSON(data.m)) > 0`, 1 + 1 + 2 + 1 + 1 + 5},                 // the map, its key, the list, its strings; len of 35 bytes (indented)
		{`upper(data.s) != ""`, 125},                                       // one per 8 bytes
		{`data.s startsWith "x"`, 0},                                       // reads no more than the literal
		{`type == "com.example.order.created"`, 0},
	}
	for _, tt := range tests {
		if tt.units > 0 {
			m, err := CompileFilter(config.Expr{Src: tt.src}, WithBudget(tt.units-1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Match(env); !errors.Is(err, ErrBudget) {
				t.Errorf("%s with %d units: %v, want ErrBudget", tt.src, tt.units-1, err)
			}
		}
		m, err := CompileFilter(config.Expr{Src: tt.src}, WithBudget(max(tt.units, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := m.Match(env); !ok || err != nil {
			t.Errorf("%s with %d units: %v, %v", tt.src, tt.units, ok, err)
		}
	}
}

func TestWithBudget(t *testing.T) {
	for _, n := range []int{0, -1} {
		_, err := CompileFilter(config.Expr{Src: `true`}, WithBudget(n))
		if got, want := errText(err), fmt.Sprintf("cost budget %d: must be positive", n); got != want {
			t.Errorf("WithBudget(%d): %q, want %q", n, got, want)
		}
	}
	// expr's memory budget is set to the same number of units.
	m, err := CompileFilter(config.Expr{Src: `len(1..2000) > 0`}, WithBudget(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Match(NewEnv(newEvent(t))); !errors.Is(err, ErrBudget) {
		t.Errorf("a range over the memory budget: %v, want ErrBudget", err)
	}
}

// TestBudgetTransform: a transform over budget fails, naming what failed;
// sink expressions (String) are bounded too.
func TestBudgetTransform(t *testing.T) {
	hostile := NewEnv(newEvent(t, withData("application/json", `{"items":`+jsonList(600_000, `"a"`)+`}`)))
	ordinary := NewEnv(newEvent(t, withData("application/json", ordinaryData)))
	var tr config.Transform
	if err := config.Decode(yamlNode(t, `transform:
  attributes:
    subject: 'string(count(data.items, {# == "x"}))'
  data: 'map(data.items, {upper(#)})'`, "transform"), &tr); err != nil {
		t.Fatal(err)
	}
	tf, err := CompileTransform(&tr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tf.Apply(hostile)
	if !errors.Is(err, ErrBudget) || !strings.HasPrefix(err.Error(), "evaluate transform attribute subject: expression cost budget exceeded") {
		t.Errorf("Apply = %v, want ErrBudget for the subject", err)
	}
	oneLine(t, err)
	out, err := tf.Apply(ordinary)
	if err != nil || out.Subject() != "1" || string(out.Data()) != `["A","B","X"]` {
		t.Errorf("ordinary event: %v, %v", out, err)
	}

	s, err := CompileString("subject", config.Expr{Src: `join(filter(data.items, {# != "b"}), "-")`})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Eval(hostile); !errors.Is(err, ErrBudget) {
		t.Errorf("String.Eval = %v, want ErrBudget", err)
	}
	if got, err := s.Eval(ordinary); got != "a-x" || err != nil {
		t.Errorf("String.Eval = %q, %v", got, err)
	}
}

// TestBudgetPerEvaluation: each evaluation has the whole budget, even when
// evaluations of one Env run concurrently.
func TestBudgetPerEvaluation(t *testing.T) {
	env := NewEnv(newEvent(t, withData("application/json", `{"items":`+jsonList(600, `"a"`)+`}`)))
	m, err := CompileFilter(config.Expr{Src: `!any(data.items, {# == "x"})`}, WithBudget(1000))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if ok, err := m.Match(env); !ok || err != nil {
					t.Errorf("Match = %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestMaxNodes: an expression too large to compile is a config error at
// its position.
func TestMaxNodes(t *testing.T) {
	src := strings.Repeat("1 + ", 6000) + "1 > 0"
	_, err := CompileFilter(config.Expr{Src: src, Pos: config.Pos{Line: 3, Col: 13}})
	if got := errText(err); !strings.HasPrefix(got, "config:3:13: filter: compilation failed: expression exceeds maximum allowed nodes") {
		t.Errorf("error %q", got)
	}
}
