package filters

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
)

// dialects are the keys of one item of `filters:`.
var dialects = []string{"exact", "prefix", "suffix", "all", "any", "not"}

// attrNameRE is a CloudEvents attribute name as sdk-go stores it.
var attrNameRE = regexp.MustCompile(`^[a-z0-9]+$`)

// CompileDialects compiles the CloudEvents Subscriptions API filter dialects
// under a route's `filters:` key: a list whose items are each one of
//
//	{exact: {attr: value, ...}}, {prefix: {...}}, {suffix: {...}},
//	{all: [filter, ...]}, {any: [filter, ...]}, {not: filter}
//
// The list matches when all of its items match; a map of several attributes
// matches when each of them does. exact, prefix and suffix compare the
// attribute's canonical string form (time as RFC 3339, booleans as
// true/false, integers in decimal) case-sensitively; a missing attribute
// never matches. `sql` is refused. Errors are config.Errors at their YAML
// positions. A null or empty node gives (nil, nil).
func CompileDialects(n *yaml.Node) (Matcher, error) {
	n = resolve(n)
	if n == nil || n.Kind == 0 || isNull(n) {
		return nil, nil
	}
	c := dialectCompiler{}
	if n.Kind != yaml.SequenceNode {
		c.errorf(n, "filters", "expected a list of filters such as - exact: {type: com.example.created}, got %s", describe(n))
		return nil, c.errs.Err()
	}
	var ms allOf
	for i, item := range n.Content {
		if m := c.filter(item, fmt.Sprintf("filters[%d]", i)); m != nil {
			ms = append(ms, m)
		}
	}
	if err := c.errs.Err(); err != nil {
		return nil, err
	}
	return All(ms...), nil
}

type dialectCompiler struct {
	errs config.Errors
}

func (c *dialectCompiler) errorf(n *yaml.Node, path, format string, args ...any) {
	c.errs.Addf(config.PosOf(n), "", "%s: %s", path, fmt.Sprintf(format, args...))
}

// filter compiles one filter: a mapping with one dialect key.
func (c *dialectCompiler) filter(n *yaml.Node, path string) Matcher {
	n = resolve(n)
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		c.errorf(n, path, "expected a mapping with one of %s, got %s", strings.Join(dialects, ", "), describe(n))
		return nil
	}
	if len(n.Content) > 2 {
		c.errorf(n.Content[2], path, "one dialect per filter: %q and %q are in the same item (use all: [...] to combine them)", n.Content[0].Value, n.Content[2].Value)
		return nil
	}
	k, v := n.Content[0], resolve(n.Content[1])
	switch k.Value {
	case "exact", "prefix", "suffix":
		return c.attrs(k.Value, v, path+"."+k.Value)
	case "all", "any":
		p := path + "." + k.Value
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			c.errorf(v, p, "expected a non-empty list of filters, got %s", describe(v))
			return nil
		}
		var ms []Matcher
		for i, item := range v.Content {
			if m := c.filter(item, fmt.Sprintf("%s[%d]", p, i)); m != nil {
				ms = append(ms, m)
			}
		}
		if len(ms) != len(v.Content) {
			return nil
		}
		if len(ms) == 1 {
			return ms[0]
		}
		if k.Value == "all" {
			return allOf(ms)
		}
		return anyOf(ms)
	case "not":
		m := c.filter(v, path+".not")
		if m == nil {
			return nil
		}
		return &notOf{m: m}
	case "sql":
		c.errorf(k, path, "the sql dialect is not supported; use filter: with an expression instead")
		return nil
	}
	msg := fmt.Sprintf("unknown dialect %q (use %s)", k.Value, strings.Join(dialects, ", "))
	if s := config.Suggest(k.Value, dialects); s != "" {
		msg = fmt.Sprintf("unknown dialect %q (did you mean %q?)", k.Value, s)
	}
	c.errorf(k, path, "%s", msg)
	return nil
}

// attrs compiles {attr: value, ...} of exact, prefix or suffix.
func (c *dialectCompiler) attrs(op string, v *yaml.Node, path string) Matcher {
	if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
		c.errorf(v, path, "expected a mapping of attribute names to values, such as {type: com.example.created}, got %s", describe(v))
		return nil
	}
	var ms []Matcher
	ok := true
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		p := path + "." + k.Value
		switch {
		case k.Value == "data":
			c.errorf(k, p, "data is not an attribute; use filter: with an expression to test data")
			ok = false
			continue
		case !attrNameRE.MatchString(k.Value):
			c.errorf(k, p, "invalid attribute name %q (CloudEvents attribute names are lower-case letters a-z and digits 0-9)", k.Value)
			ok = false
			continue
		case seen[k.Value]:
			c.errorf(k, p, "attribute appears twice")
			ok = false
			continue
		case val.Kind != yaml.ScalarNode || isNull(val):
			c.errorf(val, p, "expected a string, got %s", describe(val))
			ok = false
			continue
		}
		seen[k.Value] = true
		ms = append(ms, &attrFilter{op: op, attr: k.Value, value: val.Value})
	}
	if !ok {
		return nil
	}
	if len(ms) == 1 {
		return ms[0]
	}
	return allOf(ms)
}

// attrFilter is one attribute of exact, prefix or suffix.
type attrFilter struct {
	op    string // exact | prefix | suffix
	attr  string
	value string
}

func (f *attrFilter) Match(env *Env) (bool, error) {
	if env == nil {
		return false, errNoEnv
	}
	s, ok := env.v.attrString(f.attr)
	if !ok {
		return false, nil
	}
	switch f.op {
	case "exact":
		return s == f.value, nil
	case "prefix":
		return strings.HasPrefix(s, f.value), nil
	default:
		return strings.HasSuffix(s, f.value), nil
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			return "an empty mapping"
		}
		return "a mapping"
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return "an empty list"
		}
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}
