package schedulesource

import (
	_ "embed"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
)

//go:embed example.yaml
var exampleYAML string

//go:embed README.md
var readme string

func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	return plugintest.Decode(t, src, `source "nightly"`, NewConfig)
}

func TestConfigValidate(t *testing.T) {
	const ev = "event: {type: com.example.tick, source: /tick}\n"
	cases := []plugintest.Case{
		{"cron", `cron: "0 2 * * *"` + "\n" + ev, ""},
		{"cron with timezone", `cron: "0 2 * * *"` + "\ntimezone: Europe/Paris\ncatchUp: true\n" + ev, ""},
		{"descriptor", "cron: '@hourly'\n" + ev, ""},
		{"every", "every: 30s\n" + ev, ""},
		{"full event", "every: 1s\nevent: {type: t, source: /s, subject: x, data: {a: [1, 2]}}", ""},
		{"both", `cron: "0 2 * * *"` + "\nevery: 30s\n" + ev, `config:2:8: source "nightly": every: give cron or every, not both`},
		{"neither", ev, `config:1:1: source "nightly": cron: required: a cron expression such as "0 2 * * *", or every: 30s`},
		{"bad cron", `cron: "0 2 * *"` + "\n" + ev, `config:1:7: source "nightly": cron: "0 2 * *" is not a cron expression of five fields (minute hour day-of-month month day-of-week, such as "0 2 * * *"): expected exactly 5 fields, found 4: [0 2 * *]`},
		{"cron out of range", `cron: "0 25 * * *"` + "\n" + ev, `config:1:7: source "nightly": cron: "0 25 * * *" is not a cron expression of five fields (minute hour day-of-month month day-of-week, such as "0 2 * * *"): end of range (25) above maximum (23): 25`},
		{"six fields", `cron: "0 0 2 * * *"` + "\n" + ev, `config:1:7: source "nightly": cron: "0 0 2 * * *" is not a cron expression of five fields (minute hour day-of-month month day-of-week, such as "0 2 * * *"): expected exactly 5 fields, found 6: [0 0 2 * * *]`},
		{"TZ in cron", `cron: "TZ=Europe/Paris 0 2 * * *"` + "\n" + ev, `config:1:7: source "nightly": cron: give the time zone with the timezone key, not in the expression`},
		{"@every", "cron: '@every 5s'\n" + ev, `config:1:7: source "nightly": cron: for a fixed period use every: instead of cron: "@every 5s"`},
		{"bad timezone", `cron: "0 2 * * *"` + "\ntimezone: Mars/Olympus\n" + ev, `config:2:11: source "nightly": timezone: "Mars/Olympus" is not an IANA time zone name such as Europe/Paris or UTC`},
		{"timezone with every", "every: 1m\ntimezone: UTC\n" + ev, `config:2:11: source "nightly": timezone: applies to cron only (every counts from the Unix epoch)`},
		{"every too short", "every: 500ms\n" + ev, `config:1:8: source "nightly": every: must be whole seconds, at least 1s`},
		{"every fraction", "every: 1500ms\n" + ev, `config:1:8: source "nightly": every: must be whole seconds, at least 1s`},
		{"missing event", "every: 1s", strings.Join([]string{
			`config:1:1: source "nightly": event.type: required: the CloudEvents type of the emitted event`,
			`config:1:1: source "nightly": event.source: required: the CloudEvents source of the emitted event, such as /junction/nightly`,
		}, "\n")},
		{"missing event.source", "every: 1s\nevent: {type: t}", `config:2:8: source "nightly": event.source: required: the CloudEvents source of the emitted event, such as /junction/nightly`},
		{"unknown key", "every: 1s\n" + ev + "evry: 1s", `config:3:1: source "nightly": unknown key "evry" (did you mean "every"?)`},
	}
	plugintest.CheckCases(t, check, cases)
}

func TestEventData(t *testing.T) {
	for _, tc := range []struct{ yaml, data, ct string }{
		{"event: {type: t, source: /s}", "", ""},
		{"event: {type: t, source: /s, data: hello}", "hello", "text/plain"},
		{"event: {type: t, source: /s, data: {n: 1, l: [a, true]}}", `{"l":["a",true],"n":1}`, "application/json"},
		{"event: {type: t, source: /s, data: 42}", "42", "application/json"},
	} {
		c, errs := check(t, "every: 1s\n"+tc.yaml)
		if errs != "" {
			t.Fatal(errs)
		}
		data, ct, err := c.data()
		if err != nil || string(data) != tc.data || ct != tc.ct {
			t.Errorf("%s: data %q %q %v, want %q %q", tc.yaml, data, ct, err, tc.data, tc.ct)
		}
	}
}

func TestEvent(t *testing.T) {
	c, errs := check(t, "every: 1s\nevent: {type: com.example.tick, source: /tick, subject: s, data: {n: 1}}")
	if errs != "" {
		t.Fatal(errs)
	}
	built, err := c.Build(t.Context(), sources.Deps{Name: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	e := built.(*Source).event(tick)
	if e.ID() != "nightly-1767232800" || e.Type() != "com.example.tick" || e.Source() != "/tick" || e.Subject() != "s" ||
		!e.Time().Equal(tick) || string(e.Data()) != `{"n":1}` || e.DataContentType() != "application/json" {
		t.Errorf("event: %v", e)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
}

func TestRegistered(t *testing.T) {
	f, ok := sources.Lookup(Type)
	if !ok {
		t.Fatalf("source type %q is not registered", Type)
	}
	if _, ok := f().(*Config); !ok {
		t.Fatalf("factory returns %T", f())
	}
}

func TestExample(t *testing.T) {
	got := plugintest.DecodeExample(t, exampleYAML, nil, "source", Type, NewConfig)
	if len(got) != 2 {
		t.Fatalf("%d schedule sources in the example, want 2", len(got))
	}
	if c := got[0].Config; c.Cron != "0 2 * * *" || c.Timezone != "Europe/Paris" || !c.CatchUp || c.Event.Type != "com.example.nightly" {
		t.Errorf("nightly: %+v", c)
	}
	if c := got[1].Config; c.Every != 30*time.Second || c.CatchUp {
		t.Errorf("heartbeat: %+v", c)
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	plugintest.ReadmeHasExample(t, readme, exampleYAML)
}
