package filters

import (
	"cmp"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// Index finds the routes that may match an event, by the conditions in
// their filters that can be looked up.
//
// Each route is indexed by at most one condition that its filter requires
// (see NewIndex), so the cost of Candidates grows with the routes whose
// indexed condition holds, not with the number of routes. An Index is
// immutable and safe for concurrent use.
type Index struct {
	always []int // routes without an indexed condition
	exact  []exactIndex
	prefix []prefixIndex

	nExact, nPrefix int
}

// exactIndex holds the routes that require one attribute to equal a value.
type exactIndex struct {
	key    attrKey
	routes map[string][]int // value -> route ids, ascending
}

// prefixIndex holds the routes that require one attribute to start with a
// value. The prefixes of an event's value are looked up by length: one map
// look-up per distinct prefix length no longer than the value.
type prefixIndex struct {
	key    attrKey
	lens   []int            // distinct prefix lengths, ascending
	routes map[string][]int // prefix -> route ids, ascending
}

// attrKey names what an index looks up in an event: an attribute or
// extension as expressions see it (a string, else absent), or, with canon,
// its CloudEvents string form as the dialects compare it. The two differ
// only for extensions that are not strings and for time.
type attrKey struct {
	name  string
	canon bool
}

// value returns the string an index looks up for key, false when the event
// has none (no event can then satisfy a condition on it).
func (k attrKey) value(v *vars) (string, bool) {
	if k.canon {
		return v.attrString(k.name)
	}
	return v.exprString(k.name)
}

// exprString returns the value of name as expressions see it when it is a
// string; false when it is not (absent, another type, data or time).
func (v *vars) exprString(name string) (string, bool) {
	switch name {
	case "id":
		return v.ID, true
	case "source":
		return v.Source, true
	case "type":
		return v.Type, true
	case "specversion":
		return v.Specversion, true
	case "subject":
		s, ok := v.Subject.(string)
		return s, ok
	case "datacontenttype":
		s, ok := v.Datacontenttype.(string)
		return s, ok
	case "dataschema":
		s, ok := v.Dataschema.(string)
		return s, ok
	case "time", "data":
		return "", false
	}
	s, ok := v.ext(name).(string)
	return s, ok
}

// cond is a condition that a matcher requires for a match: the attribute
// equals one of values, or, with prefix, starts with values[0].
type cond struct {
	key    attrKey
	prefix bool
	values []string
}

// requiredConds appends to out the conditions that m requires: those of the
// top-level conjunctions of expressions and of the exact and prefix
// dialects, through all and All. Other matchers (any, not, suffix, unknown
// types) require nothing that can be looked up.
func requiredConds(m Matcher, out []cond) []cond {
	switch m := m.(type) {
	case *exprFilter:
		out = append(out, m.conds...)
	case allOf:
		for _, x := range m {
			out = requiredConds(x, out)
		}
	case *attrFilter:
		if m.op != "exact" && m.op != "prefix" {
			break
		}
		key := attrKey{name: m.attr}
		// Context attributes other than time are the same string for
		// the dialects and for expressions (the dialects see an empty
		// id, source or type as absent: looking it up as "" only adds a
		// candidate).
		key.canon = !contextAttrs[m.attr] || m.attr == "time"
		out = append(out, cond{key: key, prefix: m.op == "prefix", values: []string{m.value}})
	}
	return out
}

// exprConds returns the conditions that the expression src requires: in
// its top-level conjunctions (a && b && c), comparisons of an attribute or
// extension (or $env.name, $env["name"]) with string literals:
//
//	name == "x", "x" == name, name in ["x", "y"], name startsWith "x."
//
// The tree is the parsed source, before the compiler's rewriting. A source
// that does not parse, or any other shape, requires nothing.
func exprConds(src string) []cond {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	var out []cond
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		b, ok := n.(*ast.BinaryNode)
		if !ok {
			return
		}
		switch b.Operator {
		case "&&", "and":
			walk(b.Left)
			walk(b.Right)
		case "==":
			name, ok := exprName(b.Left)
			lit, isLit := b.Right.(*ast.StringNode)
			if !ok || !isLit {
				name, ok = exprName(b.Right)
				lit, isLit = b.Left.(*ast.StringNode)
			}
			if ok && isLit {
				out = append(out, cond{key: attrKey{name: name}, values: []string{lit.Value}})
			}
		case "in":
			name, ok := exprName(b.Left)
			arr, isArr := b.Right.(*ast.ArrayNode)
			if !ok || !isArr {
				return
			}
			values := make([]string, 0, len(arr.Nodes))
			for _, x := range arr.Nodes {
				s, ok := x.(*ast.StringNode)
				if !ok {
					return
				}
				if s.Value == "" {
					// expr looks a nil needle up in a list of strings
					// as "": the condition holds without the attribute.
					return
				}
				if !slices.Contains(values, s.Value) {
					values = append(values, s.Value)
				}
			}
			out = append(out, cond{key: attrKey{name: name}, values: values})
		case "startsWith":
			name, ok := exprName(b.Left)
			lit, isLit := b.Right.(*ast.StringNode)
			if ok && isLit {
				out = append(out, cond{key: attrKey{name: name}, prefix: true, values: []string{lit.Value}})
			}
		}
	}
	walk(tree.Node)
	return out
}

// exprName returns the attribute or extension that n reads, false when n
// reads something else or a value that is never a string (data, time).
func exprName(n ast.Node) (string, bool) {
	var name string
	switch n := n.(type) {
	case *ast.IdentifierNode:
		name = n.Value
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, isStr := n.Property.(*ast.StringNode)
		if !ok || id.Value != "$env" || !isStr || n.Method {
			return "", false
		}
		name = prop.Value
	default:
		return "", false
	}
	if name == "data" || name == "time" || name == "" || strings.HasPrefix(name, "$") {
		return "", false
	}
	return name, true
}

// NewIndex indexes matchers; matchers[i] may be nil (a route without
// filter: always a candidate). Route ids are the slice indexes.
//
// A route is indexed by one condition that its matcher requires: an
// attribute or extension equal to a string, one of a list of strings, or
// starting with a string. Among several, the condition that the fewest
// routes share (summed over the values of a list), then equality over
// prefix, then the fewest values or the longest prefix, then the first. A
// route without such a condition is always a candidate.
func NewIndex(matchers []Matcher) *Index {
	ix := &Index{}
	exact := map[attrKey]int{}
	prefix := map[attrKey]int{}
	for i, c := range choose(matchers) {
		switch {
		case c == nil:
			ix.always = append(ix.always, i)
		case c.prefix:
			ix.nPrefix++
			j, ok := prefix[c.key]
			if !ok {
				j = len(ix.prefix)
				prefix[c.key] = j
				ix.prefix = append(ix.prefix, prefixIndex{key: c.key, routes: map[string][]int{}})
			}
			p := &ix.prefix[j]
			v := c.values[0]
			if _, ok := p.routes[v]; !ok && !slices.Contains(p.lens, len(v)) {
				p.lens = append(p.lens, len(v))
			}
			p.routes[v] = append(p.routes[v], i)
		default:
			ix.nExact++
			j, ok := exact[c.key]
			if !ok {
				j = len(ix.exact)
				exact[c.key] = j
				ix.exact = append(ix.exact, exactIndex{key: c.key, routes: map[string][]int{}})
			}
			e := &ix.exact[j]
			for _, v := range c.values {
				e.routes[v] = append(e.routes[v], i)
			}
		}
	}
	for j := range ix.prefix {
		slices.Sort(ix.prefix[j].lens)
	}
	return ix
}

// choose returns, per matcher, the condition it is indexed by; nil for an
// always-candidate.
func choose(matchers []Matcher) []*cond {
	type valueKey struct {
		key    attrKey
		prefix bool
		value  string
	}
	conds := make([][]cond, len(matchers))
	shared := map[valueKey]int{} // routes requiring each value
	for i, m := range matchers {
		if m == nil {
			continue
		}
		conds[i] = requiredConds(m, nil)
		for _, c := range conds[i] {
			for _, v := range c.values {
				shared[valueKey{c.key, c.prefix, v}]++
			}
		}
	}
	// weight estimates how many routes share the buckets of c.
	weight := func(c *cond) int {
		w := 0
		for _, v := range c.values {
			w += shared[valueKey{c.key, c.prefix, v}]
		}
		return w
	}
	better := func(a, b *cond) bool {
		if c := cmp.Compare(weight(a), weight(b)); c != 0 {
			return c < 0
		}
		if a.prefix != b.prefix {
			return !a.prefix
		}
		if a.prefix {
			return len(a.values[0]) > len(b.values[0])
		}
		return len(a.values) < len(b.values)
	}
	out := make([]*cond, len(matchers))
	for i, cs := range conds {
		for j := range cs {
			if out[i] == nil || better(&cs[j], out[i]) {
				out[i] = &cs[j]
			}
		}
	}
	return out
}

// maxLists bounds the candidate lists Candidates merges on the stack; past
// it, it sorts.
const maxLists = 16

// candidateLists collects the sorted lists of route ids to merge.
type candidateLists struct {
	l    [maxLists][]int
	k    int
	dst  []int
	sort bool // more than maxLists lists: appended to dst, to sort
}

func (c *candidateLists) add(l []int) {
	switch {
	case len(l) == 0:
	case c.k < maxLists:
		c.l[c.k] = l
		c.k++
	default:
		c.sort = true
		c.dst = append(c.dst, l...)
	}
}

// Candidates appends to dst, in ascending order, the ids of routes that may
// match env's event (every route whose indexed condition holds, plus the
// always-candidates), and returns it. A route it leaves out cannot match; a
// route it returns must still be checked with its Matcher. It does not
// allocate when dst has room (and the attributes looked up are strings,
// as CloudEvents context attributes are). A nil env gives the
// always-candidates.
func (ix *Index) Candidates(env *Env, dst []int) []int {
	start := len(dst)
	c := candidateLists{dst: dst}
	c.add(ix.always)
	if env != nil {
		for i := range ix.exact {
			e := &ix.exact[i]
			if v, ok := e.key.value(&env.v); ok {
				c.add(e.routes[v])
			}
		}
		for i := range ix.prefix {
			p := &ix.prefix[i]
			v, ok := p.key.value(&env.v)
			if !ok {
				continue
			}
			for _, n := range p.lens {
				if n > len(v) {
					break
				}
				c.add(p.routes[v[:n]])
			}
		}
	}
	dst = c.dst
	if c.sort {
		for _, l := range c.l[:c.k] {
			dst = append(dst, l...)
		}
		slices.Sort(dst[start:])
		return dst[:start+len(slices.Compact(dst[start:]))]
	}
	return merge(dst, c.l[:c.k])
}

// merge appends the union of the ascending lists ls to dst, ascending and
// without duplicates. The lists are few (one per indexed attribute whose
// value has routes, plus one per matching prefix), so it picks the least
// head of all of them each time.
func merge(dst []int, ls [][]int) []int {
	switch len(ls) {
	case 0:
		return dst
	case 1:
		return append(dst, ls[0]...)
	}
	start := len(dst)
	for {
		least := -1
		for j, l := range ls {
			if len(l) > 0 && (least < 0 || l[0] < ls[least][0]) {
				least = j
			}
		}
		if least < 0 {
			return dst
		}
		id := ls[least][0]
		ls[least] = ls[least][1:]
		if len(dst) == start || dst[len(dst)-1] != id {
			dst = append(dst, id)
		}
	}
}

// Stats reports how many routes are indexed by equality, by prefix, and
// not at all (always candidates), for logs.
func (ix *Index) Stats() (exact, prefix, always int) {
	return ix.nExact, ix.nPrefix, len(ix.always)
}
