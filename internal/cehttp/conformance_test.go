package cehttp

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Conformance of the HTTP protocol binding (CloudEvents 1.0.2,
// bindings/http-protocol-binding.md) as ParseEvent reads and
// SetBinaryHeaders writes it: each row quotes the rule, gives an input and
// the expected outcome.

func TestConformanceDecode(t *testing.T) {
	base := func(kv ...string) http.Header {
		h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h[http.CanonicalHeaderKey(kv[i])] = []string{kv[i+1]}
		}
		return h
	}
	structured := http.Header{"Content-Type": {"application/cloudevents+json"}}
	for _, tc := range []struct {
		rule    string
		h       http.Header
		body    string
		err     string // a part of the error; "" when valid
		subject string // the subject expected, when valid
		ext     string // the value of extension "ext" expected, when valid
	}{
		{rule: `3.1.3.2: "any HTTP header value MUST first be unescaped with respect to double-quoted strings, as described in RFC7230, section 3.2.6"`,
			h: base("Ce-Subject", `"a b"`), subject: "a b"},
		{rule: `3.1.3.2: "including processing backslash escapes within double-quoted values"`,
			h: base("Ce-Subject", `"say \"hi\" \\ now"`), subject: `say "hi" \ now`},
		{rule: `3.1.3.2: "A single round of percent-decoding MUST then be performed"`,
			h: base("Ce-Subject", `"a%20b%2541"`), subject: "a b%41"},
		{rule: `3.1.3.2: a quoted extension value`,
			h: base("Ce-Ext", `"x y"`), ext: "x y"},
		{rule: `RFC 7230 3.2.6: a quoted-string ends with its closing quote`,
			h: base("Ce-Subject", `"a`), err: "no closing quote"},
		{rule: `3.1.3.2: "decoding MUST accept lower-case values"`,
			h: base("Ce-Subject", `%e2%82%ac`), subject: "€"},
		{rule: `3.1.3.2: "encoded byte sequences which are invalid in UTF-8 MUST be rejected. (For example, "%C0%A0" ...)"`,
			h: base("Ce-Subject", `%C0%A0`), err: "UTF-8"},
		{rule: `3.1.3.2: "values that have been unncessarily percent-encoded MUST be accepted"`,
			h: base("Ce-Subject", `%61bc`), subject: "abc"},
		{rule: `3.1.1: "Note that a ce-datacontenttype HTTP header MUST NOT also be present in the message"`,
			h: base("Ce-Datacontenttype", "text/plain"), err: "MUST NOT be present"},
		{rule: `3.1.3.1: "header names are case-insensitive" (the attribute name is lower-case)`,
			h: base("CE-MYEXT", "1"), err: ""},
		{rule: `core "Naming Conventions": "CloudEvent attributes MUST NOT have the name data"`,
			h: base("Ce-Data", "x"), err: `"data"`},
		{rule: `core String: "the "control characters" in the ranges U+0000-U+001F and U+007F-U+009F" are disallowed`,
			h: base("Ce-Subject", "a%0Ab"), err: "control character"},
		{rule: `core subject: "If present, MUST be a non-empty string"`,
			h: base("Ce-Subject", ""), err: "non-empty"},
		{rule: `core dataschema: "If present, MUST be a non-empty URI"`,
			h: base("Ce-Dataschema", ""), err: "non-empty"},
		{rule: `core datacontenttype: "If present, MUST adhere to the format specified in RFC 2046"`,
			h: base("Content-Type", "json"), err: "datacontenttype"},
		{rule: `core "Attribute Naming Convention": lower-case letters or digits (structured)`,
			h: structured, body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","Ext":"x"}`, err: "Ext"},
		{rule: `JSON 2.2: "When decoding attributes and a null value is encountered, it MUST be treated as the equivalent of unset or omitted" (structured)`,
			h: structured, body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":null,"subject":"s"}`, subject: "s"},
		{rule: `3.3: one event expected (ParseEvent reads a single event; the http source reads batches)`,
			h: http.Header{"Content-Type": {"application/cloudevents-batch+json"}}, body: `[]`, err: "batch"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			e, err := ParseEvent(tc.h, []byte(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("headers %v\nerror %v, want one with %q", tc.h, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("headers %v: %v", tc.h, err)
			}
			if e.Subject() != tc.subject {
				t.Errorf("subject %q, want %q", e.Subject(), tc.subject)
			}
			if tc.ext != "" {
				if got, _ := e.Extensions()["ext"].(string); got != tc.ext {
					t.Errorf("ext %q, want %q", got, tc.ext)
				}
			}
		})
	}
}

func TestConformanceEncode(t *testing.T) {
	ev := func(dct, data string, b64 bool) *event.Event {
		e := event.New()
		e.SetID("1")
		e.SetSource("/s")
		e.SetType("t")
		e.SetSubject("Euro € 😀")
		if dct != "" {
			e.SetDataContentType(dct)
		}
		if data != "" {
			e.DataEncoded = []byte(data)
		}
		e.DataBase64 = b64
		return &e
	}
	for _, tc := range []struct {
		rule string
		in   *event.Event
		ct   string // the Content-Type expected ("" for none)
	}{
		{rule: `JSON 3.1.2: "if a JSON-formatted event with no datacontenttype attribute, is deserialized and then re-serialized using a different format or protocol binding, the datacontenttype in the re-serialized event SHOULD be set explicitly to the implied application/json content type"`,
			in: ev("", `{"a":1}`, false), ct: "application/json"},
		{rule: `3.1.1: "the HTTP Content-Type header value corresponds to (MUST be populated from or written to) the CloudEvents datacontenttype attribute"`,
			in: ev("application/vnd.x+json", `{}`, false), ct: "application/vnd.x+json"},
		{rule: `3.1.1: binary data without datacontenttype implies nothing`,
			in: ev("", "\x00\xff", true), ct: ""},
		{rule: `3.1.1: no data, no Content-Type`,
			in: ev("", "", false), ct: ""},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			h := http.Header{}
			if err := SetBinaryHeaders(h, tc.in); err != nil {
				t.Fatal(err)
			}
			if got := h.Get("Content-Type"); got != tc.ct {
				t.Errorf("Content-Type %q, want %q", got, tc.ct)
			}
			// 3.1.3.2: "Example: a header value of "Euro € 😀" SHOULD be
			// encoded as ... "Euro%20%E2%82%AC%20%F0%9F%98%80"".
			if got := h.Get("Ce-Subject"); got != "Euro%20%E2%82%AC%20%F0%9F%98%80" {
				t.Errorf("ce-subject %q", got)
			}
			back, err := ParseEvent(h, tc.in.Data())
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if back.Subject() != tc.in.Subject() || string(back.Data()) != string(tc.in.Data()) {
				t.Errorf("read back %v, want %v", back, tc.in)
			}
		})
	}
}
