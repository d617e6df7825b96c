package cejson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
)

// The rules of CloudEvents 1.0.2 that sdk-go does not keep, kept here so
// that every reader and writer of events (the HTTP binding, the sources,
// the sinks) applies them the same way.

// ApplicationJSON is the datacontenttype implied when an event has data but
// none (JSON format 3.1.2).
const ApplicationJSON = "application/json"

// MediaType is the media type of a Content-Type or datacontenttype value:
// lower case, without parameters or surrounding spaces.
func MediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// IsJSON reports whether datacontenttype ct declares JSON-formatted data:
// a media type, stripped of parameters, of the form */json or */*+json (JSON
// format 3.1.1). No datacontenttype ("") counts as application/json.
// sdk-go knows only application/json and text/json (sdk-go#1161).
func IsJSON(ct string) bool {
	mt := MediaType(ct)
	if mt == "" {
		return true
	}
	_, sub, ok := strings.Cut(mt, "/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// CheckMediaType checks that ct is a media type as RFC 2046 defines it: a
// type and a subtype, both tokens, then parameters. mime.ParseMediaType
// alone takes a type without a subtype ("json").
func CheckMediaType(ct string) error {
	if isTypeSubtype(strings.TrimSpace(ct)) {
		return nil // the common case, without parameters: no allocation
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return errors.New("not a media type (RFC 2046)")
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || strings.ContainsRune(sub, '/') {
		return errors.New("not a media type (RFC 2046): type/subtype expected")
	}
	return nil
}

// isTypeSubtype reports whether s is exactly token "/" token (RFC 2045
// section 5.1), without parameters.
func isTypeSubtype(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && isToken(typ) && isToken(sub)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7F || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// Check applies the rules of the CloudEvents core specification that
// e.Validate does not: the datacontenttype is a type/subtype media type,
// subject and dataschema are not empty when present, extension names are
// lower-case letters and digits and not "data", and strings hold no
// control characters or noncharacters. Its error is an event.ValidationError
// naming the attribute.
func Check(e *event.Event) error {
	switch c := e.Context.(type) {
	case *event.EventContextV1:
		if c.Subject != nil && strings.TrimSpace(*c.Subject) == "" {
			return event.ValidationError{"subject": errors.New("if present, MUST be a non-empty string")}
		}
		if c.DataSchema != nil && c.DataSchema.String() == "" {
			return event.ValidationError{"dataschema": errors.New("if present, MUST be a non-empty URI")}
		}
	case *event.EventContextV03:
		if c.Subject != nil && strings.TrimSpace(*c.Subject) == "" {
			return event.ValidationError{"subject": errors.New("if present, MUST be a non-empty string")}
		}
	}
	if ct := e.DataContentType(); ct != "" {
		if err := CheckMediaType(ct); err != nil {
			return event.ValidationError{"datacontenttype": err}
		}
	}
	for name, v := range extensions(e) {
		if !validName(name) {
			return event.ValidationError{name: errBadName}
		}
		if name == "data" {
			return event.ValidationError{name: errors.New(`CloudEvent attributes MUST NOT have the name "data"`)}
		}
		if s, ok := v.(string); ok {
			if err := checkString(s); err != nil {
				return event.ValidationError{name: err}
			}
		}
	}
	for _, a := range [...]struct{ name, v string }{{"id", e.ID()}, {"type", e.Type()}, {"subject", e.Subject()}, {"source", e.Source()}} {
		if err := checkString(a.v); err != nil {
			return event.ValidationError{a.name: err}
		}
	}
	return nil
}

// checkString applies the core type system's String rule: "The following
// characters are disallowed: the "control characters" in the ranges
// U+0000-U+001F and U+007F-U+009F ... code points identified as
// noncharacters by Unicode".
func checkString(s string) error {
	for i, r := range s {
		switch {
		case r < 0x20, r >= 0x7F && r <= 0x9F:
			return fmt.Errorf("control character U+%04X at byte %d (disallowed in CloudEvents strings)", r, i)
		case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
			return fmt.Errorf("noncharacter U+%04X at byte %d (disallowed in CloudEvents strings)", r, i)
		}
	}
	return nil
}

// ContentType is the content type a binding carries for e's data: its
// datacontenttype, or application/json, which the JSON format implies,
// when it has none and its data is JSON text (JSON format 3.1.2: "the
// datacontenttype in the re-serialized event SHOULD be set explicitly to
// the implied application/json content type"). It is "" when e has no
// data, or data that is not JSON and no datacontenttype.
func ContentType(e *event.Event) string {
	if ct := e.DataContentType(); ct != "" {
		return ct
	}
	if len(e.DataEncoded) == 0 || e.DataBase64 || !json.Valid(e.DataEncoded) {
		return ""
	}
	return ApplicationJSON
}

// Marshal writes e in the CloudEvents JSON format, as e.MarshalJSON does
// but for data whose datacontenttype is JSON (*/json, */*+json) other than
// application/json and text/json: the JSON format (3.1.1) says "The data
// value MUST be stored directly as a JSON value, rather than as an encoded
// JSON document represented as a string", and sdk-go's writer stores it as
// a string (sdk-go#1161). This is the one place Junction works around it;
// every writer of the JSON format calls Marshal. Data that is not valid
// JSON is written as a string, as sdk-go does.
func Marshal(e *event.Event) ([]byte, error) {
	if !plusJSON(e) {
		return e.MarshalJSON()
	}
	c := *e
	c.DataEncoded = nil
	b, err := c.MarshalJSON()
	if err != nil {
		return nil, err
	}
	// b is an object ending in '}' with at least specversion in it.
	out := make([]byte, 0, len(b)+len(e.DataEncoded)+8)
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"data":`...)
	out = append(out, e.DataEncoded...)
	return append(out, '}'), nil
}

// Write writes e to w as Marshal does: with event.WriteJson, without a
// copy, unless its data is */*+json.
func Write(e *event.Event, w io.Writer) error {
	if !plusJSON(e) {
		return event.WriteJson(e, w)
	}
	b, err := Marshal(e)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// plusJSON reports whether e's data is JSON that sdk-go would write as a
// string.
func plusJSON(e *event.Event) bool {
	if len(e.DataEncoded) == 0 || e.DataBase64 {
		return false
	}
	ct := e.DataContentType()
	if ct == "" || !IsJSON(ct) {
		return false
	}
	switch MediaType(ct) {
	case event.ApplicationJSON, event.TextJSON:
		return false
	}
	if c, ok := e.Context.(*event.EventContextV03); ok && c.DataContentEncoding != nil {
		return false
	}
	return json.Valid(e.DataEncoded)
}

// prepared is raw made fit for sdk-go's reader: members whose value is
// null dropped (JSON format 2.2: "When decoding attributes and a null value
// is encountered, it MUST be treated as the equivalent of unset or
// omitted"; sdk-go reads "datacontenttype": null as an empty, invalid
// media type) and JSON data of a media type sdk-go does not know as JSON
// (*/*+json) replaced by "" and returned apart, to be set as the data as
// it is (JSON format 3.1.2). It refuses a member name that is not a valid
// attribute name (sdk-go lower-cases them), an empty subject or dataschema
// (sdk-go takes "" for unset), and an event with both data and
// data_base64 (3.1.1: "the presence of the data and data_base64 members
// is mutually exclusive").
type prepared struct {
	raw     []byte
	data    []byte
	hasData bool
}

func prepare(raw []byte) (prepared, error) {
	p := prepared{raw: raw}
	var (
		dct, dataVal       []byte
		hasData, hasBase64 bool
		nulls              int
	)
	it := memberIter{raw: raw}
	for it.next() {
		rawName, value := it.name, it.value
		if bytes.IndexByte(rawName, '\\') >= 0 {
			name, ok := memberName(rawName)
			if !ok {
				return p, nil // sdk-go says what is wrong
			}
			rawName = []byte(`"` + name + `"`)
		}
		name := rawName[1 : len(rawName)-1]
		isNull := string(value) == "null"
		switch string(name) {
		case "data":
			hasData, dataVal = true, value
			continue
		case "data_base64":
			hasBase64 = !isNull
		case "subject", "dataschema":
			// sdk-go reads "" as unset.
			if isBlankString(value) {
				what := "string"
				if string(name) == "dataschema" {
					what = "URI"
				}
				return p, event.ValidationError{string(name): fmt.Errorf("if present, MUST be a non-empty %s", what)}
			}
		case "datacontenttype":
			dct = value
		default:
			if !validNameBytes(name) {
				// sdk-go lower-cases the names it reads.
				return p, event.ValidationError{string(name): errBadName}
			}
		}
		if isNull {
			nulls++
		}
	}
	if !it.ok {
		return p, nil // sdk-go says what is wrong
	}
	if hasData && hasBase64 {
		return p, event.ValidationError{"data": errors.New("data and data_base64 are mutually exclusive (JSON format 3.1.1)")}
	}
	swap := false
	if hasData && len(dct) > 0 && dct[0] == '"' && string(dataVal) != "null" && bytes.Contains(dct, []byte("json")) &&
		!bytes.EqualFold(dct, []byte(`"application/json"`)) && !bytes.EqualFold(dct, []byte(`"text/json"`)) {
		// Not the common application/json: see what it is.
		var ct string
		if json.Unmarshal(dct, &ct) == nil {
			// Invalid JSON is left to sdk-go, which refuses it.
			swap = IsJSON(ct) && !sdkJSON(ct) && json.Valid(dataVal)
		}
	}
	if nulls == 0 && !swap {
		return p, nil
	}
	out := make([]byte, 0, len(raw))
	out = append(out, '{')
	n := 0
	it = memberIter{raw: raw}
	for it.next() {
		isData := string(it.name) == `"data"`
		if string(it.value) == "null" && !isData {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, it.name...)
		out = append(out, ':')
		if isData && swap {
			out = append(out, `""`...)
			continue
		}
		out = append(out, it.value...)
	}
	out = append(out, '}')
	p.raw = out
	if swap {
		p.data, p.hasData = dataVal, true
	}
	return p, nil
}

// validNameBytes is validName for bytes.
func validNameBytes(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// memberIter walks the members of the JSON object at the start of raw as
// members does, without a callback (no allocation). After next returns
// false, ok tells whether the whole object was read.
type memberIter struct {
	raw         []byte
	i           int
	started     bool
	ok          bool
	name, value []byte
}

func (m *memberIter) next() bool {
	raw := m.raw
	i := m.i
	if !m.started {
		m.started = true
		i = ws(raw, 0)
		if i >= len(raw) || raw[i] != '{' {
			return false
		}
		i = ws(raw, i+1)
		if i < len(raw) && raw[i] == '}' {
			m.ok = true
			return false
		}
	} else {
		i = ws(raw, i)
		if i >= len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i = ws(raw, i+1)
		case '}':
			m.ok = true
			return false
		default:
			return false
		}
	}
	if i >= len(raw) || raw[i] != '"' {
		return false
	}
	j := skipString(raw, i)
	if j < 0 {
		return false
	}
	m.name = raw[i:j]
	i = ws(raw, j)
	if i >= len(raw) || raw[i] != ':' {
		return false
	}
	i = ws(raw, i+1)
	j = skipValue(raw, i)
	if j <= i {
		return false
	}
	m.value = raw[i:j]
	m.i = j
	return true
}

// sdkJSON reports whether sdk-go reads data of datacontenttype ct as JSON.
func sdkJSON(ct string) bool {
	switch MediaType(ct) {
	case event.ApplicationJSON, event.TextJSON, "application/cloudevents+json", "application/cloudevents-batch+json":
		return true
	}
	return false
}

// isBlankString reports whether v, a JSON value, is a string of spaces
// only (or empty).
func isBlankString(v []byte) bool {
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return len(bytes.TrimSpace(v[1:len(v)-1])) == 0
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return false
	}
	return strings.TrimSpace(s) == ""
}
