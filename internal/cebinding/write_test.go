package cebinding

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

type pair struct{ name, value string }

func written(t *testing.T, e *event.Event) []pair {
	t.Helper()
	var got []pair
	if err := Write(e, func(name, v string) error {
		got = append(got, pair{name, v})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWriteV1(t *testing.T) {
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	e.SetSubject("a b ✓")
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 120000000, time.FixedZone("CEST", 2*3600)))
	e.SetDataSchema("https://example.com/s.json")
	e.SetExtension("attempt", 3)
	e.DataEncoded = []byte(`{"a":1}`)
	got := written(t, &e)
	want := []pair{{"specversion", "1.0"}, {"id", "1"}, {"source", "/s"}, {"type", "t"}, {"subject", "a b ✓"},
		{"time", "2024-05-06T05:08:09.12Z"}, {"dataschema", "https://example.com/s.json"},
		{DataContentType, "application/json"}, {"attempt", "3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Write:\n got %v\nwant %v", got, want)
	}
}

func TestWriteV03(t *testing.T) {
	e := event.New(event.CloudEventsVersionV03)
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	e.SetDataSchema("https://example.com/s.json")
	e.SetDataContentType("text/plain")
	e.DataEncoded = []byte("hi")
	got := map[string]string{}
	for _, p := range written(t, &e) {
		got[p.name] = p.value
	}
	want := map[string]string{"specversion": "0.3", "id": "1", "source": "/s", "type": "t",
		"schemaurl": "https://example.com/s.json", DataContentType: "text/plain"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Write:\n got %v\nwant %v", got, want)
	}
}

func TestWriteNoContentType(t *testing.T) {
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	e.DataEncoded = []byte("not JSON")
	for _, p := range written(t, &e) {
		if p.name == DataContentType {
			t.Errorf("datacontenttype %q written for data that is not JSON and has none", p.value)
		}
	}
}

func TestWriteTyped(t *testing.T) {
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	e.SetExtension("n", 7)
	e.SetExtension("b", true)
	ext := map[string]any{}
	if err := WriteTyped(&e, func(string, string) error { return nil }, func(name string, v any) error {
		ext[name] = v
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"n": int32(7), "b": true}; !reflect.DeepEqual(ext, want) {
		t.Errorf("extensions %#v, want %#v", ext, want)
	}
}

func TestWriteErrors(t *testing.T) {
	if err := Write(&event.Event{}, func(string, string) error { return nil }); err == nil {
		t.Error("an event without a context was written")
	}
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	e.Context.(*event.EventContextV1).Extensions = map[string]any{"bad-name": "x"}
	err := Write(&e, func(string, string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `extension name "bad-name" is not valid`) {
		t.Errorf("error %v, want the bad extension name", err)
	}
	stop := Write(&e, func(name, _ string) error {
		if name == "source" {
			return errStop
		}
		return nil
	})
	if stop != errStop {
		t.Errorf("error %v, want put's", stop)
	}
}

var errStop = errorString("stop")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestHeaders(t *testing.T) {
	h := map[string]int{"Ce-Id": 1, "ce-type": 2, "CE-SOURCE": 3, "Ce-": 4, "Content-Type": 5, "cloudEvents_x": 6, "cloudevents:Y": 7}
	var keys []string
	for k, name := range SortedHeaders(h, "ce-") {
		keys = append(keys, k+"="+name)
	}
	if want := []string{"CE-SOURCE=SOURCE", "Ce-Id=Id", "ce-type=type"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("SortedHeaders = %v, want %v", keys, want)
	}
	n := 0
	for k, name := range Headers(h, "cloudEvents:", "cloudEvents_") {
		n++
		if k != "cloudEvents_x" && k != "cloudevents:Y" || name != k[len(k)-1:] {
			t.Errorf("Headers yielded %q, %q", k, name)
		}
	}
	if n != 2 {
		t.Errorf("Headers yielded %d AMQP headers, want 2", n)
	}
	if !HasHeaders(h, "ce-") || HasHeaders(map[string]int{"Ce-": 1, "x": 2}, "ce-") {
		t.Error("HasHeaders wrong")
	}
}

func TestLenientHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"a%20b":      "a b",
		"100%":       "100%",
		"%zz%41":     "%zzA",
		`"a b"`:      "a b",
		`"x%2541"`:   "x%41",
		"plain":      "plain",
		"%E2%82%AC%": "€%",
		"\"q\\\"x\"": `q"x`,
	} {
		got, err := LenientHeaderValue(in)
		if err != nil || got != want {
			t.Errorf("LenientHeaderValue(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"%C0", "\xff", `"open`} {
		if got, err := LenientHeaderValue(in); err == nil {
			t.Errorf("LenientHeaderValue(%q) = %q, want an error", in, got)
		}
	}
	if _, err := HeaderValue("100%"); err == nil {
		t.Error(`HeaderValue("100%") took a stray '%'`)
	}
}
