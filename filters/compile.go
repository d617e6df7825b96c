package filters

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/junctionhq/junction/config"
)

// Names of the functions the patcher puts in place of names that are not
// fields of vars. The leading $ keeps them apart from user functions.
const (
	fnData = "$data" // $data($env): the parsed payload
	fnExt  = "$ext"  // $ext($env, "name"): an extension
	fnGet  = "$get"  // $get($env, key): any top-level name, for $env.x and $env[x]
	// $member(base, key): base.key and base[key], nil when base is nil, the
	// key is missing or the index is out of range.
	fnMember = "$member"
)

var errNoEnv = errors.New("expression evaluated without an event")

func envArg(params []any) (*vars, error) {
	if len(params) == 0 {
		return nil, errNoEnv
	}
	switch v := params[0].(type) {
	case *vars:
		if v != nil {
			return v, nil
		}
	case *meter:
		if v != nil && v.vars != nil {
			return v.vars, nil
		}
	}
	return nil, errNoEnv
}

// baseOptions are the expr options shared by every expression; env is
// &vars{} or &meter{} (see compile).
func baseOptions(env any, p *patcher, c *coster, r *rootRecorder, metered bool) []expr.Option {
	opts := []expr.Option{
		expr.Env(env),
		expr.MaxNodes(maxNodes),
		expr.Function(fnData, func(params ...any) (any, error) {
			v, err := envArg(params)
			if err != nil {
				return nil, err
			}
			return v.getData(), nil
		}),
		expr.Function(fnExt, func(params ...any) (any, error) {
			v, err := envArg(params)
			if err != nil {
				return nil, err
			}
			if len(params) < 2 {
				return nil, nil
			}
			name, _ := params[1].(string)
			return v.ext(name), nil
		}),
		expr.Function(fnGet, func(params ...any) (any, error) {
			v, err := envArg(params)
			if err != nil {
				return nil, err
			}
			if len(params) < 2 {
				return nil, nil
			}
			name, ok := params[1].(string)
			if !ok {
				return nil, nil
			}
			return v.get(name), nil
		}),
		expr.Function(fnMember, func(params ...any) (any, error) {
			if len(params) < 2 {
				return nil, nil
			}
			return member(params[0], params[1]), nil
		}),
		expr.Function(fnCost, charge),
		expr.Patch(p),
	}
	if metered {
		opts = append(opts, expr.Patch(c))
	}
	return append(opts, expr.Patch(r))
}

// program is one compiled expression.
type program struct {
	prog *vm.Program
	// metered programs charge their costly operations (see coster) and
	// run against a meter; the others run against the vars alone.
	metered bool
	budget  int
}

// compile compiles src; asBool requires a bool result. The error is expr's
// message with its caret snippet. An expression with costly operations is
// compiled a second time, for a meter instead of the vars: the fields of
// the environment are reached by other paths.
func compile(src string, asBool bool, o options) (*program, error) {
	prog, metered, err := compileFor(src, asBool, &vars{}, true)
	if err != nil {
		return nil, err
	}
	if metered {
		// The coster's $cost calls hide the types of their operands from
		// the checker: compiled without it, a type error (`type + 1`) is
		// reported at load time, as it would be without a budget.
		if _, _, err := compileFor(src, asBool, &vars{}, false); err != nil {
			return nil, err
		}
		if prog, _, err = compileFor(src, asBool, &meter{}, true); err != nil {
			return nil, err
		}
	}
	return &program{prog: prog, metered: metered, budget: o.budget}, nil
}

// compileFor compiles src for the environment env, with the coster when
// metered, and reports whether the coster charged any operation.
func compileFor(src string, asBool bool, env any, metered bool) (*vm.Program, bool, error) {
	p := &patcher{made: map[*ast.CallNode]string{}}
	c := &coster{}
	r := &rootRecorder{}
	opts := baseOptions(env, p, c, r, metered)
	if asBool {
		opts = append(opts, expr.AsBool())
	} else {
		opts = append(opts, expr.AsAny())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, false, err
		}
		// expr reports a wrong result type without a position: point at the
		// root of the expression.
		return nil, false, located(src, r.root, err.Error())
	}
	if asBool && r.root != nil {
		if at, op := nonBool(r.root); at != nil {
			return nil, false, located(src, at, fmt.Sprintf("expected bool, but %s does not yield one", op))
		}
	}
	return prog, c.wrapped > 0, nil
}

func located(src string, n ast.Node, msg string) error {
	fe := &file.Error{Message: msg}
	if n != nil {
		fe.Location = n.Location()
	}
	return fe.Bind(file.NewSource(src))
}

// nonBool finds the node deciding the result of n when it can never be a
// bool whatever its operands are, and names its operator; nil when the
// result may be a bool. expr's checker catches results of known types; this
// catches `data.amount + 1`, whose operand types are only known at run time.
func nonBool(n ast.Node) (ast.Node, string) {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "+", "-", "*", "/", "%", "**", "^", "..":
			return n, fmt.Sprintf("%q", n.Operator)
		case "??":
			if l, op := nonBool(n.Left); l != nil {
				if r, _ := nonBool(n.Right); r != nil {
					return l, op
				}
			}
		}
	case *ast.UnaryNode:
		if n.Operator == "-" || n.Operator == "+" {
			return n, fmt.Sprintf("unary %q", n.Operator)
		}
	case *ast.ConditionalNode:
		if x, op := nonBool(n.Exp1); x != nil {
			return x, op
		}
		return nonBool(n.Exp2)
	case *ast.VariableDeclaratorNode:
		return nonBool(n.Expr)
	case *ast.SequenceNode:
		if len(n.Nodes) > 0 {
			return nonBool(n.Nodes[len(n.Nodes)-1])
		}
	case *ast.SliceNode:
		return n, "a slice"
	}
	return nil, ""
}

// compileError is a config error at the expression's position: what names
// the key ("filter", "transform.data"...), err is expr's message.
func compileError(e config.Expr, what string, err error) error {
	return config.Errors{{Pos: e.Pos, Msg: what + ": " + err.Error()}}
}

// rootRecorder remembers the last node it visits: ast.Walk visits children
// first, so that is the root of the (patched) tree.
type rootRecorder struct {
	root ast.Node
}

func (r *rootRecorder) Visit(node *ast.Node) { r.root = *node }

// patcher rewrites the tree so that it runs against vars:
//
//   - a name that is not an attribute field of vars (nor a let variable)
//     becomes $ext($env, "name"), and `data` becomes $data($env), so that
//     absent extensions are nil and data is parsed only when read;
//   - $env.x and $env[x] become $get($env, x);
//   - every member access a.b and a[k] becomes $member(a, k), which yields
//     nil instead of an error when a is nil, the field is missing or the
//     index is out of range; a method call (time.Year()) is made optional.
//
// ast.Walk visits children before their parent, so names are rewritten
// first and restored where the parent shows they are not variables: the
// callee of a call (a function name) and the uses of a let variable.
//
// For a custom environment (CompileWith: names is set), names are recorded
// and left alone (the environment is a map, an absent name nil), and
// $env.x is a member access like any other; the rest is the same.
type patcher struct {
	made map[*ast.CallNode]string // calls standing for a name
	// names records the top-level names read, for a custom environment;
	// nil for an event's.
	names map[string]bool
	// meterAt is the first use of meterName in a custom environment's
	// expression, which may not name it.
	meterAt ast.Node
}

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if p.names != nil {
			p.names[n.Value] = true
			if n.Value == meterName && p.meterAt == nil {
				p.meterAt = n
			}
			return
		}
		if contextAttrs[n.Value] || n.Value == "$env" {
			return
		}
		env := &ast.IdentifierNode{Value: "$env"}
		env.SetLocation(n.Location())
		var call *ast.CallNode
		if n.Value == "data" {
			call = &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnData}, Arguments: []ast.Node{env}}
		} else {
			name := &ast.StringNode{Value: n.Value}
			name.SetLocation(n.Location())
			call = &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnExt}, Arguments: []ast.Node{env, name}}
		}
		call.Callee.SetLocation(n.Location())
		p.made[call] = n.Value
		ast.Patch(node, call)
	case *ast.CallNode:
		p.restore(&n.Callee, "")
		if m, ok := n.Callee.(*ast.MemberNode); ok && m.Method {
			ast.Patch(node, &ast.ChainNode{Node: n})
		}
	case *ast.VariableDeclaratorNode:
		ast.Walk(&n.Expr, restorer{p: p, name: n.Name})
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "$env" && p.names == nil {
			p.call(node, fnGet, n.Node, n.Property)
			return
		}
		if n.Method {
			// A method call (time.Year()): expr fetches the method; the
			// call is put in a chain (see CallNode) so that a nil
			// receiver gives nil.
			n.Optional = true
			if c, ok := n.Node.(*ast.ChainNode); ok {
				n.Node = c.Node
			}
			return
		}
		p.call(node, fnMember, n.Node, n.Property)
	case *ast.ChainNode:
		// a?.b: every access is nil-safe already; keep a chain only
		// around a method call, and only one.
		if c, ok := n.Node.(*ast.ChainNode); ok {
			n.Node = c.Node
		}
		if c, ok := n.Node.(*ast.CallNode); ok {
			if m, ok := c.Callee.(*ast.MemberNode); !ok || !m.Method {
				ast.Patch(node, c)
			}
		}
	}
}

// call replaces *node with a call of fn.
func (p *patcher) call(node *ast.Node, fn string, args ...ast.Node) {
	c := &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: args}
	c.Callee.SetLocation((*node).Location())
	ast.Patch(node, c)
}

// restore turns the call at *slot back into the name it stands for, when
// it is one of ours and stands for name (any name when name is "").
func (p *patcher) restore(slot *ast.Node, name string) {
	c, ok := (*slot).(*ast.CallNode)
	if !ok {
		return
	}
	orig, ok := p.made[c]
	if !ok || name != "" && orig != name {
		return
	}
	delete(p.made, c)
	ast.Patch(slot, &ast.IdentifierNode{Value: orig})
}

// restorer restores the uses of one let variable in its scope. Uses inside
// a nested let of the same name were restored when that let was visited.
type restorer struct {
	p    *patcher
	name string
}

func (r restorer) Visit(node *ast.Node) { r.p.restore(node, r.name) }

// machine is a virtual machine and the meter of its evaluation.
type machine struct {
	vm    vm.VM
	meter meter
}

// machines holds machines for reuse across evaluations.
var machines = sync.Pool{New: func() any { return new(machine) }}

// run evaluates the program against env, within its budget: the costs
// that the program charges, and expr's memory budget, which is set to the
// same number of units.
func (p *program) run(env *Env) (any, error) {
	if env == nil {
		return nil, errNoEnv
	}
	m := machines.Get().(*machine)
	m.vm.MemoryBudget = uint(p.budget)
	var out any
	var err error
	if p.metered {
		m.meter = meter{vars: &env.v, budget: p.budget}
		out, err = m.vm.Run(p.prog, &m.meter)
		m.meter.vars = nil
	} else {
		out, err = m.vm.Run(p.prog, &env.v)
	}
	// Drop references to this event's values before pooling.
	clear(m.vm.Stack[:cap(m.vm.Stack)])
	clear(m.vm.Variables)
	machines.Put(m)
	if err != nil {
		return out, budgetError(err, p.budget)
	}
	return out, nil
}

// evalError is a run-time failure of an expression, on one line.
type evalError struct {
	what string
	err  error
}

func (e *evalError) Error() string {
	msg := e.err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	const maxLen = 300
	if len(msg) > maxLen {
		msg = msg[:maxLen] + "..."
	}
	return "evaluate " + e.what + ": " + msg
}

func (e *evalError) Unwrap() error { return e.err }
