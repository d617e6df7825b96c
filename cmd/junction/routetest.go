package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/router"
)

// routeTestFile is a file of route tests (see SPEC "Tooling").
type routeTestFile struct {
	Tests []routeTest `yaml:"tests"`
}

// routeTest is one route test: an event, the source it arrives on, and
// per sink the events it must receive.
type routeTest struct {
	Name   string    `yaml:"name"`
	Event  yaml.Node `yaml:"event"`
	Source string    `yaml:"source"`
	Expect yaml.Node `yaml:"expect"`
}

// caseResult is the outcome of one route test.
type caseResult struct {
	name string
	pos  config.Pos
	// errs are problems of the test itself (its event, its sinks), as
	// FILE:LINE:COL lines; fails are the differences from what it expects.
	errs  config.Errors
	fails []string
	// notes are the routes' errors, shown with a failure.
	notes []string
}

// routeTests runs `junction test`: every test of every file against the
// config's routes, with router.TestEvent (no server, no network).
func routeTests(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test")
	cfgPath := configFlag(fs, "the config `FILE` whose routes are tested (default: ./junction.yaml)")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) == 0 {
		return usageError(stderr, "test", "name at least one FILE of tests")
	}
	path := *cfgPath
	if path == "" {
		path = "junction.yaml"
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	plan, err := router.Compile(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	passed, failed, unread := 0, 0, 0
	for _, file := range rest {
		if len(rest) > 1 {
			fmt.Fprintf(stdout, "%s\n", file)
		}
		results, err := runTestFile(plan, file)
		if err != nil {
			fmt.Fprintln(stdout, err)
			unread++
			continue
		}
		for _, r := range results {
			if len(r.errs) == 0 && len(r.fails) == 0 {
				passed++
				fmt.Fprintf(stdout, "ok    %s\n", r.name)
				continue
			}
			failed++
			fmt.Fprintf(stdout, "FAIL  %s (%s:%d)\n", r.name, file, r.pos.Line)
			for _, e := range r.errs {
				fmt.Fprintf(stdout, "      %s\n", e)
			}
			for _, f := range r.fails {
				fmt.Fprintf(stdout, "      %s\n", strings.ReplaceAll(f, "\n", "\n      "))
			}
			for _, n := range r.notes {
				fmt.Fprintf(stdout, "      note: %s\n", n)
			}
		}
	}
	if failed > 0 || unread > 0 {
		msg := fmt.Sprintf("%d of %d %s failed", failed, passed+failed, plural(passed+failed, "test"))
		if unread > 0 {
			msg += fmt.Sprintf("; %d %s could not be read", unread, plural(unread, "test file"))
		}
		fmt.Fprintln(stdout, msg)
		return 1
	}
	fmt.Fprintf(stdout, "%d %s passed\n", passed, plural(passed, "test"))
	return 0
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// runTestFile reads a file of tests and runs each against plan. The error
// is for a file that cannot be read at all (FILE:LINE:COL lines).
func runTestFile(plan *router.Plan, file string) ([]caseResult, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read tests: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var tf routeTestFile
	var errs config.Errors
	errs.Add(&doc, "", config.Decode(&doc, &tf))
	if len(doc.Content) > 0 && config.Locate(doc.Content[0], "tests") == doc.Content[0] {
		errs.Addf(config.PosOf(doc.Content[0]), "", "tests: expected a list of tests")
	} else if len(errs) == 0 && len(tf.Tests) == 0 {
		errs.Addf(config.PosOf(&doc), "", "tests: the list is empty")
	}
	if len(errs) > 0 {
		errs.SetFile(file)
		return nil, errs.Err()
	}
	items := config.Locate(doc.Content[0], "tests").Content
	var out []caseResult
	for i := range tf.Tests {
		out = append(out, runTest(plan, file, &tf.Tests[i], items[i]))
	}
	return out, nil
}

// runTest runs one test (n is its YAML mapping).
func runTest(plan *router.Plan, file string, t *routeTest, n *yaml.Node) caseResult {
	res := caseResult{name: t.Name, pos: config.PosOf(n)}
	if res.name == "" {
		res.name = fmt.Sprintf("test at line %d", res.pos.Line)
		res.errs.Addf(res.pos, "", "missing name")
	}
	where := fmt.Sprintf("test %q", res.name)
	defer func() { res.errs.SetFile(file) }() // a closure: res.errs grows below
	e, err := testEvent(&t.Event)
	if err != nil {
		res.errs.Addf(config.PosOf(config.Locate(n, "event")), where, "event: %v", err)
		return res
	}
	expectNode := config.Locate(n, "expect")
	if expectNode == n {
		res.errs.Addf(res.pos, where, "missing expect (per sink, the events it receives; expect: {} when no sink receives anything)")
		return res
	}
	expect, ok := expectations(plan, expectNode, where, &res.errs)
	if !ok {
		return res
	}
	results, err := router.TestEvent(plan, t.Source, e)
	if err != nil {
		res.errs.Addf(config.PosOf(config.Locate(n, "source")), where, "source: %v", err)
		return res
	}
	got := map[string][]*event.Event{}
	for _, r := range results {
		if r.Error != "" {
			res.notes = append(res.notes, fmt.Sprintf("route %s: %s", r.Route, r.Error))
		}
		for _, d := range r.Deliveries {
			got[d.Sink] = append(got[d.Sink], d.Event)
		}
	}
	for _, sink := range plan.Sinks {
		name := sink.Plugin.Name
		res.fails = append(res.fails, compareSink(name, expect[name], got[name])...)
	}
	if len(res.fails) == 0 {
		res.notes = nil
	}
	return res
}

// testEvent reads a test's event: a mapping in the CloudEvents JSON
// format's keys, checked as the http source checks structured events.
func testEvent(n *yaml.Node) (*event.Event, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("expected a CloudEvent (a mapping with specversion, id, source, type ...)")
	}
	v, err := jsonValue(n)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return cehttp.ParseStructured(b)
}

// jsonValue decodes a YAML node into the value its JSON form has: maps
// with string keys, numbers as float64.
func jsonValue(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// expectations reads a test's expect mapping: per sink, a list of
// partial events.
func expectations(plan *router.Plan, n *yaml.Node, where string, errs *config.Errors) (map[string][]map[string]any, bool) {
	if n.Kind != yaml.MappingNode {
		errs.Addf(config.PosOf(n), where, "expect: expected a mapping of sink names to lists of events")
		return nil, false
	}
	sinks := map[string]bool{}
	var names []string
	for _, s := range plan.Sinks {
		sinks[s.Plugin.Name] = true
		names = append(names, s.Plugin.Name)
	}
	out := map[string][]map[string]any{}
	before := len(*errs)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !sinks[k.Value] {
			msg := fmt.Sprintf("expect: unknown sink %q", k.Value)
			if s := config.Suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (sinks: " + strings.Join(names, ", ") + ")"
			}
			errs.Addf(config.PosOf(k), where, "%s", msg)
			continue
		}
		if v.Kind != yaml.SequenceNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			errs.Addf(config.PosOf(v), where, "expect.%s: expected a list of events (each a mapping of attributes and data)", k.Value)
			continue
		}
		list := []map[string]any{}
		for j, item := range v.Content {
			m, err := jsonValue(item)
			obj, ok := m.(map[string]any)
			if err != nil || !ok {
				errs.Addf(config.PosOf(item), where, "expect.%s[%d]: expected a mapping of attributes and data", k.Value, j)
				continue
			}
			list = append(list, obj)
		}
		out[k.Value] = list
	}
	return out, len(*errs) == before
}

// compareSink compares what sink got with what the test expects: the same
// number of events, each a superset of its expectation.
func compareSink(sink string, want []map[string]any, got []*event.Event) []string {
	var fails []string
	if len(want) != len(got) {
		msg := fmt.Sprintf("sink %s: expected %s, got %s", sink, events(len(want)), events(len(got)))
		for _, e := range got {
			msg += "\n  got: " + eventJSON(e)
		}
		return append(fails, msg)
	}
	for i := range want {
		var g any
		if err := json.Unmarshal([]byte(eventJSON(got[i])), &g); err != nil {
			return append(fails, fmt.Sprintf("sink %s, event %d: %v", sink, i+1, err))
		}
		if path, w, gv, ok := subset(want[i], g, ""); !ok {
			fails = append(fails, fmt.Sprintf("sink %s, event %d: %s: expected %s, got %s\n  got: %s",
				sink, i+1, path, show(w), show(gv), eventJSON(got[i])))
		}
	}
	return fails
}

func events(n int) string {
	if n == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d %s", n, plural(n, "event"))
}

// eventJSON is e in the CloudEvents JSON format, keys sorted.
func eventJSON(e *event.Event) string {
	b, err := cejson.Marshal(e)
	if err != nil {
		return fmt.Sprintf("(cannot encode: %v)", err)
	}
	var v any
	if json.Unmarshal(b, &v) == nil {
		b, _ = json.Marshal(v) // sorted keys
	}
	return string(b)
}

// show formats a value of a mismatch; missing is "nothing".
func show(v any) string {
	if v == missing {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// missing stands for a key the event does not have.
var missing = &struct{ _ byte }{}

// subset reports whether got holds want: every key of a mapping (with a
// subset of its value), lists of the same length element by element, and
// equal scalars. When not, it returns the path of the first difference and
// the values there.
func subset(want, got any, path string) (string, any, any, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return orRoot(path), want, got, false
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				if w[k] == nil {
					continue // null: absent
				}
				return joinPath(path, k), w[k], missing, false
			}
			if p, wv, gv, ok := subset(w[k], gv, joinPath(path, k)); !ok {
				return p, wv, gv, false
			}
		}
		return "", nil, nil, true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return orRoot(path), want, got, false
		}
		for i := range w {
			if p, wv, gv, ok := subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, wv, gv, false
			}
		}
		return "", nil, nil, true
	}
	if !reflect.DeepEqual(want, got) {
		return orRoot(path), want, got, false
	}
	return "", nil, nil, true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(the event)"
	}
	return path
}
