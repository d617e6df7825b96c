package filters

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
)

// DefaultBudget is the cost budget of one evaluation of an expression, in
// units. A unit is one element of a list (or entry of a map) that a loop
// builtin (all, any, filter, map, count, sum, reduce, sortBy...) or `in`
// visits, one byte that a regular expression (`matches`), split or fromJSON
// scans, or eight bytes that another string operation reads (contains,
// startsWith, upper, replace, +...). A loop is charged for every element
// when it starts, even if it stops early; a loop inside a loop is charged
// again for each element of the outer one. Loading a time zone costs 1,000
// units when its name is written in the expression and 20,000 when it comes
// from the event. The same number of units bounds the elements that
// expr-lang's own memory budget lets an evaluation allocate (map, filter,
// ranges, sort...).
//
// Ordinary events use a few hundred units; a hostile one (a list of
// 600,000 items, a regular expression over megabytes of text, nested loops)
// fails in tens of milliseconds at most instead of running for seconds.
const DefaultBudget = 500_000

// maxNodes bounds the size of an expression at compile time: the number of
// nodes of its syntax tree (expr-lang's default, made explicit).
const maxNodes = 10_000

// ErrBudget is the error (wrapped, see errors.Is) of an evaluation that
// exceeded its cost budget (see DefaultBudget). The evaluation stops when
// the budget is spent: a filter fails (the event does not match), a
// transform or a sink's expression fails like any other run-time error.
var ErrBudget = errors.New("expression cost budget exceeded")

// Option configures the compilation of expressions (CompileFilter,
// CompileTransform, CompileString, CompileWith).
type Option func(*options) error

type options struct {
	budget int // units an evaluation may spend
}

// WithBudget sets the cost budget of each evaluation to n units, n > 0.
// The default is DefaultBudget.
func WithBudget(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("cost budget %d: must be positive", n)
		}
		o.budget = n
		return nil
	}
}

func newOptions(opts []Option) (options, error) {
	o := options{budget: DefaultBudget}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// meter is the environment of an expression that charges costs: the
// event's vars (their fields are the expression's attributes) and the
// units spent so far by this evaluation. Each evaluation has its own meter
// (see machine), so concurrent evaluations against one Env do not share a
// count. Expressions without costly operations run against the vars alone.
type meter struct {
	*vars
	used, budget int
}

// fnCost is the function the coster wraps around costly operands:
// $cost($env, x, kind, extra...) charges the size of x (see costKind) and
// returns x, or fails with ErrBudget past the budget.
const fnCost = "$cost"

// costKind says how $cost sizes its operand.
type costKind int

const (
	// costItems: one unit an element of a list or map, or a byte of a
	// string (loops, matches, split, fromJSON).
	costItems costKind = iota
	// costText: one unit an element of a list or map, or eight bytes of a
	// string (string functions, +).
	costText
	// costString: eight bytes of a string a unit; lists and maps are free
	// (len, int, float, duration, date).
	costString
	// costIn: one unit an element of a list; a map lookup is free (`in`).
	costIn
	// costDeep: costText of every element and entry, recursively (==,
	// toJSON, string, join, flatten, max...).
	costDeep
	// costRepeat: repeat(s, n) costs the costText of its result; the
	// count is the extra argument.
	costRepeat
	// costReplace: replace(s, old, new) costs the costText of s and of the
	// largest result; old and new are the extra arguments.
	costReplace
	// costZone, costZoneLiteral: loading a time zone whose name comes from
	// the event (an unknown name takes milliseconds to refuse), or is
	// written in the expression.
	costZone
	costZoneLiteral
)

const (
	textBytesPerUnit = 8
	zoneUnits        = 20_000
	zoneLiteralUnits = 1_000
)

// charge implements $cost.
func charge(params ...any) (any, error) {
	if len(params) < 3 {
		return nil, errNoEnv
	}
	var m *meter
	switch env := params[0].(type) {
	case *meter:
		m = env
	case map[string]any: // a Program's vars (see Program.Run)
		m, _ = env[meterName].(*meter)
	}
	if m == nil {
		return nil, errNoEnv
	}
	kind, _ := params[2].(int)
	m.used += size(costKind(kind), params[1], params[3:], m.budget-m.used)
	if m.used > m.budget {
		return nil, fmt.Errorf("%w (%d units)", ErrBudget, m.budget)
	}
	return params[1], nil
}

// size returns the units that x costs as kind says; it stops counting
// past limit (the units left).
func size(kind costKind, x any, extra []any, limit int) int {
	switch kind {
	case costItems:
		if s, ok := x.(string); ok {
			return len(s)
		}
		return length(x)
	case costText:
		if s, ok := x.(string); ok {
			return textUnits(len(s))
		}
		return length(x)
	case costString:
		if s, ok := x.(string); ok {
			return textUnits(len(s))
		}
		return 0
	case costIn:
		switch x := x.(type) {
		case nil, string, map[string]any:
			return 0
		case []any:
			return len(x)
		}
		if v := reflect.ValueOf(x); v.Kind() == reflect.Slice || v.Kind() == reflect.Array {
			return v.Len()
		}
		return 0
	case costDeep:
		return deepUnits(x, limit)
	case costRepeat:
		s, _ := x.(string)
		if len(extra) == 0 || len(s) == 0 {
			return 0
		}
		n, ok := repeatCount(extra[0])
		if !ok || n <= 0 {
			return 0
		}
		if n > (limit+1)*textBytesPerUnit/len(s)+1 {
			return limit + 1
		}
		return textUnits(len(s) * n)
	case costReplace:
		s, _ := x.(string)
		if len(extra) < 2 {
			return textUnits(len(s))
		}
		old, _ := extra[0].(string)
		repl, _ := extra[1].(string)
		n := len(s) + 1 // replacements of "": one per rune, and one at the end
		if len(old) > 0 {
			n = len(s) / len(old)
		}
		if len(repl) > 0 && n > (limit+1)*textBytesPerUnit/len(repl)+1 {
			return limit + 1
		}
		return textUnits(2*len(s) + n*len(repl))
	case costZone:
		return zoneUnits
	case costZoneLiteral:
		return zoneLiteralUnits
	}
	return 0
}

func textUnits(n int) int { return (n + textBytesPerUnit - 1) / textBytesPerUnit }

// length is the number of elements of a list or map (the costText of a
// string of another type), 0 for other values.
func length(x any) int {
	switch x := x.(type) {
	case nil, bool, float64, int:
		return 0
	case []any:
		return len(x)
	case map[string]any:
		return len(x)
	}
	switch v := reflect.ValueOf(x); v.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return v.Len()
	case reflect.String:
		return textUnits(v.Len())
	}
	return 0
}

// repeatCount converts repeat's count to an int.
func repeatCount(x any) (int, bool) {
	switch n := x.(type) {
	case int:
		return n, true
	case float64:
		if n > 1<<40 {
			return 1 << 40, true
		}
		return int(n), true
	}
	v := reflect.ValueOf(x)
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(v.Int()), true
	}
	return 0, false
}

// deepUnits is the costText of x and of everything it holds, counted up
// to limit+1.
func deepUnits(x any, limit int) int {
	n := 0
	var walk func(x any)
	walk = func(x any) {
		if n > limit {
			return
		}
		switch x := x.(type) {
		case nil, bool, float64, int, time.Time:
			return
		case string:
			n += textUnits(len(x))
		case []any:
			n += len(x)
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			n += len(x)
			for k, e := range x {
				n += textUnits(len(k))
				walk(e)
			}
		default:
			n += length(x)
		}
	}
	walk(x)
	return n
}

// budgetError makes expr-lang's own memory budget failure an ErrBudget.
func budgetError(err error, budget int) error {
	var fe *file.Error
	if errors.As(err, &fe) && fe.Message == "memory budget exceeded" && !errors.Is(err, ErrBudget) {
		fe.Message = fmt.Sprintf("%v (%d units of memory)", ErrBudget, budget)
		fe.Wrap(ErrBudget)
	}
	return err
}

// loopBuiltins are the builtins that evaluate a predicate for every
// element of their first argument.
var loopBuiltins = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true,
	"count": true, "sum": true, "find": true, "findIndex": true, "findLast": true,
	"findLastIndex": true, "groupBy": true, "sortBy": true, "reduce": true,
}

// builtinCost is the cost kind of the arguments of the builtins that are
// not loops; builtins absent from it take constant time and are free.
var builtinCost = map[string]costKind{
	"split": costItems, "splitAfter": costItems, "fromJSON": costItems,

	"trim": costText, "trimPrefix": costText, "trimSuffix": costText,
	"upper": costText, "lower": costText, "indexOf": costText, "lastIndexOf": costText,
	"hasPrefix": costText, "hasSuffix": costText, "toBase64": costText, "fromBase64": costText,
	"take": costText, "keys": costText, "values": costText, "toPairs": costText,
	"fromPairs": costText, "reverse": costText, "uniq": costText, "concat": costText,
	"sort": costText,

	"len": costString, "int": costString, "float": costString, "duration": costString,
	"date": costString,

	"toJSON": costDeep, "string": costDeep, "join": costDeep, "flatten": costDeep,
	"max": costDeep, "min": costDeep, "mean": costDeep, "median": costDeep,

	"repeat": costRepeat, "replace": costReplace, "timezone": costZone,
}

// coster is the compile-time patch that makes evaluations pay for their
// costly operations: it wraps $cost($env, x, kind) around the collection of
// every loop builtin, the operands of `matches`, `contains`, `startsWith`,
// `endsWith`, `in` and `+`, the first operand of a comparison of two values
// that are not literals, and the arguments of the builtins of builtinCost.
// Literals (and lists and maps of literals) and values of a number or bool
// type cost nothing and are not wrapped. It runs after the patcher, so
// names are already calls on $env.
type coster struct {
	wrapped int // $cost calls made
}

func (c *coster) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == fnCost {
			c.wrapped++ // written in the source: it needs a meter too
		}
	case *ast.BuiltinNode:
		if len(n.Arguments) == 0 {
			return
		}
		if loopBuiltins[n.Name] {
			c.wrap(&n.Arguments[0], costItems, n)
			return
		}
		kind, ok := builtinCost[n.Name]
		if !ok {
			return
		}
		switch kind {
		case costRepeat, costReplace:
			// The size of the result depends on every argument: the
			// charge reads the others too (evaluating them twice, which
			// is cheap), unless all are literals.
			if len(n.Arguments) < 2 || allFree(n.Arguments) {
				return
			}
			c.call(&n.Arguments[0], kind, n, n.Arguments[1:]...)
		case costZone:
			c.zone(&n.Arguments[0], n)
		default:
			if n.Name == "hasPrefix" || n.Name == "hasSuffix" {
				if len(n.Arguments) == 2 {
					c.pair(&n.Arguments[0], &n.Arguments[1], kind, n)
				}
				return
			}
			for i := range n.Arguments {
				if n.Name == "date" && i == 2 {
					c.zone(&n.Arguments[i], n)
					continue
				}
				c.wrap(&n.Arguments[i], kind, n)
			}
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "matches":
			c.wrap(&n.Left, costItems, n)
			c.wrap(&n.Right, costItems, n)
		case "contains", "+":
			c.wrap(&n.Left, costText, n)
			c.wrap(&n.Right, costText, n)
		case "startsWith", "endsWith":
			c.pair(&n.Left, &n.Right, costText, n)
		case "in":
			if r, ok := n.Right.(*ast.BinaryNode); ok && r.Operator == ".." {
				return // a range check, or a range charged by expr's memory budget
			}
			c.wrap(&n.Right, costIn, n)
		case "==", "!=", "<", ">", "<=", ">=":
			c.pair(&n.Left, &n.Right, costDeep, n)
		}
	}
}

// pair charges an operation that reads no more of one operand than of the
// other (a comparison, a prefix test): nothing when one is free, else the
// size of the first, which bounds the work.
func (c *coster) pair(a, b *ast.Node, kind costKind, at ast.Node) {
	if free(*a) || free(*b) {
		return
	}
	c.call(a, kind, at)
}

// wrap replaces *slot with $cost($env, *slot, kind, extra...) unless it
// costs nothing.
func (c *coster) wrap(slot *ast.Node, kind costKind, at ast.Node, extra ...ast.Node) {
	if free(*slot) {
		return
	}
	c.call(slot, kind, at, extra...)
}

// zone charges a time zone load: every call pays, a literal name less.
func (c *coster) zone(slot *ast.Node, at ast.Node) {
	if literal(*slot) {
		c.call(slot, costZoneLiteral, at)
		return
	}
	c.call(slot, costZone, at)
}

func (c *coster) call(slot *ast.Node, kind costKind, at ast.Node, extra ...ast.Node) {
	env := &ast.IdentifierNode{Value: "$env"}
	k := &ast.IntegerNode{Value: int(kind)}
	callee := &ast.IdentifierNode{Value: fnCost}
	for _, n := range []ast.Node{env, k, callee} {
		n.SetLocation(at.Location())
	}
	args := append([]ast.Node{env, *slot, k}, extra...)
	call := &ast.CallNode{Callee: callee, Arguments: args}
	call.SetLocation(at.Location())
	*slot = call
	c.wrapped++
}

// free reports whether n costs nothing to read or scan: a literal, or a
// value whose type is known to be a number, bool, time or duration.
func free(n ast.Node) bool {
	if literal(n) {
		return true
	}
	t := n.Type()
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return t == reflect.TypeOf(time.Time{})
}

func allFree(ns []ast.Node) bool {
	for _, n := range ns {
		if !free(n) {
			return false
		}
	}
	return true
}

// literal reports whether n is a literal, or a list or map of literals.
func literal(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
		return true
	case *ast.ArrayNode:
		for _, e := range n.Nodes {
			if !literal(e) {
				return false
			}
		}
		return true
	case *ast.MapNode:
		for _, p := range n.Pairs {
			pair, ok := p.(*ast.PairNode)
			if !ok || !literal(pair.Key) || !literal(pair.Value) {
				return false
			}
		}
		return true
	}
	return false
}
