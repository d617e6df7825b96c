package plugintest

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeT records failures; Fatal ends the calling goroutine as testing.T's
// does.
type fakeT struct {
	testing.TB
	errors []string
	fatal  bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Error(args ...any) {
	f.errors = append(f.errors, fmt.Sprint(args...))
}
func (f *fakeT) Fatal(args ...any) {
	f.Error(args...)
	f.fatal = true
	runtime.Goexit()
}
func (f *fakeT) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

// run calls fn with a fakeT in a goroutine of its own and returns the
// fakeT once fn returned or called Fatal.
func run(fn func(t testing.TB)) *fakeT {
	f := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

type cfg struct {
	URL  string `yaml:"url"`
	Size int    `yaml:"size"`
}

func (c *cfg) Validate() error {
	if c.URL == "" {
		return errors.New("url: required")
	}
	return nil
}

const example = `sources:
  - {name: a, type: fake, url: "${A_URL:-http://a}"}
  - {name: b, type: other}
sinks:
  - {name: s, type: fake, url: http://s, size: 2}
routes:
  - {name: r, sources: [a], to: [s]}
`

func TestReadmeHasExample(t *testing.T) {
	readme := "# Fake\n\n" + YAMLBlock(example) + "\n"
	for _, tc := range []struct {
		readme, want string
		fail         bool
	}{
		{readme, example, false},
		{readme, YAMLBlock(example), false},
		{readme, YAMLBlock(example) + "\n", false},
		{strings.TrimSuffix(readme, "\n"), YAMLBlock(example) + "\n", true},
		{strings.Replace(readme, "size: 2", "size: 3", 1), example, true},
		{"```yaml\n" + example, YAMLBlock(example), true},
	} {
		f := run(func(t testing.TB) { ReadmeHasExample(t, tc.readme, tc.want) })
		if got := len(f.errors) > 0; got != tc.fail {
			t.Errorf("ReadmeHasExample(%q, %q) failed %v, want %v", tc.readme, tc.want, got, tc.fail)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"url: http://x\nsize: 1", ""},
		{"size: 1", `config:1:1: sink "s": url: required`},
		{"url: x\nsiz: 1", `config:2:1: sink "s": unknown key "siz" (did you mean "size"?)`},
	} {
		var got string
		f := run(func(t testing.TB) { got = Check(t, tc.src, `sink "s"`, &cfg{}) })
		if len(f.errors) > 0 || got != tc.want {
			t.Errorf("Check(%q) = %q (failures %q), want %q", tc.src, got, f.errors, tc.want)
		}
	}
	f := run(func(t testing.TB) { Check(t, "url: [", `sink "s"`, &cfg{}) })
	if !f.fatal || !strings.HasPrefix(f.errors[0], "bad test YAML: ") {
		t.Errorf("bad YAML: %q", f.errors)
	}
}

func TestDecodeAndCheckCases(t *testing.T) {
	check := func(t testing.TB, src string) (*cfg, string) {
		return Decode(t, src, `sink "s"`, func() *cfg { return &cfg{Size: 7} })
	}
	c, errs := check(t, "url: http://x")
	if errs != "" || c.URL != "http://x" || c.Size != 7 {
		t.Errorf("Decode: %+v, %q", c, errs)
	}
	CheckCases(t, check, []Case{
		{"valid", "url: http://x\nsize: 1", ""},
		{"missing url", "size: 1", `config:1:1: sink "s": url: required`},
	}, "s3cret")
}

func TestDecodeExample(t *testing.T) {
	newCfg := func() *cfg { return &cfg{} }
	var got []Entry[*cfg]
	f := run(func(t testing.TB) { got = DecodeExample(t, example, nil, "source", "fake", newCfg) })
	if len(f.errors) > 0 || len(got) != 1 || got[0].Plugin.Name != "a" || got[0].Config.URL != "http://a" {
		t.Errorf("sources: %+v (failures %q)", got, f.errors)
	}
	f = run(func(t testing.TB) {
		got = DecodeExample(t, example, map[string]string{"A_URL": "http://env"}, "source", "fake", newCfg)
	})
	if len(f.errors) > 0 || len(got) != 1 || got[0].Config.URL != "http://env" {
		t.Errorf("sources with env: %+v (failures %q)", got, f.errors)
	}
	f = run(func(t testing.TB) { got = DecodeExample(t, example, nil, "sink", "fake", newCfg) })
	if len(f.errors) > 0 || len(got) != 1 || got[0].Config.Size != 2 || got[0].Plugin.Name != "s" {
		t.Errorf("sinks: %+v (failures %q)", got, f.errors)
	}
	for _, tc := range []struct{ example, kind, typ, want string }{
		{example, "sink", "other", "example.yaml has no other sink"},
		{example, "source", "other", "example.yaml:\n" + `config:3:5: source "b": url: required`},
		{strings.Replace(example, "size: 2", "sise: 2", 1), "sink", "fake", `unknown key "sise"`},
		{"sources: [", "source", "fake", "parse example.yaml:\n"},
	} {
		f := run(func(t testing.TB) { DecodeExample(t, tc.example, nil, tc.kind, tc.typ, newCfg) })
		if !f.fatal || !strings.Contains(strings.Join(f.errors, "\n"), tc.want) {
			t.Errorf("%s %s: failures %q, want one containing %q", tc.kind, tc.typ, f.errors, tc.want)
		}
	}
}

func TestEventually(t *testing.T) {
	n := 0
	f := run(func(t testing.TB) { Eventually(t, time.Second, "n to reach 3", func() bool { n++; return n == 3 }) })
	if f.fatal || n != 3 {
		t.Errorf("Eventually: fatal %v after %d polls", f.fatal, n)
	}
	f = run(func(t testing.TB) { Eventually(t, 30*time.Millisecond, "never", func() bool { return false }) })
	if !f.fatal || f.errors[0] != "timed out after 30ms waiting for never" {
		t.Errorf("Eventually: %q", f.errors)
	}
}

func TestLogBuffer(t *testing.T) {
	var b LogBuffer
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				b.Write([]byte("x"))
			}
		}()
	}
	for range 4 {
		<-done
	}
	if got := len(b.String()); got != 400 {
		t.Errorf("%d bytes, want 400", got)
	}
}
