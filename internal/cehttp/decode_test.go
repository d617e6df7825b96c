package cehttp

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestParseEvent(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	base := []string{"Ce-Specversion", "1.0", "Ce-Id", "1", "Ce-Source", "/s", "Ce-Type", "t"}
	cases := []struct {
		name string
		h    http.Header
		body string
		want string // error text; "" for a valid event
	}{
		{"binary", hdr(append(base, "Content-Type", "text/plain", "Ce-Subject", "a%20b%E2%9C%93")...), "hi", ""},
		{"binary 0.3", hdr("Ce-Specversion", "0.3", "Ce-Id", "1", "Ce-Source", "/s", "Ce-Type", "t", "Ce-Schemaurl", "http://x/s"), "", ""},
		{"structured", hdr("Content-Type", "application/cloudevents+json; charset=UTF-8"), `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`, ""},
		{"not an event: no headers", hdr(), "x", ErrNotEvent.Error()},
		{"not an event: JSON", hdr("Content-Type", "application/json"), `{"specversion":"1.0"}`, ErrNotEvent.Error()},
		{"not an event: bad media type", hdr("Content-Type", "///"), ``, ErrNotEvent.Error()},
		{"batch", hdr("Content-Type", "application/cloudevents-batch+json"), `[]`, "a CloudEvents batch (application/cloudevents-batch+json); one event was expected"},
		{"missing all", hdr("Ce-Specversion", "1.0"), "", `missing required attribute "id" (header ce-id)`},
		{"specversion", hdr("Ce-Specversion", "9\n9"), "", `invalid attribute "specversion" (header ce-specversion): unsupported value "9 9" (use 1.0 or 0.3)`},
		{"truncated percent", hdr(append(base, "Ce-Subject", "abc%4")...), "", `invalid attribute "subject" (header ce-subject): invalid percent-encoding`},
		{"time", hdr(append(base, "Ce-Time", "2024-13-01")...), "", `invalid attribute "time" (header ce-time): not an RFC 3339 timestamp: "2024-13-01"`},
		{"extension name", hdr(append(base, "Ce-A_b", "1")...), "", `invalid attribute name "a_b" (header ce-a_b): use only letters a-z and digits`},
		{"structured bad JSON", hdr("Content-Type", "application/cloudevents+json"), `[1]`, "invalid CloudEvents JSON: "},
		{"structured bad specversion", hdr("Content-Type", "application/cloudevents+json"), `{"specversion":"7","id":"1","source":"/s","type":"t"}`, "invalid CloudEvents JSON: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEvent(tc.h, []byte(tc.body))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ParseEvent: %v", err)
				}
				if err := e.Validate(); err != nil {
					t.Errorf("invalid event: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %v, want error %q", e, tc.want)
			}
			if got := err.Error(); len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Errorf("error:\n got %s\nwant %s", got, tc.want)
			}
			if IsEvent(tc.h) == errors.Is(err, ErrNotEvent) {
				t.Errorf("IsEvent = %v with error %v", IsEvent(tc.h), err)
			}
		})
	}
}

// TestBinaryRoundTrip writes an event with SetBinaryHeaders and reads it
// back with ParseEvent.
func TestBinaryRoundTrip(t *testing.T) {
	e := event.New()
	e.SetID("id 1 ✓")
	e.SetSource("/orders/eu")
	e.SetType("com.example.order.created")
	e.SetSubject(`order 42 "quoted" 100%`)
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC))
	e.SetDataSchema("https://example.com/s.json")
	e.SetExtension("tenant", "acme corp")
	e.SetExtension("attempt", 3)
	if err := e.SetData(event.ApplicationJSON, map[string]any{"amount": 150}); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := SetBinaryHeaders(h, &e); err != nil {
		t.Fatal(err)
	}
	got, err := ParseEvent(h, e.Data())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != e.ID() || got.Subject() != e.Subject() || !got.Time().Equal(e.Time()) || got.DataSchema() != e.DataSchema() ||
		got.Extensions()["tenant"] != "acme corp" || got.Extensions()["attempt"] != "3" || string(got.Data()) != string(e.Data()) ||
		got.DataContentType() != "application/json" {
		t.Errorf("round trip:\n got %s\nwant %s", got, &e)
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add("1.0", "a%20b", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`))
	f.Add("", "", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AA=="}`))
	f.Add("0.3", "%", "text/plain", []byte("x"))
	f.Add("1.0", `"a \"b\" %25"`, "application/vnd.api+json", []byte(`{"a":1}`))
	f.Add("1.0", `"unterminated`, "json", []byte(`{}`))
	f.Add("", "", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":null,"data":{"a":1}}`))
	f.Add("", "", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/geo+json","data":[1]}`))
	f.Add("", "", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}`))
	f.Fuzz(func(t *testing.T, sv, subject, ct string, body []byte) {
		h := http.Header{}
		if sv != "" {
			h["Ce-Specversion"] = []string{sv}
			h["Ce-Id"] = []string{"1"}
			h["Ce-Source"] = []string{"/s"}
			h["Ce-Type"] = []string{"t"}
			h["Ce-Subject"] = []string{subject}
		}
		h["Content-Type"] = []string{ct}
		e, err := ParseEvent(h, body)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Errorf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Errorf("ParseEvent returned an invalid event: %v", err)
		}
	})
}

func BenchmarkParseBinary(b *testing.B) {
	h := http.Header{}
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "r-1", "Ce-Source": "/fn", "Ce-Type": "com.example.t", "Ce-Subject": "a%20b", "Content-Type": "application/json"} {
		h.Set(k, v)
	}
	body := []byte(`{"a":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseStructured(b *testing.B) {
	h := http.Header{"Content-Type": {"application/cloudevents+json"}}
	body := []byte(`{"specversion":"1.0","id":"r-1","source":"/fn","type":"com.example.t","datacontenttype":"application/json","data":{"a":1}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseStructuredExtensionValues: a reply in the JSON format must not
// have its extensions changed. CloudEvents has no floating-point type: a
// JSON number extension is an Integer, a whole number from -2147483648 to
// 2147483647 (1e3 is 1000); any other number, an object or an array is an
// invalid reply, never truncated. Malformed input that makes the SDK panic
// is an error too.
func TestParseStructuredExtensionValues(t *testing.T) {
	const head = `{"specversion":"1.0","id":"1","source":"/s","type":"t",`
	for _, tc := range []struct {
		value string
		want  any    // the value read
		err   string // the error text; "" when valid
	}{
		{value: "7", want: int32(7)},
		{value: "1e3", want: int32(1000)},
		{value: "true", want: true},
		{value: "null", want: nil},
		{value: "1.5", err: "invalid CloudEvents JSON: myext: 1.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)"},
		{value: "1e400", err: "invalid CloudEvents JSON: myext: 1e400 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: strings.Repeat("9", 1_000_000), err: "invalid CloudEvents JSON: myext: 999999999999999999999999... is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: "2147483648", err: "invalid CloudEvents JSON: myext: 2147483648 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: "-2147483649", err: "invalid CloudEvents JSON: myext: -2147483649 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: `{"a":1}`, err: "invalid CloudEvents JSON: myext: extension values must be strings, integers or booleans"},
	} {
		name := tc.value
		if len(name) > 20 {
			name = name[:20]
		}
		t.Run(name, func(t *testing.T) {
			e, err := ParseStructured([]byte(head + `"myext":` + tc.value + `}`))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %v, %v\nwant error %q", e, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Extensions()["myext"]; got != tc.want {
				t.Errorf("myext = %#v, want %#v", got, tc.want)
			}
		})
	}
	if _, err := ParseStructured([]byte(head + `"data_base64":1}`)); err == nil || err.Error() != "invalid CloudEvents JSON: cannot read the event" {
		t.Errorf("numeric data_base64 (the SDK panics): %v", err)
	}
}
