package logsink

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sinks"
)

//go:embed example.yaml
var exampleYAML string

//go:embed README.md
var readme string

func build(t testing.TB, output string) *Log {
	t.Helper()
	c := NewConfig()
	c.Output = output
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := c.Build(context.Background(), sinks.Deps{Name: "dead"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.(*Log)
}

func newEvent(t testing.TB, id string) *event.Event {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetSource("/orders")
	e.SetType("com.example.order.created")
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC))
	return &e
}

func testEvents(t *testing.T) []*event.Event {
	jsonData := newEvent(t, "json")
	jsonData.SetSubject("order 42 ✓ <b>&</b>")
	jsonData.SetExtension("tenant", "acme")
	jsonData.SetExtension("junctionattempts", 6)
	jsonData.SetExtension("junctionerror", `POST http://127.0.0.1:9999/hook: HTTP 503 Service Unavailable: "busy"`)
	if err := jsonData.SetData(event.ApplicationJSON, map[string]any{"amount": 150, "items": []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	text := newEvent(t, "text")
	text.SetData("text/plain", "line one\nline two")
	bin := newEvent(t, "binary")
	bin.SetData("application/octet-stream", []byte{0, 1, '\n', 0xFF})
	bin.SetDataSchema("https://example.com/schema")
	empty := newEvent(t, "no-data")
	return []*event.Event{jsonData, text, bin, empty}
}

// sameEvent compares attributes, extensions (by canonical string) and data.
func sameEvent(t *testing.T, got, want *event.Event) {
	t.Helper()
	attrs := func(e *event.Event) map[string]string {
		m := map[string]string{
			"specversion": e.SpecVersion(), "id": e.ID(), "source": e.Source(), "type": e.Type(),
			"subject": e.Subject(), "dataschema": e.DataSchema(), "datacontenttype": e.DataContentType(),
			"time": e.Time().UTC().Format(time.RFC3339Nano), "data": string(e.Data()),
		}
		for k, v := range e.Extensions() {
			s, err := types.Format(v)
			if err != nil {
				t.Fatalf("format extension %s: %v", k, err)
			}
			m["ext:"+k] = s
		}
		return m
	}
	g, w := attrs(got), attrs(want)
	if len(g) != len(w) {
		t.Errorf("got attributes %v, want %v", g, w)
	}
	for k, wv := range w {
		if gv := g[k]; gv != wv {
			t.Errorf("%s: got %q, want %q", k, gv, wv)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("file does not end with a newline: %q", b)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestDeliverToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte("previous line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := build(t, path)
	events := testEvents(t)
	for _, e := range events {
		if err := l.Deliver(context.Background(), e); err != nil {
			t.Fatalf("Deliver %s: %v", e.ID(), err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines := readLines(t, path)
	if len(lines) != 1+len(events) || lines[0] != "previous line" {
		t.Fatalf("file is not appended to: %q", lines)
	}
	for i, line := range lines[1:] {
		if !json.Valid([]byte(line)) {
			t.Errorf("line %d is not JSON: %s", i+2, line)
			continue
		}
		var back event.Event
		if err := json.Unmarshal([]byte(line), &back); err != nil {
			t.Errorf("line %d is not a CloudEvent: %v", i+2, err)
			continue
		}
		sameEvent(t, &back, events[i])
	}
	// The JSON data is embedded as JSON, not as a string.
	var raw map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &raw); err != nil {
		t.Fatal(err)
	}
	if d, ok := raw["data"].(map[string]any); !ok || d["amount"] != 150.0 {
		t.Errorf("data: got %#v", raw["data"])
	}
	if err := json.Unmarshal([]byte(lines[3]), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["data_base64"] != "AAEK/w==" {
		t.Errorf("data_base64: got %#v", raw["data_base64"])
	}
}

func TestCreatesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.jsonl")
	l := build(t, path)
	if err := l.Deliver(context.Background(), newEvent(t, "1")); err != nil {
		t.Fatal(err)
	}
	if lines := readLines(t, path); len(lines) != 1 || !strings.Contains(lines[0], `"id":"1"`) {
		t.Errorf("lines: %q", lines)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o600 != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestDeliverAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	l := build(t, path)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err := l.Deliver(context.Background(), newEvent(t, "late"))
	want := "write event late to " + path + ": sink closed"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if perm, _ := sinks.Classify(err); perm {
		t.Error("got permanent, want retryable")
	}
}

func TestStandardStreams(t *testing.T) {
	for name, want := range map[string]*os.File{"stdout": os.Stdout, "stderr": os.Stderr} {
		l := build(t, name)
		if l.w != want || l.file != nil {
			t.Errorf("%s: writes to %v", name, l.w)
		}
		if err := l.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
		if l.w != want {
			t.Errorf("%s: Close replaced the stream", name)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ output, want string }{
		{filepath.Join(dir, "missing", "out.jsonl"), "open log output " + filepath.Join(dir, "missing", "out.jsonl") + ": no such file or directory"},
		{dir, "open log output " + dir + ": is a directory"},
		{"", "output: must be stdout, stderr or a file path"},
	}
	for _, tc := range cases {
		c := NewConfig()
		c.Output = tc.output
		_, err := c.Build(context.Background(), sinks.Deps{Name: "dead"})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Build(%q):\n got %v\nwant %q", tc.output, err, tc.want)
		}
	}
}

func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	return plugintest.Decode(t, src, `sink "dead"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		yaml, want, output string
	}{
		{"{}", "", "stdout"},
		{"output: stderr", "", "stderr"},
		{"output: /var/log/junction/dead.jsonl", "", "/var/log/junction/dead.jsonl"},
		{`output: ""`, `config:1:9: sink "dead": output: must be stdout, stderr or a file path`, ""},
		{"output:", `config:1:8: sink "dead": output: expected a string, got nothing`, ""},
		{"output: [a]", `config:1:9: sink "dead": output: expected a string, got a list`, ""},
		{"outptu: x", `config:1:1: sink "dead": unknown key "outptu" (did you mean "output"?)`, ""},
		{"path: x", `config:1:1: sink "dead": unknown key "path" (known keys: output)`, ""},
		{"output: stdot", `config:1:9: sink "dead": output: "stdot": did you mean stdout? (a file in the working directory is written ./stdot)`, ""},
		{"output: sterr", `config:1:9: sink "dead": output: "sterr": did you mean stderr? (a file in the working directory is written ./sterr)`, ""},
		{"output: ./stdot", "", "./stdot"},
		{"output: events", "", "events"},
	}
	for _, tc := range cases {
		c, got := check(t, tc.yaml)
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.yaml, got, tc.want)
		}
		if tc.want == "" && c.Output != tc.output {
			t.Errorf("%s: output %q, want %q", tc.yaml, c.Output, tc.output)
		}
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sinks.Lookup("log")
	if !ok {
		t.Fatal(`sink type "log" is not registered`)
	}
	if c, ok := f().(*Config); !ok || c.Output != "stdout" {
		t.Fatalf("factory returns %#v", f())
	}
}

func TestExample(t *testing.T) {
	for _, e := range plugintest.DecodeExample(t, exampleYAML, nil, "sink", Type, NewConfig) {
		if e.Config.Output != OutputStdout {
			t.Errorf("output: %q", e.Config.Output)
		}
	}
	if cfg := plugintest.ParseExample(t, exampleYAML, nil); len(cfg.Routes) != 1 || cfg.Routes[0].To[0].Name != "console" {
		t.Errorf("routes: %+v", cfg.Routes)
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}

func BenchmarkDeliver(b *testing.B) {
	l := build(b, filepath.Join(b.TempDir(), "events.jsonl"))
	e := newEvent(b, "bench")
	e.SetExtension("tenant", "acme")
	if err := e.SetData(event.ApplicationJSON, map[string]any{"amount": 150}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Deliver(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
}

// A line is what json.Marshal of the event gives, up to HTML escaping.
func TestLineMatchesJSONMarshal(t *testing.T) {
	var buf bytes.Buffer
	l := &Log{output: "buffer", w: &buf}
	for _, e := range testEvents(t) {
		buf.Reset()
		if err := l.Deliver(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		var a, b any
		_ = json.Unmarshal(want, &a)
		_ = json.Unmarshal(compact.Bytes(), &b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("line %s\nwant %s", buf.Bytes(), want)
		}
		if sc := bufio.NewScanner(&buf); !sc.Scan() || sc.Scan() {
			t.Errorf("not exactly one line")
		}
	}
}

// TestPlusJSONDataIsAJSONValue: JSON format 3.1.1, "The data value MUST be
// stored directly as a JSON value, rather than as an encoded JSON document
// represented as a string", for application/*+json too (sdk-go#1161).
func TestPlusJSONDataIsAJSONValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	l := build(t, path)
	e := newEvent(t, "plus")
	e.SetDataContentType("application/vnd.api+json")
	e.DataEncoded = []byte(`{"a":[1,2]}`)
	if err := l.Deliver(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	var m map[string]json.RawMessage
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &m) != nil || string(m["data"]) != `{"a":[1,2]}` {
		t.Fatalf("line %q, want data {\"a\":[1,2]}", lines)
	}
}
