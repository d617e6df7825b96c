package filters

import (
	_ "embed"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
)

//go:embed README.md
var readme string

// codeBlocks returns the fenced blocks of README.md with their language.
func codeBlocks() (langs, blocks []string) {
	parts := strings.Split(readme, "```")
	for i := 1; i+1 < len(parts); i += 2 {
		lang, body, _ := strings.Cut(parts[i], "\n")
		langs = append(langs, strings.TrimSpace(lang))
		blocks = append(blocks, body)
	}
	return langs, blocks
}

// TestReadmeExamples compiles every example of README.md, so that the docs
// cannot drift from the code: YAML blocks with routes, filters or a
// transform, and the expression blocks (one filter a line, comments after
// #). Blocks of error output are checked against the real errors.
func TestReadmeExamples(t *testing.T) {
	langs, blocks := codeBlocks()
	ev := newEvent(t, withTime(time.Now().Add(-time.Minute)),
		withData("application/json", `{"amount":150,"orderId":"o-1","customerId":"c-7","customer":{"id":"c-7"},"createdAt":"2024-03-01T12:00:00Z","items":[{"sku":"a","qty":2}],"shippedAt":"2024-01-01","promisedAt":"2024-01-02"}`))
	env := NewEnv(ev)
	checked := 0
	for i, b := range blocks {
		switch {
		case langs[i] == "yaml":
			checked++
			checkYAMLBlock(t, b, env)
		case langs[i] == "" && strings.Contains(b, " | "):
			checked++
			checkErrorBlock(t, b)
		case langs[i] == "":
			for _, line := range strings.Split(b, "\n") {
				if j := strings.Index(line, " #"); j >= 0 {
					line = line[:j]
				}
				if line = strings.TrimSpace(line); line == "" {
					continue
				}
				checked++
				m, err := CompileFilter(config.Expr{Src: line})
				if err != nil {
					t.Errorf("README filter %q: %v", line, err)
					continue
				}
				if _, err := m.Match(env); err != nil {
					t.Errorf("README filter %q: %v", line, err)
				}
			}
		}
	}
	if checked < 8 {
		t.Fatalf("only %d README examples found", checked)
	}
}

func checkYAMLBlock(t *testing.T, b string, env *Env) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(b), &doc); err != nil {
		t.Fatalf("README YAML: %v", err)
	}
	for _, key := range []string{"routes.0.filters", "filters"} {
		if n := find(&doc, key); n != nil {
			if _, err := CompileDialects(n); err != nil {
				t.Errorf("README %s: %v", key, err)
			}
		}
	}
	for _, key := range []string{"routes.0.transform", "transform"} {
		if n := find(&doc, key); n != nil {
			var tr config.Transform
			if err := config.Decode(n, &tr); err != nil {
				t.Fatalf("README %s: %v", key, err)
			}
			ct, err := CompileTransform(&tr)
			if err != nil {
				t.Errorf("README %s: %v", key, err)
				continue
			}
			if _, err := ct.Apply(env); err != nil {
				t.Errorf("README %s: %v", key, err)
			}
		}
	}
	if n := find(&doc, "routes.0.filter"); n != nil {
		if _, err := CompileFilter(config.Expr{Src: n.Value}); err != nil {
			t.Errorf("README filter: %v", err)
		}
	}
}

// find returns the node at a dotted path (list items by number), nil when
// absent.
func find(n *yaml.Node, path string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, part := range strings.Split(path, ".") {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					next = n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(part); err == nil && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// checkErrorBlock compiles the expression shown in each error of a block of
// error output and compares the message.
func checkErrorBlock(t *testing.T, b string) {
	lines := strings.Split(strings.TrimRight(b, "\n"), "\n")
	for i := 0; i+2 < len(lines); i += 3 {
		head, src := lines[i], strings.TrimPrefix(lines[i+1], " | ")
		_, msg, ok := strings.Cut(head, ": filter: ")
		if !ok {
			t.Errorf("README error line %q has no filter: message", head)
			continue
		}
		_, err := CompileFilter(config.Expr{Src: src})
		want := msg + "\n" + lines[i+1] + "\n" + lines[i+2]
		if err == nil || !strings.HasSuffix(err.Error(), ": filter: "+want) {
			t.Errorf("README error for %q:\n%s\nreal error:\n%v", src, want, err)
		}
	}
}
