package cejson

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Conformance of the JSON event format (CloudEvents 1.0.2,
// formats/json-format.md) and of the core attribute rules
// (cloudevents/spec.md) as Unmarshal + Validate + Check apply them: each
// row quotes the rule, gives an input and the expected outcome.

const head = `"specversion":"1.0","id":"1","source":"/s","type":"t"`

// read is what every structured reader does: Unmarshal, Validate, Check.
func read(raw string) (*event.Event, error) {
	e := event.New()
	if err := Unmarshal(&e, []byte(raw)); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if err := Check(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

func TestConformanceRead(t *testing.T) {
	for _, tc := range []struct {
		rule string
		in   string
		err  string // a part of the error; "" when valid
		data string // the data expected, when valid
		dct  string // the datacontenttype expected, when valid
	}{
		{rule: `core "Attribute Naming Convention": "CloudEvents attribute names MUST consist of lower-case letters ('a' to 'z') or digits ('0' to '9') from the ASCII character set"`,
			in: `{` + head + `,"myExt":"x"}`, err: "myExt"},
		{rule: `core "Attribute Naming Convention" (a valid name)`,
			in: `{` + head + `,"myext2":"x"}`},
		{rule: `core datacontenttype: "If present, MUST adhere to the format specified in RFC 2046"`,
			in: `{` + head + `,"datacontenttype":"json"}`, err: "datacontenttype"},
		{rule: `core datacontenttype: "If present, MUST adhere to the format specified in RFC 2046" (parameters)`,
			in: `{` + head + `,"datacontenttype":"text/plain; charset=utf-8","data":"hi"}`, data: "hi", dct: "text/plain; charset=utf-8"},
		{rule: `core datacontenttype: RFC 2046 (a space in the type)`,
			in: `{` + head + `,"datacontenttype":"a b/c"}`, err: "datacontenttype"},
		{rule: `core subject: "If present, MUST be a non-empty string"`,
			in: `{` + head + `,"subject":""}`, err: "subject"},
		{rule: `core dataschema: "If present, MUST be a non-empty URI"`,
			in: `{` + head + `,"dataschema":""}`, err: "dataschema"},
		{rule: `core dataschema: "If present, MUST be a non-empty URI" (a relative reference)`,
			in: `{` + head + `,"dataschema":"/schema"}`, err: "dataschema"},
		{rule: `core String: "The following characters are disallowed: the "control characters" in the ranges U+0000-U+001F and U+007F-U+009F"`,
			in: `{` + head + `,"subject":"a\nb"}`, err: "control character"},
		{rule: `core String: control characters (an extension, U+0085)`,
			in: `{` + head + `,"ext":"a\u0085"}`, err: "control character"},
		{rule: `core String: "code points identified as noncharacters by Unicode"`,
			in: `{` + head + `,"ext":"\uFFFE"}`, err: "noncharacter"},
		{rule: `core Integer: "A whole number in the range -2,147,483,648 to +2,147,483,647 inclusive"`,
			in: `{` + head + `,"n":1.5}`, err: "not an integer"},
		{rule: `core Integer (out of range)`,
			in: `{` + head + `,"n":2147483648}`, err: "out of range"},
		{rule: `JSON 2.2: "When decoding attributes and a null value is encountered, it MUST be treated as the equivalent of unset or omitted"`,
			in: `{` + head + `,"datacontenttype":null,"data":{"a":1}}`, data: `{"a":1}`},
		{rule: `JSON 2.2: null means unset (datacontenttype first)`,
			in: `{"datacontenttype":null,` + head + `,"data":{"a":1}}`, data: `{"a":1}`},
		{rule: `JSON 2.2: null means unset (subject, time, dataschema, an extension)`,
			in: `{` + head + `,"subject":null,"time":null,"dataschema":null,"ext":null}`},
		{rule: `JSON 3.1.1: "the presence of the data and data_base64 members is mutually exclusive"`,
			in: `{` + head + `,"data":"x","data_base64":"eA=="}`, err: "mutually exclusive"},
		{rule: `JSON 3.1.1: mutually exclusive (data_base64 null is unset)`,
			in: `{` + head + `,"data":"x","data_base64":null}`, data: `"x"`},
		{rule: `JSON 3.1.2: "If the datacontenttype declares the data to contain JSON-formatted content (that is, its subtype is json or has a +json format extension), then the data member MUST be treated directly as a JSON value"`,
			in: `{` + head + `,"datacontenttype":"application/vnd.api+json","data":{"a":[1,2]}}`, data: `{"a":[1,2]}`, dct: "application/vnd.api+json"},
		{rule: `JSON 3.1.2: "if the data member is a string, a JSON deserializer MUST interpret it directly as a JSON String value"`,
			in: `{` + head + `,"datacontenttype":"application/cloudevents+json","data":"{\"a\":1}"}`, data: `"{\"a\":1}"`, dct: "application/cloudevents+json"},
		{rule: `JSON 3.1.2: a +json string stays a JSON string`,
			in: `{` + head + `,"datacontenttype":"application/geo+json","data":"x"}`, data: `"x"`, dct: "application/geo+json"},
		{rule: `JSON 3.1.2: */json is JSON`,
			in: `{` + head + `,"datacontenttype":"text/json","data":[1]}`, data: `[1]`, dct: "text/json"},
		{rule: `JSON 3.1.2: "If the datacontenttype does not declare JSON-formatted data content, then the data member SHOULD be treated as an encoded content string"`,
			in: `{` + head + `,"datacontenttype":"application/xml","data":"<a/>"}`, data: `<a/>`, dct: "application/xml"},
		{rule: `JSON 3.1.2: "if the datacontenttype attribute is absent, a JSON deserializer SHOULD proceed as if it were set to application/json"`,
			in: `{` + head + `,"data":{"a":1}}`, data: `{"a":1}`},
		{rule: `JSON 3.1.2: "the presence of the data_base64 member clearly indicates that the value is a Base64 encoded binary data"`,
			in: `{` + head + `,"datacontenttype":"application/octet-stream","data_base64":"AAE="}`, data: "\x00\x01", dct: "application/octet-stream"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			e, err := read(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("input %s\nerror %v, want one with %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("input %s\nerror %v", tc.in, err)
			}
			if string(e.Data()) != tc.data {
				t.Errorf("data %q, want %q", e.Data(), tc.data)
			}
			if e.DataContentType() != tc.dct {
				t.Errorf("datacontenttype %q, want %q", e.DataContentType(), tc.dct)
			}
		})
	}
}

func TestConformanceWrite(t *testing.T) {
	ev := func(dct, data string, b64 bool) *event.Event {
		e := event.New()
		e.SetID("1")
		e.SetSource("/s")
		e.SetType("t")
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
		data string // the data member's JSON, "" when absent
		b64  string // the data_base64 member's JSON
	}{
		{rule: `JSON 3.1.1: "If the datacontenttype declares the data to contain JSON-formatted content, a JSON serializer MUST translate the data value to a JSON value ... The data value MUST be stored directly as a JSON value, rather than as an encoded JSON document represented as a string" (sdk-go#1161)`,
			in: ev("application/vnd.api+json", `{"a":1}`, false), data: `{"a":1}`},
		{rule: `JSON 3.1.1: */*+json with parameters`,
			in: ev("application/geo+json; charset=utf-8", `[1,2]`, false), data: `[1,2]`},
		{rule: `JSON 3.1.1: application/json`,
			in: ev("application/json", `{"a":1}`, false), data: `{"a":1}`},
		{rule: `JSON 3.1.1: "If the datacontenttype is unspecified, processing SHOULD proceed as if the datacontenttype had been specified explicitly as application/json"`,
			in: ev("", `{"a":1}`, false), data: `{"a":1}`},
		{rule: `JSON 3.1.1: "Otherwise ... a JSON serializer MUST store a string representation of the data value"`,
			in: ev("text/plain", `hi`, false), data: `"hi"`},
		{rule: `JSON 3.1.1: "If the implementation determines that the type of data is Binary, the value MUST be represented as a JSON string expression containing the Base64 encoded binary value, and use the member name data_base64"`,
			in: ev("application/vnd.api+json", "\x00", true), b64: `"AA=="`},
		{rule: `JSON 3.1.1: "An implementation MAY fail to serialize the event if it is unable to translate the runtime value to a JSON value" (Junction writes a string instead)`,
			in: ev("application/x+json", `not json`, false), data: `"not json"`},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			b, err := Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if string(m["data"]) != tc.data || string(m["data_base64"]) != tc.b64 {
				t.Fatalf("%s\nwant data %s data_base64 %s", b, tc.data, tc.b64)
			}
			if !json.Valid(tc.in.Data()) && !tc.in.DataBase64 {
				return
			}
			// What Marshal writes, Unmarshal reads back as it was.
			back := event.New()
			if err := Unmarshal(&back, b); err != nil {
				t.Fatalf("read back %s: %v", b, err)
			}
			if string(back.Data()) != string(tc.in.Data()) {
				t.Errorf("read back data %q, want %q", back.Data(), tc.in.Data())
			}
		})
	}
}

func TestContentType(t *testing.T) {
	for _, tc := range []struct {
		rule, dct, data string
		b64             bool
		want            string
	}{
		{rule: `JSON 3.1.2: "the datacontenttype in the re-serialized event SHOULD be set explicitly to the implied application/json content type"`, data: `"I'm just a string"`, want: "application/json"},
		{rule: "set datacontenttype is kept", dct: "text/xml", data: "<a/>", want: "text/xml"},
		{rule: "no data, nothing implied", want: ""},
		{rule: "binary data, nothing implied", data: "\x00", b64: true, want: ""},
		{rule: "not JSON, nothing implied", data: "plain", want: ""},
	} {
		e := event.New()
		if tc.dct != "" {
			e.SetDataContentType(tc.dct)
		}
		if tc.data != "" {
			e.DataEncoded = []byte(tc.data)
		}
		e.DataBase64 = tc.b64
		if got := ContentType(&e); got != tc.want {
			t.Errorf("%s: ContentType %q, want %q", tc.rule, got, tc.want)
		}
	}
}

func TestCheckReservedName(t *testing.T) {
	// core "Naming Conventions": "CloudEvent attributes MUST NOT have the
	// name data; this name is reserved as it is used in some event
	// formats" (a binary-mode ce-data header would otherwise become the
	// JSON format's data member).
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	e.SetExtension("data", "x")
	if err := Check(&e); err == nil || !strings.Contains(err.Error(), `name "data"`) {
		t.Fatalf("Check: %v, want the reserved name refused", err)
	}
}

// FuzzRoundTrip: Unmarshal never panics; an event it reads that passes
// Validate and Check is written by Marshal as JSON that Unmarshal reads
// back to the same attributes and data.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(`{` + head + `,"datacontenttype":"application/vnd.api+json","data":{"a":[1,2]}}`))
	f.Add([]byte(`{` + head + `,"datacontenttype":null,"subject":null,"data":{"a":1}}`))
	f.Add([]byte(`{` + head + `,"data":"x","data_base64":"eA=="}`))
	f.Add([]byte(`{` + head + `,"datacontenttype":"application/geo+json","data":"x"}`))
	f.Add([]byte(`{` + head + `,"datacontenttype":"text/plain","data":"hi","n":7,"b":true}`))
	f.Add([]byte(`{` + head + `,"datacontenttype":"application/octet-stream","data_base64":"AAE="}`))
	f.Add([]byte(`{` + head + `,"Ext":"x","subject":""}`))
	f.Add([]byte(`{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontenttype":"application/x+json","data":[1]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := read(string(raw))
		if err != nil {
			return
		}
		b, err := Marshal(e)
		if err != nil {
			return // sdk-go cannot write some values it reads
		}
		back, err := read(string(b))
		if err != nil {
			t.Fatalf("%s\nwritten as %s\nread back: %v", raw, b, err)
		}
		if string(back.Data()) != string(e.Data()) || back.DataBase64 != e.DataBase64 {
			t.Fatalf("%s\nwritten as %s\ndata %q (base64 %v), want %q (base64 %v)", raw, b, back.Data(), back.DataBase64, e.Data(), e.DataBase64)
		}
		if back.ID() != e.ID() || back.Source() != e.Source() || back.Type() != e.Type() || back.Subject() != e.Subject() ||
			back.DataContentType() != e.DataContentType() || back.DataSchema() != e.DataSchema() || len(back.Extensions()) != len(e.Extensions()) {
			t.Fatalf("%s\nwritten as %s\nread back as %v, want %v", raw, b, back, e)
		}
	})
}

func TestWriteIsMarshal(t *testing.T) {
	for _, dct := range []string{"application/vnd.api+json", "application/json", "text/plain"} {
		e := event.New()
		e.SetID("1")
		e.SetSource("/s")
		e.SetType("t")
		e.SetDataContentType(dct)
		e.DataEncoded = []byte(`{"a":1}`)
		var w strings.Builder
		if err := Write(&e, &w); err != nil {
			t.Fatal(err)
		}
		b, err := Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		if w.String() != string(b) {
			t.Errorf("%s: Write %s, Marshal %s", dct, w.String(), b)
		}
	}
}
