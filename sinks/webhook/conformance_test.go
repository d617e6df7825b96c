package webhooksink

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Conformance of the webhook sink's output to CloudEvents 1.0.2 (the JSON
// format and the HTTP protocol binding), read from the requests a real
// HTTP server received: each row quotes the rule, gives the event and the
// expected request.

func TestConformanceOutput(t *testing.T) {
	ev := func(dct, data string) *event.Event {
		e := event.New()
		e.SetID("1")
		e.SetSource("/s")
		e.SetType("t")
		if dct != "" {
			e.SetDataContentType(dct)
		}
		e.DataEncoded = []byte(data)
		return &e
	}
	for _, tc := range []struct {
		rule   string
		format string
		in     *event.Event
		ct     string // Content-Type expected
		data   string // binary: the body; structured: the data member's JSON
	}{
		{rule: `JSON 3.1.2: "the datacontenttype in the re-serialized event SHOULD be set explicitly to the implied application/json content type" (binary, no datacontenttype)`,
			format: FormatBinary, in: ev("", `{"a":1}`), ct: "application/json", data: `{"a":1}`},
		{rule: `HTTP 3.1.1: "the HTTP Content-Type header value corresponds to (MUST be populated from or written to) the CloudEvents datacontenttype attribute"`,
			format: FormatBinary, in: ev("text/plain", `hi`), ct: "text/plain", data: `hi`},
		{rule: `JSON 3.1.1: "The data value MUST be stored directly as a JSON value, rather than as an encoded JSON document represented as a string" (application/*+json, sdk-go#1161)`,
			format: FormatStructured, in: ev("application/vnd.api+json", `{"a":[1,2]}`), ct: "application/cloudevents+json; charset=utf-8", data: `{"a":[1,2]}`},
		{rule: `JSON 3.1.1: application/json data is a JSON value`,
			format: FormatStructured, in: ev("application/json", `[1]`), ct: "application/cloudevents+json; charset=utf-8", data: `[1]`},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			rec := newRecorder(t, "", nil)
			c := cfgFor(rec.srv.URL + "/hook")
			c.Format = tc.format
			w := build(t, c)
			if err := deliver(t, w, tc.in); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			got := rec.last(t)
			if ct := got.header.Get("Content-Type"); ct != tc.ct {
				t.Errorf("Content-Type %q, want %q", ct, tc.ct)
			}
			if tc.format == FormatBinary {
				if string(got.body) != tc.data {
					t.Errorf("body %s, want %s", got.body, tc.data)
				}
				return
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(got.body, &m); err != nil {
				t.Fatalf("body %s: %v", got.body, err)
			}
			if strings.TrimSpace(string(m["data"])) != tc.data {
				t.Errorf("data member %s, want %s", m["data"], tc.data)
			}
		})
	}
}
