package filters

import (
	"github.com/junctionhq/junction/config"
)

// Matcher decides whether an event matches.
type Matcher interface {
	// Match reports whether the event matches. A run-time failure (e.g.
	// comparing nil with a number because a field is missing) is returned
	// as an error; the caller counts it and treats the event as not
	// matching.
	Match(env *Env) (bool, error)
}

var (
	_ Matcher = (*exprFilter)(nil)
	_ Matcher = allOf(nil)
	_ Matcher = anyOf(nil)
	_ Matcher = (*notOf)(nil)
	_ Matcher = (*attrFilter)(nil)
)

// exprFilter is a compiled `filter:` expression.
type exprFilter struct {
	p     *program
	conds []cond // required conditions that an Index can look up
}

// CompileFilter compiles a route's `filter:` expression (expr-lang). It must
// yield a bool. Names that are not context attributes are extensions, nil
// when the event lacks them; member access is nil-safe, so `data.customer.id`
// is nil when data or customer is missing. A compile error is a
// config.Errors at the expression's position, with expr's message and caret
// snippet. An expression that is not set, or null, gives (nil, nil): no
// filter.
//
// Each evaluation has a cost budget (DefaultBudget, or WithBudget): an event
// that makes the filter exceed it is an error that wraps ErrBudget. An
// expression of more than 10,000 nodes is a compile error.
func CompileFilter(e config.Expr, opts ...Option) (Matcher, error) {
	if !e.IsSet() || e.Null {
		return nil, nil
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	p, err := compile(e.Src, true, o)
	if err != nil {
		return nil, compileError(e, "filter", err)
	}
	return &exprFilter{p: p, conds: exprConds(e.Src)}, nil
}

// Match implements Matcher.
func (f *exprFilter) Match(env *Env) (bool, error) {
	out, err := f.p.run(env)
	if err != nil {
		return false, &evalError{what: "filter", err: err}
	}
	b, _ := out.(bool)
	return b, nil
}

// All returns a Matcher that matches when every non-nil m matches, in order;
// nil when there is none.
func All(ms ...Matcher) Matcher {
	var out allOf
	for _, m := range ms {
		if m != nil {
			out = append(out, m)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

// allOf matches when every matcher matches.
type allOf []Matcher

func (a allOf) Match(env *Env) (bool, error) {
	for _, m := range a {
		ok, err := m.Match(env)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// anyOf matches when one matcher matches. An error of one matcher is
// returned only when no other matches.
type anyOf []Matcher

func (a anyOf) Match(env *Env) (bool, error) {
	var first error
	for _, m := range a {
		ok, err := m.Match(env)
		if ok {
			return true, nil
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return false, first
}

// notOf matches when its matcher does not.
type notOf struct{ m Matcher }

func (n *notOf) Match(env *Env) (bool, error) {
	ok, err := n.m.Match(env)
	if err != nil {
		return false, err
	}
	return !ok, nil
}
