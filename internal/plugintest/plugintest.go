// Package plugintest holds the helpers that every source and sink package
// repeats in its tests: its README embeds example.yaml, example.yaml's
// entries decode and validate as the loader does them, config snippets are
// checked into FILE:LINE:COL errors, and conditions are polled instead of
// slept on. Only tests import it.
//
// It also holds the conformance suites that every plugin runs against its
// real server (watermill's pubsub test suite is the model): RunSinkSuite and
// RunSourceSuite. A plugin's TestSuite gives only a harness: how to make a
// fresh destination or upstream and the plugin's config for it (its own
// keys, decoded through the registered factory as the loader does), how to
// read what arrived or to produce, how to make the destination fail, and
// capability flags (batching, replies, order, redelivery) that switch the
// checks on. The suites check what every plugin promises: attributes,
// extensions and data of every kind intact, failures classified, contexts
// honoured, Close idempotent, concurrent use safe (run them with -race),
// acknowledgement only after Ingest returned nil, Run stopping with its
// context and malformed input rejected and counted.
package plugintest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
)

// Validator is a plugin's config as the loader handles it: decoded
// strictly from the plugin's own keys, then validated.
type Validator interface{ Validate() error }

// ReadmeHasExample fails t unless readme contains want verbatim, so that
// the docs cannot drift from the example the tests load. want is
// example.yaml's text, or YAMLBlock of it where the example must be a whole
// yaml code block.
func ReadmeHasExample(t testing.TB, readme, want string) {
	t.Helper()
	if !strings.Contains(readme, want) {
		t.Error("README.md does not contain example.yaml verbatim; paste it in again")
	}
}

// YAMLBlock is example as the whole of a fenced yaml code block, up to the
// closing fence: "```yaml\n" + example + "```".
func YAMLBlock(example string) string { return "```yaml\n" + example + "```" }

// Check decodes src, YAML holding a plugin's own keys, into cfg as the
// loader does (strict decoding, then Validate if decoding succeeded) and
// returns every problem as "config:LINE:COL: where: ..." lines, or "" when
// there is none. where names the plugin, e.g. `sink "hook"`.
func Check(t testing.TB, src, where string, cfg Validator) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	if err := decode(doc.Content[0], where, cfg); err != nil {
		return err.Error()
	}
	return ""
}

// Decode makes a config with newConfig and checks src into it as Check
// does.
func Decode[C Validator](t testing.TB, src, where string, newConfig func() C) (C, string) {
	t.Helper()
	c := newConfig()
	return c, Check(t, src, where, c)
}

// Case is a config snippet, a plugin's own keys, and the errors that
// checking it gives ("" for none). It is an unnamed struct type, so that
// tests list cases without field names.
type Case = struct{ Name, YAML, Want string }

// CheckCases runs each case as a subtest: check (a Check or Decode of the
// plugin's config) must give Want for YAML, and no error may show one of
// secrets.
func CheckCases[C any](t *testing.T, check func(t testing.TB, src string) (C, string), cases []Case, secrets ...string) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			_, got := check(t, tc.YAML)
			if got != tc.Want {
				t.Errorf("errors:\n got %s\nwant %s", got, tc.Want)
			}
			for _, secret := range secrets {
				if strings.Contains(got, secret) {
					t.Errorf("an error shows a secret (%s): %s", secret, got)
				}
			}
		})
	}
}

// decode is the loader's handling of one plugin entry.
func decode(node *yaml.Node, where string, cfg Validator) error {
	var errs config.Errors
	if err := config.Decode(node, cfg); err != nil {
		errs.Add(node, where, err)
	} else {
		errs.Add(node, where, cfg.Validate())
	}
	return errs.Err()
}

// ParseExample parses example, a complete Junction config such as a
// plugin's example.yaml, with env as the environment (nil: empty), and
// fails the test if it does not parse.
func ParseExample(t testing.TB, example string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("example.yaml", []byte(example), func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	if err != nil {
		t.Fatalf("parse example.yaml:\n%v", err)
	}
	return cfg
}

// Entry is one plugin entry of an example config and its own keys,
// decoded and validated.
type Entry[C Validator] struct {
	Plugin config.Plugin
	Config C
}

// DecodeExample parses example as ParseExample does, then decodes each
// entry of kind ("source" or "sink") and type typ into a config from
// newConfig and validates it, as the loader does. The test fails at the
// first problem, and when example has no such entry.
func DecodeExample[C Validator](t testing.TB, example string, env map[string]string, kind, typ string, newConfig func() C) []Entry[C] {
	t.Helper()
	cfg := ParseExample(t, example, env)
	plugins := cfg.Sinks
	if kind == "source" {
		plugins = cfg.Sources
	}
	var out []Entry[C]
	for _, p := range plugins {
		if p.Type != typ {
			continue
		}
		c := newConfig()
		if err := decode(p.Own, p.Where(kind), c); err != nil {
			t.Fatalf("example.yaml:\n%v", err)
		}
		out = append(out, Entry[C]{Plugin: p, Config: c})
	}
	if len(out) == 0 {
		t.Fatalf("example.yaml has no %s %s", typ, kind)
	}
	return out
}

// Eventually polls ok every 10ms until it is true, and fails the test
// when timeout passes first; what says what was waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LogBuffer collects log output; it is safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  []byte
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

// String returns what was written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
