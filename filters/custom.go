package filters

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
)

// meterName is the name under which Program.Run puts the meter of a
// metered evaluation into its vars: $cost($env, ...) finds it there.
const meterName = "$meter"

// Program is an expression compiled by CompileWith for an environment of
// named values other than an event's (the webhook source's request:
// headers, body, query...). It has the same patcher (nil-safe member access
// and method calls), cost budget and pooled virtual machines (cleared before
// reuse) as the expressions over events. A Program is safe for concurrent
// use.
type Program struct {
	p     *program
	names []string
}

// CompileWith compiles src for a custom environment: env gives the type of
// each top-level name, whose values Run takes from a map. A name that env
// does not list is nil, as is a missing field or an index out of range
// (member access is nil-safe, as in CompileFilter, and a method call on nil
// is nil: body.when.Year()). Names in env must not
// start with "$". The error is expr's, with its caret snippet.
//
// Each evaluation has a cost budget (DefaultBudget, or WithBudget): an
// evaluation that exceeds it is an error that wraps ErrBudget.
func CompileWith(src string, env types.Map, opts ...Option) (*Program, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	for name := range env {
		if strings.HasPrefix(name, "$") {
			return nil, fmt.Errorf("environment name %q: must not start with $", name)
		}
	}
	// Compiled once without the coster, whose $cost calls hide the types
	// of their operands from the checker: a type error (`method + 1`) is
	// reported at load time, as it would be without a budget.
	if _, _, _, err := compileCustom(src, env, false); err != nil {
		return nil, err
	}
	prog, p, c, err := compileCustom(src, env, true)
	if err != nil {
		return nil, err
	}
	if p.names[meterName] {
		return nil, located(src, p.meterAt, "unknown name "+meterName)
	}
	names := make([]string, 0, len(p.names))
	for n := range p.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return &Program{p: &program{prog: prog, metered: c.wrapped > 0, budget: o.budget}, names: names}, nil
}

// CompileExprWith is CompileWith for an expression of the config, whose
// error is a *config.Error at the expression's position, named by key:
// expr's message and caret snippet, at the column of the error itself when
// the expression is a one-line plain or simply quoted YAML scalar.
func CompileExprWith(key string, e config.Expr, env types.Map, opts ...Option) (*Program, error) {
	p, err := CompileWith(e.Src, env, opts...)
	if err != nil {
		return nil, exprError(e, key, err)
	}
	return p, nil
}

// exprError places a compile error of e at its position in the YAML file,
// with expr's message and caret snippet.
func exprError(e config.Expr, key string, err error) error {
	pos := e.Pos
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message + fe.Snippet
		if fe.Line == 1 && !strings.Contains(e.Src, "\n") && e.Node != nil {
			switch e.Node.Style {
			case 0:
				pos.Col += fe.Column
			case yaml.SingleQuotedStyle:
				if !strings.Contains(e.Src, "'") {
					pos.Col += fe.Column + 1
				}
			case yaml.DoubleQuotedStyle:
				if !strings.ContainsAny(e.Src, "\"\\") {
					pos.Col += fe.Column + 1
				}
			}
		}
	}
	return &config.Error{Pos: pos, Msg: key + ": " + msg}
}

// compileCustom compiles src for env, with the coster when metered.
func compileCustom(src string, env types.Map, metered bool) (*vm.Program, *patcher, *coster, error) {
	p := &patcher{made: map[*ast.CallNode]string{}, names: map[string]bool{}}
	c := &coster{}
	r := &rootRecorder{}
	opts := []expr.Option{
		expr.Env(env),
		expr.AllowUndefinedVariables(), // after Env, which sets strictness
		expr.MaxNodes(maxNodes),
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
	opts = append(opts, expr.Patch(r))
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, located(src, r.root, err.Error())
	}
	return prog, p, c, nil
}

// Names returns the top-level names the expression reads, sorted; "$env"
// stands for the whole environment. Names of let variables and functions
// may be among them.
func (p *Program) Names() []string { return p.names }

// Run evaluates the program against vars, within its cost budget. A
// metered evaluation adds the name "$meter" to vars while it runs and
// removes it before returning, so vars must not be shared with a
// concurrent Run.
func (p *Program) Run(vars map[string]any) (any, error) {
	if vars == nil && p.p.metered {
		vars = map[string]any{}
	}
	m := machines.Get().(*machine)
	m.vm.MemoryBudget = uint(p.p.budget)
	var out any
	var err error
	if p.p.metered {
		m.meter = meter{budget: p.p.budget}
		vars[meterName] = &m.meter
		out, err = m.vm.Run(p.p.prog, vars)
		delete(vars, meterName)
	} else {
		out, err = m.vm.Run(p.p.prog, vars)
	}
	clear(m.vm.Stack[:cap(m.vm.Stack)])
	clear(m.vm.Variables)
	machines.Put(m)
	if err != nil {
		return out, budgetError(err, p.p.budget)
	}
	return out, nil
}
