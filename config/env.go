package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// LookupEnv looks up an environment variable; os.LookupEnv in production.
type LookupEnv func(name string) (string, bool)

// ExpandEnv replaces ${NAME} and ${NAME:-default} in every scalar below n,
// in place. An unset NAME without a default is an error at the scalar's
// position; "$${" stands for a literal "${".
func ExpandEnv(n *yaml.Node, lookup LookupEnv) Errors {
	var errs Errors
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode {
			if !strings.Contains(n.Value, "${") {
				return
			}
			v, err := expandString(n.Value, lookup)
			if err != nil {
				errs.Addf(PosOf(n), "", "%v", err)
				return
			}
			n.Value = v
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return errs
}

func expandString(s string, lookup LookupEnv) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			// "$${" is a literal "${".
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		ref := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid environment variable name %q in ${%s}", name, ref)
		}
		v, ok := lookup(name)
		switch {
		case ok:
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)
		}
		s = s[i+end+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
