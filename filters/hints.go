package filters

import (
	"fmt"
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/junctionhq/junction/config"
)

// knownNames are the top-level names every event has (or may have) besides
// its extensions: the context attributes and data.
func knownNames() []string {
	names := []string{"data"}
	for n := range contextAttrs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Hints returns advice on an expression that compiles but is probably not
// what its author meant, one line each:
//   - a name close to a context attribute (`typ`, `sorce`): any other name
//     is an extension attribute, nil when the event lacks it, so a typo
//     never fails, it just never matches;
//   - a whole expression that is a dotted name (`com.example.big`): it reads
//     an extension attribute, not the string; quote it or compare it.
//
// Hints never fail a config: validate prints them as warnings.
func Hints(e config.Expr) []string {
	src := e.Src
	if strings.TrimSpace(src) == "" {
		return nil
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil // Compile reports it
	}
	var hints []string
	if path, ok := dottedName(tree.Node); ok && strings.Contains(path, ".") {
		return []string{fmt.Sprintf("%s reads the extension attribute %q (nil when absent), not the string %q: quote it ('%q') or compare it (type == %q)",
			path, strings.SplitN(path, ".", 2)[0], path, path, path)}
	}
	known := knownNames()
	isKnown := map[string]bool{}
	for _, n := range known {
		isKnown[n] = true
	}
	seen := map[string]bool{}
	ast.Walk(&tree.Node, visitor(func(n ast.Node) {
		id, ok := n.(*ast.IdentifierNode)
		if !ok || isKnown[id.Value] || seen[id.Value] {
			return
		}
		seen[id.Value] = true
		if s := config.Suggest(id.Value, known); s != "" {
			hints = append(hints, fmt.Sprintf("unknown name %s (did you mean %s?): a name that is not a context attribute is an extension, nil when the event lacks it", id.Value, s))
		}
	}))
	return hints
}

// visitor adapts a function to ast.Visitor.
type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }

// dottedName returns a.b.c when n is only that: an identifier with member
// accesses by plain names, whose root is not a known name.
func dottedName(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		for _, k := range knownNames() {
			if k == n.Value {
				return "", false
			}
		}
		return n.Value, true
	case *ast.MemberNode:
		prop, ok := n.Property.(*ast.StringNode)
		if !ok || n.Optional {
			return "", false
		}
		base, ok := dottedName(n.Node)
		if !ok {
			return "", false
		}
		return base + "." + prop.Value, true
	}
	return "", false
}
