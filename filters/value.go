package filters

import (
	"fmt"

	"github.com/junctionhq/junction/config"
)

// String is a compiled expression over an event whose result is used as a
// string: a sink's subject, routing key or message group id. Sinks compile
// it once when they are built and evaluate it per event.
type String struct {
	p   *program
	key string
}

// CompileString compiles e, found at the key path key of a plugin's config
// ("subject", "messageGroupId"), for use with String.Eval. Errors are
// config.Errors at the expression's position. Evaluations have a cost
// budget, as filters do (see CompileFilter).
func CompileString(key string, e config.Expr, opts ...Option) (*String, error) {
	p, err := compileKey(key, e, opts)
	if err != nil {
		return nil, err
	}
	return &String{p: p, key: key}, nil
}

// compileKey compiles the expression e found at key: config.Errors at its
// position.
func compileKey(key string, e config.Expr, opts []Option) (*program, error) {
	if !e.IsSet() || e.Null {
		return nil, config.Errors{{Pos: e.Pos, Msg: key + ": expected an expression"}}
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	p, err := compile(e.Src, false, o)
	if err != nil {
		return nil, compileError(e, key, err)
	}
	return p, nil
}

// Eval evaluates the expression against env. A nil result, or a result
// that is not a string, number or bool, is an error naming the key.
func (s *String) Eval(env *Env) (string, error) {
	v, err := s.p.run(env)
	if err != nil {
		return "", fmt.Errorf("evaluate %s: %w", s.key, err)
	}
	if v == nil {
		return "", fmt.Errorf("evaluate %s: the expression yielded nil", s.key)
	}
	out, err := toString(v)
	if err != nil {
		return "", fmt.Errorf("evaluate %s: %w", s.key, err)
	}
	return out, nil
}

// Value is a compiled expression over an event whose result is used as it
// is: a route's orderBy, deliverAt or priority.
type Value struct {
	p   *program
	key string
}

// CompileValue compiles e, found at key ("orderBy"), for Value.Eval.
// Errors are config.Errors at the expression's position.
func CompileValue(key string, e config.Expr, opts ...Option) (*Value, error) {
	p, err := compileKey(key, e, opts)
	if err != nil {
		return nil, err
	}
	return &Value{p: p, key: key}, nil
}

// Key names the expression's config key.
func (v *Value) Key() string { return v.key }

// Eval evaluates the expression against env.
func (v *Value) Eval(env *Env) (any, error) {
	out, err := v.p.run(env)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", v.key, err)
	}
	return out, nil
}

// ToString converts an expression's result to a string, as the expression
// keys of sinks do (a string, number, bool or time).
func ToString(val any) (string, error) { return toString(val) }
