package cebinding

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// attr is one attribute as a transport hands it to Set.
type attr struct {
	name string
	v    any
}

// read sets the required attributes of specversion (unless an attribute
// of attrs replaces one), then attrs, and returns the context, or the
// first error with the place "header ce-<name>".
func read(specversion string, attrs ...attr) (event.EventContext, error) {
	r, err := NewReader(specversion)
	if err != nil {
		return nil, At(err, "header ce-specversion")
	}
	for _, req := range []attr{{"id", "1"}, {"source", "/s"}, {"type", "t"}} {
		replaced := false
		for _, a := range attrs {
			replaced = replaced || strings.EqualFold(a.name, req.name)
		}
		if !replaced {
			attrs = append([]attr{req}, attrs...)
		}
	}
	for _, a := range attrs {
		if a.name == "-" {
			continue
		}
		if err := r.Set(a.name, a.v); err != nil {
			return nil, At(err, "header ce-"+a.name)
		}
	}
	return r.Context("header ce-")
}

// TestReader: the rules of the CloudEvents 1.0.2 core specification
// (spec.md) that a binary-mode reader applies, one row each, quoting the
// rule; with the 0.3 rules where they differ and the native values of
// the type system.
func TestReader(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, tc := range []struct {
		rule  string
		sv    string // "1.0" when ""
		attrs []attr
		err   string // the whole error text; "" when valid
		is    error  // the reason, when err is set
		check func(event.EventContext) bool
	}{
		{rule: `specversion: "Compliant event producers MUST use a value of 1.0 when referring to this version of the specification"`,
			sv: "2.0", err: `invalid attribute "specversion" (header ce-specversion): unsupported value "2.0" (use 1.0 or 0.3)`, is: ErrSpecVersion},
		{rule: `id: "REQUIRED"`,
			attrs: []attr{{"id", nil}}, err: `missing required attribute "id" (header ce-id)`, is: ErrMissing},
		{rule: `source: "REQUIRED" (checked after id, before type)`,
			attrs: []attr{{"source", nil}, {"type", nil}}, err: `missing required attribute "source" (header ce-source)`, is: ErrMissing},
		{rule: `type: "REQUIRED"`,
			attrs: []attr{{"type", nil}}, err: `missing required attribute "type" (header ce-type)`, is: ErrMissing},
		{rule: `id: "MUST be a non-empty string"`,
			attrs: []attr{{"id", " "}}, err: `invalid attribute "id" (header ce-id): must be non-empty`, is: ErrEmpty},
		{rule: `type: "MUST be a non-empty string"`,
			attrs: []attr{{"type", ""}}, err: `invalid attribute "type" (header ce-type): must be non-empty`, is: ErrEmpty},
		{rule: `source: "MUST be a non-empty URI-reference"`,
			attrs: []attr{{"source", ""}}, err: `invalid attribute "source" (header ce-source): must be non-empty`, is: ErrEmpty},
		{rule: `source: Type "URI-reference" (RFC 3986 4.1)`,
			attrs: []attr{{"source", "http://x/%zz"}}, err: `invalid attribute "source" (header ce-source): not a URI-reference: "http://x/%zz"`},
		{rule: `source: "MUST be a non-empty URI-reference" (one that parses to nothing)`,
			attrs: []attr{{"source", "#"}}, err: `invalid attribute "source" (header ce-source): must be non-empty ("#" is an empty URI-reference)`, is: ErrEmpty},
		{rule: `subject: "If present, MUST be a non-empty string"`,
			attrs: []attr{{"subject", "  "}}, err: `invalid attribute "subject" (header ce-subject): must be non-empty`, is: ErrEmpty},
		{rule: `dataschema: "If present, MUST be a non-empty URI"`,
			attrs: []attr{{"dataschema", ""}}, err: `invalid attribute "dataschema" (header ce-dataschema): must be non-empty`, is: ErrEmpty},
		{rule: `type system: URI, "Absolute uniform resource identifier" (dataschema)`,
			attrs: []attr{{"dataschema", "/s.json"}}, err: `invalid attribute "dataschema" (header ce-dataschema): not an absolute URI: "/s.json"`},
		{rule: `dataschema: Type "URI"`,
			attrs: []attr{{"dataschema", "https://example.com/s.json"}},
			check: func(ec event.EventContext) bool { return ec.GetDataSchema() == "https://example.com/s.json" }},
		{rule: `time: "If present, MUST adhere to the format specified in RFC 3339"`,
			attrs: []attr{{"time", "noon"}}, err: `invalid attribute "time" (header ce-time): not an RFC 3339 timestamp: "noon"`},
		{rule: `time: "it MUST be settable providing an RFC3339 string"`,
			attrs: []attr{{"time", "2024-05-06T07:08:09.123456789Z"}},
			check: func(ec event.EventContext) bool { return ec.GetTime().Equal(ts) }},
		{rule: `type system: "The Timestamp might also be routed as a native protocol type"`,
			attrs: []attr{{"time", ts}},
			check: func(ec event.EventContext) bool { return ec.GetTime().Equal(ts) }},
		{rule: `datacontenttype: "For some binary mode protocol bindings, this field is directly mapped to the respective protocol's content-type metadata property"`,
			attrs: []attr{{"datacontenttype", "text/plain"}}, err: `invalid attribute "datacontenttype" (header ce-datacontenttype): ` + ErrContentType.Error(), is: ErrContentType},
		{rule: `naming: "CloudEvents attribute names MUST consist of lower-case letters ('a' to 'z') or digits ('0' to '9') from the ASCII character set"`,
			attrs: []attr{{"my-ext", "x"}}, err: `invalid attribute name "my-ext" (header ce-my-ext): use only letters a-z and digits`, is: ErrName},
		{rule: `naming: only ASCII letters (the Kelvin sign does not lower-case to k)`,
			attrs: []attr{{"\u212Aey", "x"}}, err: "invalid attribute name \"\u212Aey\" (header ce-\u212Aey): use only letters a-z and digits", is: ErrName},
		{rule: `naming: "this specification limits the available character set of all attributes such that case-sensitivity issues ... are prevented" (names are read without regard to case)`,
			attrs: []attr{{"TenantID", "acme"}, {"Subject", "s"}},
			check: func(ec event.EventContext) bool {
				v, _ := ec.GetExtension("tenantid")
				return v == "acme" && ec.GetSubject() == "s"
			}},
		{rule: `naming: a name given twice in different case is one attribute given twice`,
			attrs: []attr{{"tenant", "a"}, {"TENANT", "b"}}, err: `invalid attribute "tenant" (header ce-TENANT): given twice (names that differ only in case or prefix)`, is: ErrDuplicate},
		{rule: `naming: a context attribute given twice`,
			attrs: []attr{{"subject", "a"}, {"Subject", "b"}}, err: `invalid attribute "subject" (header ce-Subject): given twice (names that differ only in case or prefix)`, is: ErrDuplicate},
		{rule: `naming: "CloudEvent attributes MUST NOT have the name data"`,
			attrs: []attr{{"data", "x"}}, err: `invalid attribute name "data" (header ce-data): reserved: CloudEvent attributes MUST NOT have the name "data"`, is: ErrReserved},
		{rule: `type system: String, "Sequence of allowable Unicode characters"`,
			attrs: []attr{{"subject", "\xff"}}, err: `invalid attribute "subject" (header ce-subject): not valid UTF-8`, is: ErrNotUTF8},
		{rule: `type system: id is a String, not another type`,
			attrs: []attr{{"id", int32(3)}}, err: `invalid attribute "id" (header ce-id): must be a string, not integer`},
		{rule: `type system: a String may come as UTF-8 bytes`,
			attrs: []attr{{"id", []byte("b-1")}},
			check: func(ec event.EventContext) bool { return ec.GetID() == "b-1" }},
		{rule: `type system: "Attribute values MAY be presented as native types" (Boolean, Integer, Binary, Timestamp extensions)`,
			attrs: []attr{{"flag", true}, {"n", int64(-7)}, {"u", uint8(7)}, {"blob", []byte{0, 1}}, {"at", ts}},
			check: func(ec event.EventContext) bool {
				x := ec.GetExtensions()
				return x["flag"] == true && x["n"] == int32(-7) && x["u"] == int32(7) && string(x["blob"].([]byte)) == "\x00\x01" && x["at"] == types.Timestamp{Time: ts}
			}},
		{rule: `type system: Integer, "A whole number in the range -2,147,483,648 to +2,147,483,647 inclusive"`,
			attrs: []attr{{"big", int64(1) << 31}}, err: `invalid attribute "big" (header ce-big): integer out of range (CloudEvents integers are 32-bit)`},
		{rule: `type system: "All context attribute values MUST be of one of the types listed above" (no floating point)`,
			attrs: []attr{{"ratio", 1.5}}, err: `invalid attribute "ratio" (header ce-ratio): unsupported value type floating point number (use a string, boolean, integer, binary or timestamp)`},
		{rule: `type system: no maps`,
			attrs: []attr{{"obj", map[string]any{"a": 1}}}, err: `invalid attribute "obj" (header ce-obj): unsupported value type map (use a string, boolean, integer, binary or timestamp)`},
		{rule: `extension: a string value, empty included ("Extension attributes ... use the same type system")`,
			attrs: []attr{{"tenant", ""}},
			check: func(ec event.EventContext) bool { v, err := ec.GetExtension("tenant"); return err == nil && v == "" }},
		{rule: `0.3: schemaurl is a URI-reference`,
			sv: "0.3", attrs: []attr{{"schemaurl", "/s.json"}},
			check: func(ec event.EventContext) bool { return ec.GetDataSchema() == "/s.json" }},
		{rule: `0.3: dataschema is no 0.3 attribute, so an extension`,
			sv: "0.3", attrs: []attr{{"dataschema", "x"}},
			check: func(ec event.EventContext) bool { v, _ := ec.GetExtension("dataschema"); return v == "x" }},
		{rule: `0.3: datacontentencoding "the only allowed value is base64"`,
			sv: "0.3", attrs: []attr{{"datacontentencoding", "gzip"}}, err: `invalid attribute "datacontentencoding" (header ce-datacontentencoding): the only allowed value is "base64"`},
		{rule: `specversion is NewReader's: Set skips it`,
			attrs: []attr{{"specversion", "0.3"}},
			check: func(ec event.EventContext) bool { return ec.GetSpecVersion() == "1.0" }},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			sv := tc.sv
			if sv == "" {
				sv = event.CloudEventsVersionV1
			}
			ec, err := read(sv, tc.attrs...)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v\nwant %s", err, tc.err)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error %v is not %v", err, tc.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := ec.Validate(); err != nil {
				t.Errorf("context does not validate: %v", err)
			}
			if tc.check != nil && !tc.check(ec) {
				t.Errorf("context %v", ec)
			}
		})
	}
}

// TestAt: At places an *AttrError, and prefixes any other error.
func TestAt(t *testing.T) {
	err := At(&AttrError{Name: "time", Err: errors.New("bad")}, "message attribute ce-time")
	if got := err.Error(); got != `invalid attribute "time" (message attribute ce-time): bad` {
		t.Errorf("AttrError at: %s", got)
	}
	if got := At(errors.New("bad"), "header x").Error(); got != "header x: bad" {
		t.Errorf("other error at: %s", got)
	}
}

// FuzzSetAttribute: no name and value make the Reader panic; every error
// is an *AttrError naming the attribute, on one line; and a context it
// returns passes sdk-go's Validate.
func FuzzSetAttribute(f *testing.F) {
	f.Add("1.0", "subject", "s", byte(0), int64(0))
	f.Add("1.0", "time", "2024-05-06T07:08:09Z", byte(0), int64(0))
	f.Add("1.0", "dataschema", "https://x/s", byte(0), int64(0))
	f.Add("0.3", "datacontentencoding", "BASE64", byte(0), int64(0))
	f.Add("0.3", "schemaurl", "", byte(0), int64(0))
	f.Add("1.0", "Ext", "", byte(1), int64(1)<<40)
	f.Add("1.0", "at", "", byte(2), int64(-1))
	f.Add("1.0", "blob", "\xff", byte(3), int64(0))
	f.Add("1.0", "id", "", byte(4), int64(0))
	f.Fuzz(func(t *testing.T, sv, name, s string, kind byte, n int64) {
		r, err := NewReader(sv)
		if err != nil {
			var ae *AttrError
			if !errors.As(err, &ae) || !errors.Is(err, ErrSpecVersion) {
				t.Fatalf("NewReader(%q): %v", sv, err)
			}
			return
		}
		// The value as each transport may give it.
		var v any = s
		switch kind % 6 {
		case 1:
			v = n
		case 2:
			v = time.Unix(0, n)
		case 3:
			v = []byte(s)
		case 4:
			v = n%2 == 0
		case 5:
			v = float64(n)
		}
		// The fuzzed attribute first, then the required ones it is not.
		attrs := []attr{{name, v}}
		for _, req := range []attr{{"id", "1"}, {"source", "/s"}, {"type", "t"}} {
			if !strings.EqualFold(name, req.name) {
				attrs = append(attrs, req)
			}
		}
		for _, a := range attrs {
			if err := r.Set(a.name, a.v); err != nil {
				var ae *AttrError
				if !errors.As(err, &ae) || ae.Name == "" && name != "" || strings.ContainsAny(err.Error(), "\r\n") {
					t.Fatalf("Set(%q, %#v): %q", a.name, a.v, err)
				}
				return
			}
		}
		ec, err := r.Context("header ce-")
		if err != nil {
			t.Fatalf("Context after id, source and type: %v", err)
		}
		if err := ec.Validate(); err != nil {
			t.Fatalf("Set(%q, %#v) gave a context that does not validate: %v", name, v, err)
		}
	})
}

// TestSpecVersionKey: the specversion header in any case and prefix; two
// are refused, at the second in key order.
func TestSpecVersionKey(t *testing.T) {
	for _, tc := range []struct {
		h        map[string]string
		key, err string
	}{
		{h: map[string]string{"ce-id": "1"}},
		{h: map[string]string{"CE-SpecVersion": "1.0", "ce-id": "1"}, key: "CE-SpecVersion"},
		{h: map[string]string{"cloudEvents_specversion": "1.0"}, key: "cloudEvents_specversion"},
		{h: map[string]string{"cloudEvents:specversion": "1.0", "cloudEvents_specversion": "1.0"},
			err: `invalid attribute "specversion" (header cloudEvents_specversion): given twice (names that differ only in case or prefix)`},
	} {
		key, err := SpecVersionKey(tc.h, "header", "ce-", "cloudEvents:", "cloudEvents_")
		if key != tc.key || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("SpecVersionKey(%v) = %q, %v; want %q, %s", tc.h, key, err, tc.key, tc.err)
		}
	}
}
