package filters

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/config"
)

// route compiles a route's matcher as the router does: the dialects of
// filtersYAML (the list under `filters:`, "" for none) and the expression
// filter ("" for none), combined with All.
func route(t testing.TB, filter, filtersYAML string) Matcher {
	t.Helper()
	var ms []Matcher
	if filtersYAML != "" {
		m, err := CompileDialects(yamlNode(t, "filters:\n"+filtersYAML, "filters"))
		if err != nil {
			t.Fatalf("compile filters %q: %v", filtersYAML, err)
		}
		ms = append(ms, m)
	}
	if filter != "" {
		m, err := CompileFilter(config.Expr{Src: filter})
		if err != nil {
			t.Fatalf("compile filter %q: %v", filter, err)
		}
		ms = append(ms, m)
	}
	return All(ms...)
}

// describeCond shows the condition a route is indexed by; "~" marks a
// look-up of the CloudEvents string form.
func describeCond(c *cond) string {
	if c == nil {
		return "always"
	}
	op := "exact"
	if c.prefix {
		op = "prefix"
	}
	name := c.key.name
	if c.key.canon {
		name = "~" + name
	}
	return fmt.Sprintf("%s %s %q", op, name, c.values)
}

func TestIndexChoice(t *testing.T) {
	tests := []struct {
		filter  string
		filters string // YAML list items
		want    string
	}{
		// Expressions.
		{filter: `type == "a"`, want: `exact type ["a"]`},
		{filter: `"a" == type`, want: `exact type ["a"]`},
		{filter: `type in ["a", "b", "a"]`, want: `exact type ["a" "b"]`},
		{filter: `type in []`, want: `exact type []`},
		{filter: `type startsWith "com.x."`, want: `prefix type ["com.x."]`},
		{filter: `source == "/s" && data.amount > 10`, want: `exact source ["/s"]`},
		{filter: `data.amount > 10 && subject == "s"`, want: `exact subject ["s"]`},
		{filter: `id == "1" && datacontenttype == "application/json" && dataschema == "x"`, want: `exact id ["1"]`},
		{filter: `type startsWith "com." && source == "/s"`, want: `exact source ["/s"]`},
		{filter: `type in ["a", "b"] && source == "/s"`, want: `exact source ["/s"]`},
		{filter: `type startsWith "com." && subject startsWith "orders/"`, want: `prefix subject ["orders/"]`},
		{filter: `type == "a" && type == "b"`, want: `exact type ["a"]`},
		{filter: `type == "a" and (source == "/s" and subject == "x")`, want: `exact type ["a"]`},
		{filter: `tenant == "acme" && data.x == 1`, want: `exact tenant ["acme"]`},
		{filter: `$env.tenant == "acme"`, want: `exact tenant ["acme"]`},
		{filter: `$env["type"] == "a"`, want: `exact type ["a"]`},
		{filter: `data.amount > 10`, want: `always`},
		{filter: `data.type == "a"`, want: `always`},
		{filter: `data == "a"`, want: `always`},
		{filter: `$env.data == "a"`, want: `always`},
		{filter: `time == "2024-01-01T00:00:00Z"`, want: `always`},
		{filter: `type == "a" || source == "/s"`, want: `always`},
		{filter: `(type == "a" || type == "b") && data.x == 1`, want: `always`},
		{filter: `!(type == "a")`, want: `always`},
		{filter: `not (type == "a")`, want: `always`},
		{filter: `type not in ["a"]`, want: `always`},
		{filter: `type != "a"`, want: `always`},
		{filter: `type endsWith "a" && type contains "b" && type matches "c"`, want: `always`},
		{filter: `type in ["a", 1]`, want: `always`},
		{filter: `subject in ["a", ""]`, want: `always`}, // nil in ["", ...] holds in expr
		{filter: `type == "a" + "b"`, want: `always`},
		{filter: `type == source`, want: `always`},
		{filter: `let t = type; t == "a"`, want: `always`},
		{filter: `type == "a" ? true : false`, want: `always`},
		{filter: `type startsWith "a" || true`, want: `always`},
		{filter: `any(data.items, type == "a")`, want: `always`},

		// Dialects.
		{filters: `- exact: {type: a}`, want: `exact type ["a"]`},
		{filters: `- exact: {type: a, source: /s}`, want: `exact type ["a"]`},
		{filters: `- prefix: {type: com.}`, want: `prefix type ["com."]`},
		{filters: `- prefix: {type: com.}` + "\n" + `- exact: {subject: s}`, want: `exact subject ["s"]`},
		{filters: `- exact: {tenant: acme}`, want: `exact ~tenant ["acme"]`},
		{filters: `- exact: {time: "2024-01-01T00:00:00Z"}`, want: `exact ~time ["2024-01-01T00:00:00Z"]`},
		{filters: `- all: [{prefix: {type: a}}, {exact: {priority: "5"}}]`, want: `exact ~priority ["5"]`},
		{filters: `- suffix: {type: .created}`, want: `always`},
		{filters: `- any: [{exact: {type: a}}, {exact: {type: b}}]`, want: `always`},
		{filters: `- not: {exact: {type: a}}`, want: `always`},

		// Both: an event must pass both, so either may index the route.
		{filter: `data.x == 1`, filters: `- exact: {type: a}`, want: `exact type ["a"]`},
		{filter: `source == "/s"`, filters: `- prefix: {type: a}`, want: `exact source ["/s"]`},
		{filter: `type == "a" || type == "b"`, filters: `- suffix: {type: a}`, want: `always`},
		{want: `always`}, // no filter at all
	}
	for _, tt := range tests {
		t.Run(tt.filter+" "+tt.filters, func(t *testing.T) {
			got := describeCond(choose([]Matcher{route(t, tt.filter, tt.filters)})[0])
			if got != tt.want {
				t.Errorf("indexed by %s, want %s", got, tt.want)
			}
		})
	}
}

// TestIndexChoiceShared: a condition many routes share is a poor index;
// each route is indexed by its own.
func TestIndexChoiceShared(t *testing.T) {
	ms := []Matcher{
		route(t, `source == "/s" && type == "a"`, ""),
		route(t, `source == "/s" && type == "b"`, ""),
		route(t, `source == "/s" && type in ["a", "b", "c"]`, ""),
		route(t, `type startsWith "com." && subject startsWith "x"`, ""),
		route(t, `type startsWith "com." && subject startsWith "y"`, ""),
	}
	var got []string
	for _, c := range choose(ms) {
		got = append(got, describeCond(c))
	}
	want := []string{`exact type ["a"]`, `exact type ["b"]`, `exact source ["/s"]`, `prefix subject ["x"]`, `prefix subject ["y"]`}
	if !slices.Equal(got, want) {
		t.Errorf("indexed by\n%q\nwant\n%q", got, want)
	}
}

func TestIndexCandidates(t *testing.T) {
	ms := []Matcher{
		0:  route(t, `type == "com.example.order.created" && data.amount > 100`, ""),
		1:  route(t, `type == "com.example.order.deleted"`, ""),
		2:  route(t, `type startsWith "com.example."`, ""),
		3:  route(t, `type startsWith "com.example.order."`, ""),
		4:  route(t, `type startsWith "org."`, ""),
		5:  nil,
		6:  route(t, `data.amount > 100`, ""),
		7:  route(t, `tenant in ["acme", "umbrella"]`, ""),
		8:  route(t, "", `- exact: {source: /orders}`),
		9:  route(t, "", `- exact: {source: /billing}`),
		10: route(t, "", `- prefix: {priority: "1"}`),
		11: route(t, `subject startsWith ""`, ""),
		// Route 0 shares "com.example.order.created": indexed by "x".
		12: route(t, `type == "com.example.order.created" && type == "x"`, ""),
	}
	ix := NewIndex(ms)
	if e, p, a := ix.Stats(); e != 6 || p != 5 || a != 2 {
		t.Errorf("Stats() = %d, %d, %d, want 6, 5, 2", e, p, a)
	}
	tests := []struct {
		name string
		opts []evOpt
		want []int
	}{
		{name: "order created", want: []int{0, 2, 3, 5, 6, 8}},
		{name: "org type, other source", opts: []evOpt{withType("org.x"), withSource("/billing")}, want: []int{4, 5, 6, 9}},
		{name: "extension", opts: []evOpt{withExt("tenant", "umbrella")}, want: []int{0, 2, 3, 5, 6, 7, 8}},
		{name: "int extension by its string form", opts: []evOpt{withType("x"), withExt("priority", 12)}, want: []int{5, 6, 8, 10, 12}},
		{name: "subject", opts: []evOpt{withType("x"), withSubject("s")}, want: []int{5, 6, 8, 11, 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := NewEnv(newEvent(t, tt.opts...))
			got := ix.Candidates(env, []int{-1})
			if !slices.Equal(got, append([]int{-1}, tt.want...)) {
				t.Errorf("Candidates = %v, want [-1] + %v", got, tt.want)
			}
		})
	}
	if got := ix.Candidates(nil, nil); !slices.Equal(got, []int{5, 6}) {
		t.Errorf("Candidates(nil) = %v, want the always-candidates [5 6]", got)
	}
}

func withSource(s string) evOpt { return func(e *event.Event) { e.SetSource(s) } }

// TestIndexManyPrefixes: an event matching more prefix buckets than are
// merged on the stack still gets every candidate once, in order.
func TestIndexManyPrefixes(t *testing.T) {
	long := "abcdefghijklmnopqrstuvwxyz0123456789"
	var ms []Matcher
	for i := len(long); i >= 0; i-- {
		ms = append(ms, route(t, fmt.Sprintf(`type startsWith %q`, long[:i]), ""))
		ms = append(ms, route(t, fmt.Sprintf(`type startsWith %q`, long[:i]), ""))
	}
	ms = append(ms, nil)
	ix := NewIndex(ms)
	got := ix.Candidates(NewEnv(newEvent(t, withType(long))), nil)
	if len(got) != len(ms) || !slices.IsSorted(got) {
		t.Fatalf("Candidates = %v, want 0..%d", got, len(ms)-1)
	}
	got = ix.Candidates(NewEnv(newEvent(t, withType("abc"))), nil)
	// "", "a", "ab" and "abc", two routes each, and the always-candidate.
	want := []int{len(ms) - 9, len(ms) - 8, len(ms) - 7, len(ms) - 6, len(ms) - 5, len(ms) - 4, len(ms) - 3, len(ms) - 2, len(ms) - 1}
	if !slices.Equal(got, want) {
		t.Fatalf("Candidates = %v, want %v", got, want)
	}
}

func TestIndexCandidatesAllocs(t *testing.T) {
	var ms []Matcher
	for i := range 100 {
		ms = append(ms, route(t, fmt.Sprintf(`type == "com.example.event.%d" && data.amount > 10`, i), ""))
		ms = append(ms, route(t, "", fmt.Sprintf("- prefix: {type: com.example.event.%d}\n- exact: {tenant: acme}", i)))
	}
	ms = append(ms, nil)
	ix := NewIndex(ms)
	env := NewEnv(newEvent(t, withType("com.example.event.42"), withExt("tenant", "acme")))
	dst := make([]int, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		dst = ix.Candidates(env, dst[:0])
	})
	if allocs != 0 {
		t.Errorf("Candidates allocates %v times per event, want 0", allocs)
	}
	if len(dst) == 0 || len(dst) > 10 {
		t.Errorf("Candidates = %v, want a few", dst)
	}
}

// TestIndexLosesNoMatch is the index's contract, on random routes and
// events: every route that matches is a candidate.
func TestIndexLosesNoMatch(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 30
	}
	var candidates, total int
	for seed := range uint64(rounds) {
		c, n := checkIndex(t, seed)
		candidates += c
		total += n
	}
	// The test must be able to see the index leave routes out.
	if candidates*10 > total*7 {
		t.Errorf("%d candidates of %d route checks: the random routes are not indexed", candidates, total)
	}
}

// FuzzIndex runs the property of TestIndexLosesNoMatch on other seeds.
func FuzzIndex(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { checkIndex(t, seed) })
}

// checkIndex builds random routes and events from seed and checks that
// {i : matchers[i] matches} is within Candidates, which is strictly
// ascending. It returns the candidates and route checks it saw.
func checkIndex(t *testing.T, seed uint64) (candidates, total int) {
	t.Helper()
	g := &gen{r: rand.New(rand.NewPCG(seed, 7))}
	ms := make([]Matcher, 40)
	srcs := make([]string, len(ms))
	for i := range ms {
		var parts []Matcher
		switch g.r.IntN(5) {
		case 0: // no filter
		case 1, 2:
			srcs[i] = g.expr(2)
		case 3:
			parts = append(parts, g.dialect(2))
		default:
			srcs[i] = g.expr(2)
			parts = append(parts, g.dialect(2))
		}
		if srcs[i] != "" {
			m, err := CompileFilter(config.Expr{Src: srcs[i]})
			if err != nil {
				t.Fatalf("compile %q: %v", srcs[i], err)
			}
			parts = append(parts, m)
		}
		ms[i] = All(parts...)
	}
	ix := NewIndex(ms)
	var dst []int
	for range 60 {
		ev := g.event()
		env := NewEnv(ev)
		dst = ix.Candidates(env, dst[:0])
		for j := 1; j < len(dst); j++ {
			if dst[j] <= dst[j-1] {
				t.Fatalf("seed %d: Candidates not strictly ascending: %v", seed, dst)
			}
		}
		for i, m := range ms {
			total++
			ok := m == nil
			if m != nil {
				ok, _ = m.Match(env)
			}
			if ok && !slices.Contains(dst, i) {
				c := choose(ms[i : i+1])[0]
				t.Fatalf("seed %d: route %d (filter %q, %#v) matches %s but is not a candidate (indexed alone by %s; Candidates %v)",
					seed, i, srcs[i], ms[i], describeEvent(ev), describeCond(c), dst)
			}
		}
		candidates += len(dst)
	}
	return candidates, total
}

// gen makes random routes and events over a small vocabulary, so that
// conditions often hold.
type gen struct{ r *rand.Rand }

var (
	genAttrs    = []string{"type", "type", "source", "subject", "id", "datacontenttype", "dataschema", "tenant", "priority", "flag", "link", "time", "specversion"}
	genValues   = []string{"a", "ab", "abc", "b", "5", "true", "1.0", ""}
	genPrefixes = []string{"a", "ab", "abc", "b", "5", "t", ""}
)

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// expr returns a random filter expression.
func (g *gen) expr(depth int) string {
	if depth > 0 && g.r.IntN(3) > 0 {
		x, y := g.expr(depth-1), g.expr(depth-1)
		switch g.r.IntN(8) {
		case 0, 1, 2:
			return "(" + x + " && " + y + ")"
		case 3:
			return x + " and " + y
		case 4:
			return "(" + x + " || " + y + ")"
		case 5:
			return "!(" + x + ")"
		case 6:
			return "not (" + x + ")"
		default:
			return x + " && " + y + " && " + g.expr(0)
		}
	}
	a, v, p := g.pick(genAttrs), g.pick(genValues), g.pick(genPrefixes)
	switch g.r.IntN(14) {
	case 0, 1:
		return fmt.Sprintf("%s == %q", a, v)
	case 2:
		return fmt.Sprintf("%q == %s", v, a)
	case 3:
		return fmt.Sprintf("%s in [%q, %q]", a, v, g.pick(genValues))
	case 4, 5:
		return fmt.Sprintf("%s startsWith %q", a, p)
	case 6:
		return fmt.Sprintf("%s != %q", a, v)
	case 7:
		return fmt.Sprintf("%s endsWith %q", a, p)
	case 8:
		return fmt.Sprintf("$env.%s == %q", a, v)
	case 9:
		return fmt.Sprintf("$env[%q] startsWith %q", a, p)
	case 10:
		return fmt.Sprintf("%s not in [%q]", a, v)
	case 11:
		return "data.amount > 10"
	case 12:
		return fmt.Sprintf("%s == nil", a)
	default:
		return "priority == 5"
	}
}

// dialect returns a random matcher of the Subscriptions API dialects.
func (g *gen) dialect(depth int) Matcher {
	if depth > 0 && g.r.IntN(2) == 0 {
		x, y := g.dialect(depth-1), g.dialect(depth-1)
		switch g.r.IntN(4) {
		case 0, 1:
			return allOf{x, y}
		case 2:
			return anyOf{x, y}
		default:
			return &notOf{m: x}
		}
	}
	a := g.pick(genAttrs)
	switch g.r.IntN(4) {
	case 0, 1:
		if a == "time" && g.r.IntN(2) == 0 {
			return &attrFilter{op: "exact", attr: a, value: "2024-03-01T12:00:00Z"}
		}
		return &attrFilter{op: "exact", attr: a, value: g.pick(genValues)}
	case 2:
		return &attrFilter{op: "prefix", attr: a, value: g.pick(genPrefixes)}
	default:
		return &attrFilter{op: "suffix", attr: a, value: g.pick(genPrefixes)}
	}
}

// event returns a random event; its values need not be valid CloudEvents.
func (g *gen) event() *event.Event {
	str := func() *string {
		if g.r.IntN(3) == 0 {
			return nil
		}
		s := g.pick(genValues)
		return &s
	}
	uri := func(s string) *url.URL { return &url.URL{Path: s} }
	c := &event.EventContextV1{
		ID:              g.pick(genValues),
		Type:            g.pick(genValues),
		Source:          types.URIRef{URL: *uri(g.pick(genValues))},
		Subject:         str(),
		DataContentType: str(),
	}
	if g.r.IntN(2) == 0 {
		c.DataSchema = &types.URI{URL: *uri(g.pick(genValues))}
	}
	if g.r.IntN(2) == 0 {
		c.Time = &types.Timestamp{Time: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
	}
	c.Extensions = map[string]any{}
	if g.r.IntN(3) > 0 {
		c.Extensions["tenant"] = g.pick(genValues)
	}
	switch g.r.IntN(3) {
	case 0:
		c.Extensions["priority"] = int32(5)
	case 1:
		c.Extensions["priority"] = g.pick(genValues)
	}
	if g.r.IntN(2) == 0 {
		c.Extensions["flag"] = g.r.IntN(2) == 0
	}
	if g.r.IntN(2) == 0 {
		c.Extensions["link"] = types.URI{URL: *uri(g.pick(genValues))}
	}
	e := event.New()
	e.Context = c
	e.DataEncoded = []byte(fmt.Sprintf(`{"amount": %d}`, g.r.IntN(20)))
	return &e
}

func describeEvent(e *event.Event) string {
	var b strings.Builder
	c := e.Context.(*event.EventContextV1)
	fmt.Fprintf(&b, "{id %q type %q source %q", c.ID, c.Type, c.Source.String())
	if c.Subject != nil {
		fmt.Fprintf(&b, " subject %q", *c.Subject)
	}
	if c.DataContentType != nil {
		fmt.Fprintf(&b, " datacontenttype %q", *c.DataContentType)
	}
	if c.DataSchema != nil {
		fmt.Fprintf(&b, " dataschema %q", c.DataSchema.String())
	}
	if c.Time != nil {
		b.WriteString(" time")
	}
	for k, v := range c.Extensions {
		fmt.Fprintf(&b, " %s %#v", k, v)
	}
	b.WriteString("}")
	return b.String()
}

// TestReadmeIndexExamples: the filters README.md shows as indexable are.
func TestReadmeIndexExamples(t *testing.T) {
	_, section, ok := strings.Cut(readme, "## The route index")
	if !ok {
		t.Fatal("README.md has no route index section")
	}
	_, block, _ := strings.Cut(section, "```\n")
	block, _, _ = strings.Cut(block, "```")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if len(lines) < 3 {
		t.Fatalf("README route index examples: %q", lines)
	}
	for _, line := range lines {
		if c := choose([]Matcher{route(t, line, "")})[0]; c == nil {
			t.Errorf("README example %q is not indexed", line)
		}
	}
}
