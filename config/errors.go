package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is a position in a config file. Line and Col start at 1; a zero Pos
// means "somewhere in the file".
type Pos struct {
	Line, Col int
}

// PosOf returns the position of a YAML node.
func PosOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

// Error is one problem in a config file, at a position.
type Error struct {
	File string
	Pos  Pos
	// Where names the part of the config, e.g. `sink "billing"`; may be empty.
	Where string
	Msg   string
	// Warning marks a problem that does not stop the config from running:
	// it prints as "FILE:LINE:COL: warning: ...".
	Warning bool
}

func (e *Error) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "config"
	}
	line, col := e.Pos.Line, e.Pos.Col
	if line == 0 {
		line, col = 1, 1
	}
	fmt.Fprintf(&b, "%s:%d:%d: ", file, line, col)
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of config problems. Its Error method prints one problem a
// line, ordered by position.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns nil when es is empty, else es sorted by position.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return es
}

// Addf appends a problem at pos.
func (es *Errors) Addf(pos Pos, where, format string, args ...any) {
	*es = append(*es, &Error{Pos: pos, Where: where, Msg: fmt.Sprintf(format, args...)})
}

// Warnf appends a warning at pos.
func (es *Errors) Warnf(pos Pos, where, format string, args ...any) {
	*es = append(*es, &Error{Pos: pos, Where: where, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// Add appends err found while reading the part of the config rooted at node.
// Config errors keep their own positions (filling in where), field errors are
// placed at their key under node, and any other error is placed at node.
func (es *Errors) Add(node *yaml.Node, where string, err error) {
	if err == nil {
		return
	}
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		if _, isList := err.(Errors); !isList {
			for _, e := range multi.Unwrap() {
				es.Add(node, where, e)
			}
			return
		}
	}
	var list Errors
	if errors.As(err, &list) {
		for _, e := range list {
			if e.Where == "" {
				e.Where = where
			}
			*es = append(*es, e)
		}
		return
	}
	var ce *Error
	if errors.As(err, &ce) {
		if ce.Where == "" {
			ce.Where = where
		}
		*es = append(*es, ce)
		return
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		at := Locate(node, fe.Path)
		msg := fe.Msg
		if fe.Path != "" {
			msg = fe.Path + ": " + msg
		}
		*es = append(*es, &Error{Pos: PosOf(at), Where: where, Msg: msg})
		return
	}
	*es = append(*es, &Error{Pos: PosOf(node), Where: where, Msg: err.Error()})
}

// SetFile sets the file name of every error that has none.
func (es Errors) SetFile(file string) {
	for _, e := range es {
		if e.File == "" {
			e.File = file
		}
	}
}

// FieldError is a problem with one key of a plugin's config. Validate methods
// return it so that the loader can point at the key's line and column.
type FieldError struct {
	// Path is the key path below the plugin's node, dot separated, with [i]
	// for list items: "tls.caFile", "headers[2]".
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// FieldErrorf returns a *FieldError for the key at path.
func FieldErrorf(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Locate finds the value node at path (see FieldError) below n. When the
// path does not exist it returns the deepest node found, so that an error
// about a missing key points at the mapping that lacks it.
func Locate(n *yaml.Node, path string) *yaml.Node {
	if n == nil || path == "" {
		return n
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, part := range splitPath(path) {
		next := step(n, part)
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

func splitPath(path string) []string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		for {
			i := strings.IndexByte(p, '[')
			if i < 0 {
				break
			}
			if i > 0 {
				parts = append(parts, p[:i])
			}
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				break
			}
			parts = append(parts, p[i:i+j+1])
			p = p[i+j+1:]
		}
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

func step(n *yaml.Node, part string) *yaml.Node {
	if strings.HasPrefix(part, "[") {
		var i int
		if _, err := fmt.Sscanf(part, "[%d]", &i); err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil
		}
		return n.Content[i]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == part {
			return n.Content[i+1]
		}
	}
	return nil
}
