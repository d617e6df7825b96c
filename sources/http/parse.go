package httpsource

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/sources"
)

// Media types of the CloudEvents JSON event formats.
const (
	// ContentTypeStructured is the media type of one event in structured mode.
	ContentTypeStructured = "application/cloudevents+json"
	// ContentTypeBatch is the media type of a batch of events.
	ContentTypeBatch = "application/cloudevents-batch+json"
)

// MaxBatchEvents is the largest number of events one batch request may hold;
// a longer batch is refused whole with 400.
const MaxBatchEvents = 1000

// RequestError is why a request was refused: the HTTP status to answer, a
// one-line reason for the body and a label for the rejected-events metric.
type RequestError struct {
	// Status is the HTTP status code: 400, 413 or 415.
	Status int
	// Reason is one line of text, bounded, without control characters (see
	// sources.OneLine).
	Reason string
	// Label is the metric label, one of the sources.Reason* constants.
	Label string
}

// Error returns the reason.
func (e *RequestError) Error() string { return e.Reason }

func malformed(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Reason: sources.OneLine(fmt.Sprintf(format, args...)), Label: sources.ReasonMalformed}
}

// ParseRequest reads the CloudEvents in one HTTP request: structured mode
// (Content-Type application/cloudevents+json), batch mode
// (application/cloudevents-batch+json) or binary mode (a ce-specversion
// header; the Content-Type is then the data's). header is expected in the
// canonical form net/http gives it. Every event returned has passed
// event.Validate; on error no event is returned.
//
// The events may share memory with body (binary mode uses it as the data
// without a copy), so body must not be changed afterwards.
func ParseRequest(header http.Header, body []byte) ([]*event.Event, *RequestError) {
	ct := first(header["Content-Type"])
	mt := cejson.MediaType(ct)
	switch {
	case strings.EqualFold(mt, ContentTypeStructured):
		if err := checkJSON(body); err != nil {
			return nil, err
		}
		b := trimSpace(body)
		if len(b) == 0 || b[0] != '{' {
			return nil, malformed("expected a JSON object (one structured CloudEvent), got %s", jsonKind(b))
		}
		e, err := parseStructured(b, "")
		if err != nil {
			return nil, err
		}
		return []*event.Event{e}, nil
	case strings.EqualFold(mt, ContentTypeBatch):
		return parseBatch(body)
	case hasPrefixFold(mt, "application/cloudevents"):
		return nil, &RequestError{
			Status: http.StatusUnsupportedMediaType,
			Reason: sources.OneLine(fmt.Sprintf("unsupported event format %s: use %s or %s", quote(mt), ContentTypeStructured, ContentTypeBatch)),
			Label:  sources.ReasonUnsupportedMedia,
		}
	}
	if _, ok := header["Ce-Specversion"]; ok {
		e, err := parseBinary(header, ct, body)
		if err != nil {
			return nil, err
		}
		return []*event.Event{e}, nil
	}
	got := "no Content-Type"
	if ct != "" {
		got = "Content-Type " + quote(mt)
	}
	return nil, &RequestError{
		Status: http.StatusUnsupportedMediaType,
		Reason: sources.OneLine(fmt.Sprintf("not a CloudEvent (%s and no ce-specversion header): send %s, %s, or binary mode with ce-specversion, ce-id, ce-source and ce-type headers", got, ContentTypeStructured, ContentTypeBatch)),
		Label:  sources.ReasonUnsupportedMedia,
	}
}

// parseBatch reads a JSON array of structured events.
func parseBatch(body []byte) ([]*event.Event, *RequestError) {
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	b := trimSpace(body)
	if len(b) == 0 || b[0] != '[' {
		return nil, malformed("batch: expected a JSON array of events, got %s", jsonKind(b))
	}
	var items [][]byte
	i := skipWS(b, 1)
	for i < len(b) && b[i] != ']' {
		start := i
		i = skipValue(b, i)
		if i == start {
			return nil, malformed("batch: expected a JSON array of events")
		}
		if len(items) == MaxBatchEvents {
			return nil, malformed("batch: more than %d events; send at most %d per request", MaxBatchEvents, MaxBatchEvents)
		}
		items = append(items, b[start:i])
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	// HTTP binding 3.3.2: "The batch MAY be empty."
	if len(items) == 0 {
		return []*event.Event{}, nil
	}
	events := make([]*event.Event, len(items))
	for n, raw := range items {
		if raw[0] != '{' {
			return nil, malformed("event[%d]: expected a JSON object, got %s", n, jsonKind(raw))
		}
		e, err := parseStructured(raw, fmt.Sprintf("event[%d]: ", n))
		if err != nil {
			return nil, err
		}
		// HTTP binding 3.3.2: "All batched CloudEvents MUST have the same
		// specversion attribute."
		if n > 0 && e.SpecVersion() != events[0].SpecVersion() {
			return nil, malformed("event[%d]: specversion %s differs from event[0]'s %s: all events of a batch must have the same specversion", n, quote(e.SpecVersion()), quote(events[0].SpecVersion()))
		}
		events[n] = e
	}
	return events, nil
}

// parseStructured reads one event in the JSON format from raw, a JSON
// object known to be valid JSON. where prefixes reasons ("event[3]: ").
func parseStructured(raw []byte, where string) (*event.Event, *RequestError) {
	e := new(event.Event)
	err := unmarshal(e, raw)
	if err == nil {
		err = e.Validate()
	}
	if err == nil {
		err = cejson.Check(e)
	}
	if err == nil {
		return e, nil
	}
	return nil, malformed("%s%s", where, describe(raw, err))
}

// unmarshal is event.UnmarshalJSON made safe (some malformed input makes the
// SDK panic) and strict: an extension value that is not a CloudEvents value
// (1.5, 1e400, an object) is an error, not truncated. See cejson.Unmarshal.
func unmarshal(e *event.Event, raw []byte) error { return cejson.Unmarshal(e, raw) }

// v1Attrs and v03Attrs are the context attributes of each specversion
// (besides data and data_base64).
var (
	v1Attrs  = map[string]bool{"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true, "datacontenttype": true, "dataschema": true}
	v03Attrs = map[string]bool{"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true, "datacontenttype": true, "schemaurl": true, "datacontentencoding": true}
)

// describe explains why the SDK refused raw, naming the attribute. It runs
// only on the error path, so it may be slow.
func describe(raw []byte, sdkErr error) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "expected a JSON object"
	}
	svRaw, ok := m["specversion"]
	if !ok {
		return `missing required attribute "specversion"`
	}
	sv, ok := jsonString(svRaw)
	if !ok {
		return `invalid attribute "specversion": must be a string`
	}
	attrs := v1Attrs
	switch sv {
	case event.CloudEventsVersionV1:
	case event.CloudEventsVersionV03:
		attrs = v03Attrs
	default:
		return unsupportedVersion(sv)
	}
	for _, a := range []string{"id", "source", "type"} {
		v, ok := m[a]
		if !ok {
			return fmt.Sprintf("missing required attribute %q", a)
		}
		s, ok := jsonString(v)
		if !ok {
			return fmt.Sprintf("invalid attribute %q: must be a string", a)
		}
		if strings.TrimSpace(s) == "" {
			return fmt.Sprintf("missing required attribute %q: must be a non-empty string", a)
		}
	}
	src, _ := jsonString(m["source"])
	if _, err := url.Parse(src); err != nil {
		return `invalid attribute "source": not a URI-reference`
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if attrs[k] {
			if string(v) == "null" {
				continue
			}
			s, ok := jsonString(v)
			if !ok {
				return fmt.Sprintf("invalid attribute %q: must be a string", k)
			}
			if msg := checkAttr(k, s); msg != "" {
				return fmt.Sprintf("invalid attribute %q: %s", k, msg)
			}
			continue
		}
		switch k {
		case "data":
			continue
		case "data_base64":
			s, ok := jsonString(v)
			if !ok {
				return `invalid member "data_base64": must be a base64 string`
			}
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				return `invalid member "data_base64": not valid base64`
			}
			continue
		}
		if !event.IsExtensionNameValid(k) {
			return fmt.Sprintf("invalid attribute name %s: use only letters a-z and digits", quote(k))
		}
		if attrs[strings.ToLower(k)] {
			return fmt.Sprintf("invalid attribute name %s: attribute names are lower case", quote(k))
		}
		if err := cejson.CheckExtension(v); err != nil {
			return fmt.Sprintf("invalid attribute %q: %v", k, err)
		}
	}
	dct, _ := jsonString(m["datacontenttype"])
	if d, ok := m["data"]; ok && len(d) > 0 && d[0] != '"' && string(d) != "null" && !cejson.IsJSON(cejson.MediaType(dct)) {
		return fmt.Sprintf(`invalid member "data": must be a JSON string when datacontenttype is %s (not JSON)`, quote(dct))
	}
	return sources.EventReason(sdkErr)
}

// checkAttr checks the value of an optional context attribute.
func checkAttr(name, s string) string {
	switch name {
	case "time":
		if s == "" {
			return ""
		}
		if _, err := types.ParseTime(s); err != nil {
			return "not an RFC 3339 timestamp"
		}
	case "datacontenttype":
		if strings.TrimSpace(s) == "" {
			return "must be a non-empty media type"
		}
		if err := cejson.CheckMediaType(s); err != nil {
			return err.Error()
		}
	case "dataschema":
		if strings.TrimSpace(s) == "" {
			return "must be a non-empty URI"
		}
		if u, err := url.Parse(s); err != nil || !u.IsAbs() {
			return "not an absolute URI"
		}
	case "schemaurl":
		if _, err := url.Parse(s); err != nil {
			return "not a URI-reference"
		}
	case "datacontentencoding":
		if s != event.Base64 {
			return `the only allowed value is "base64"`
		}
	case "subject":
		if strings.TrimSpace(s) == "" {
			return "must be a non-empty string"
		}
	}
	return ""
}

func unsupportedVersion(sv string) string {
	return fmt.Sprintf("unsupported specversion %s (use %s or %s)", quote(sv), event.CloudEventsVersionV1, event.CloudEventsVersionV03)
}

// parseBinary builds an event from ce- headers with cebinding.Reader; ct
// is the Content-Type (the data's media type) and body the data.
func parseBinary(h http.Header, ct string, body []byte) (*event.Event, *RequestError) {
	svs := h["Ce-Specversion"]
	if len(svs) != 1 {
		return nil, malformed("header ce-specversion given %d times", len(svs))
	}
	r, err := cebinding.NewReader(strings.TrimSpace(svs[0]))
	if err != nil {
		return nil, malformed("%v", cebinding.At(err, "header ce-specversion"))
	}
	if _, ok := h["Ce-"]; ok {
		// A header "ce-" alone names no attribute.
		return nil, malformed("%v", &cebinding.AttrError{Where: "header ce-", Err: cebinding.ErrName})
	}
	for k, name := range cebinding.SortedHeaders(h, "ce-") {
		vs := h[k]
		if len(vs) != 1 {
			return nil, malformed("header %s given %d times", headerName(k), len(vs))
		}
		v, err := cebinding.LenientHeaderValue(vs[0])
		if err != nil {
			return nil, malformed("%v", &cebinding.AttrError{Name: strings.ToLower(name), Where: "header " + headerName(k), Err: err})
		}
		if err := r.SetString(name, v); err != nil {
			return nil, malformed("%v", cebinding.At(err, "header "+headerName(k)))
		}
	}
	ec, err := r.Context("header ce-")
	if err != nil {
		return nil, malformed("%v", err)
	}
	if ct != "" {
		_ = ec.SetDataContentType(ct)
	}
	e := &event.Event{Context: ec}
	if len(body) > 0 {
		e.DataEncoded = body
		// The event is journaled in the JSON format: JSON data must be
		// JSON, and bytes that are not text travel as data_base64.
		switch mt := cejson.MediaType(ct); {
		case mt != "" && cejson.IsJSON(mt):
			if !sources.ValidJSON(body) {
				return nil, malformed("data is not valid JSON, but content-type is %s", quote(mt))
			}
		case mt == "":
			e.DataBase64 = !sources.ValidJSON(body)
		default:
			e.DataBase64 = !utf8.Valid(body)
		}
	}
	err = e.Validate()
	if err == nil {
		err = cejson.Check(e)
	}
	if err != nil {
		var ve event.ValidationError
		if errors.As(err, &ve) && ve["datacontenttype"] != nil {
			return nil, malformed(`invalid attribute "datacontenttype" (header content-type): not a media type (RFC 2046)`)
		}
		return nil, malformed("%s", sources.EventReason(err))
	}
	return e, nil
}

// headerName is the lower-case name of header k, bounded, for reasons.
func headerName(k string) string {
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	return strings.ToLower(k)
}

// checkJSON refuses a body that is not valid JSON, saying where.
func checkJSON(body []byte) *RequestError {
	if sources.ValidJSON(body) {
		return nil
	}
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	switch {
	case len(trimSpace(body)) == 0:
		return malformed("malformed JSON: empty body")
	case errors.As(err, &se):
		return malformed("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case err != nil:
		return malformed("malformed JSON: %s", err.Error())
	case !utf8.Valid(body):
		return malformed("malformed JSON: not valid UTF-8")
	}
	return malformed("malformed JSON: nested more than %d deep", sources.MaxJSONDepth)
}

// jsonKind names the kind of the JSON value that b starts with.
func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// jsonString returns the string that the JSON value v holds.
func jsonString(v json.RawMessage) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	i := skipWS(b, 0)
	j := len(b)
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// skipValue returns the index just past the JSON value that starts at b[i].
// b must be valid JSON; on anything else it stops without reading past b.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// skipString returns the index just past the JSON string at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// quote quotes an untrusted value for a reason, bounded.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
