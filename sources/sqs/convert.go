package sqssource

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/sources"
)

// malformed says why a message that claims to be a CloudEvent is not a
// valid one. id is the event id when it could be read.
type malformed struct {
	id     string
	reason string
}

func malformedf(id, format string, args ...any) *malformed {
	return &malformed{id: id, reason: bounded(fmt.Sprintf(format, args...))}
}

// Binary-mode message attributes, as the sqs sink writes them: every
// context attribute and extension as ce-<name>, datacontenttype as
// content-type.
const (
	attrPrefix      = "ce-"
	attrContentType = "content-type"
)

// maxExtensionName is the longest extension name taken from a message
// attribute (the CloudEvents spec's recommended limit).
const maxExtensionName = 20

// reserved are the names an extension cannot have.
var reserved = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// toEvent makes the CloudEvent of a message: a binary-mode CloudEvent when
// it has a ce-specversion attribute, a structured one when its body is a
// JSON object with a specversion member, else the message wrapped.
func (s *Source) toEvent(m *types.Message) (*event.Event, *malformed) {
	body := aws.ToString(m.Body)
	svKey, err := cebinding.SpecVersionKey(m.MessageAttributes, "message attribute", attrPrefix)
	if err != nil {
		return nil, malformedf(binaryID(m), "%v", err)
	}
	if svKey != "" {
		return binaryEvent(m, svKey, body)
	}
	if claimsStructured(body) {
		return structuredEvent(body)
	}
	return s.wrap(m, body)
}

// claimsStructured reports whether body claims to be a structured
// CloudEvent: a JSON object with a top-level specversion member. A body that
// starts like a JSON object and mentions "specversion" but is not valid JSON
// claims it too (and is then malformed).
func claimsStructured(body string) bool {
	t := strings.TrimLeft(body, " \t\r\n")
	if !strings.HasPrefix(t, "{") || !strings.Contains(t, `"specversion"`) {
		return false
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(t), &top); err != nil {
		return true
	}
	_, ok := top["specversion"]
	return ok
}

// structuredEvent parses a structured-mode CloudEvent.
func structuredEvent(body string) (e *event.Event, bad *malformed) {
	raw := []byte(body)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, malformedf("", "body claims to be a CloudEvent but is not valid JSON: %v", jsonReason(err))
	}
	id := ""
	if v, ok := top["id"]; ok {
		_ = json.Unmarshal(v, &id)
	}
	e = new(event.Event)
	defer func() {
		if r := recover(); r != nil {
			e, bad = nil, malformedf(id, "cannot read the CloudEvent")
		}
	}()
	// Strict: an extension value that is not a CloudEvents value (1.5,
	// 1e400, an object) is malformed, not truncated.
	if err := cejson.Unmarshal(e, raw); err != nil {
		return nil, malformedf(id, "%s", sdkReason(err))
	}
	if err := validate(e); err != nil {
		return nil, malformedf(id, "%s", sdkReason(err))
	}
	return e, nil
}

// validate is e.Validate and the core rules it misses (cejson.Check).
func validate(e *event.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return cejson.Check(e)
}

// binaryEvent reads a binary-mode CloudEvent: attributes from ce-*
// message attributes (the prefix in any case, as every transport reads
// it) with cebinding.Reader, datacontenttype from content-type, data from
// the body. svKey is the specversion's message attribute.
func binaryEvent(m *types.Message, svKey, body string) (*event.Event, *malformed) {
	id := binaryID(m)
	sv, _ := attrString(m.MessageAttributes[svKey])
	r, err := cebinding.NewReader(sv)
	if err != nil {
		return nil, malformedf(id, "%v", cebinding.At(err, "message attribute "+svKey))
	}
	for k, name := range cebinding.SortedHeaders(m.MessageAttributes, attrPrefix) {
		where := "message attribute " + k
		v, ok := attrValue(m.MessageAttributes[k])
		if !ok {
			return nil, malformedf(id, "%v", &cebinding.AttrError{Name: strings.ToLower(name), Where: where, Err: errors.New("must be a String or a Number")})
		}
		if err := r.Set(name, v); err != nil {
			return nil, malformedf(id, "%v", cebinding.At(err, where))
		}
	}
	ec, err := r.Context("message attribute " + attrPrefix)
	if err != nil {
		return nil, malformedf(id, "%v", err)
	}
	if v, ok := m.MessageAttributes[attrContentType]; ok {
		ct, ok := attrString(v)
		if !ok {
			return nil, malformedf(id, "message attribute %s must be a String", attrContentType)
		}
		_ = ec.SetDataContentType(ct)
	}
	e := &event.Event{Context: ec}
	if body != "" {
		e.DataEncoded = []byte(body)
	}
	if err := validate(e); err != nil {
		return nil, malformedf(id, "%s", sdkReason(err))
	}
	return e, nil
}

// binaryID is the event id of a binary-mode message, for a malformed
// one's reason: its ce-id String attribute, the prefix in any case.
func binaryID(m *types.Message) string {
	for k, name := range cebinding.SortedHeaders(m.MessageAttributes, attrPrefix) {
		if strings.EqualFold(name, "id") {
			id, _ := attrString(m.MessageAttributes[k])
			return id
		}
	}
	return ""
}

// wrap makes a CloudEvent of a plain message: id is the message id, source
// the queue, type the configured one, time the sent time; the body is the
// data (application/json when it is JSON, else text/plain); String and
// Number message attributes with valid names become extensions.
func (s *Source) wrap(m *types.Message, body string) (*event.Event, *malformed) {
	id := aws.ToString(m.MessageId)
	ec := &event.EventContextV1{}
	_ = ec.SetID(id)
	_ = ec.SetSource(s.source)
	_ = ec.SetType(s.eventType)
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil && ms > 0 {
		_ = ec.SetTime(time.UnixMilli(ms).UTC())
	}
	raw := []byte(body)
	if json.Valid(raw) {
		_ = ec.SetDataContentType(event.ApplicationJSON)
	} else {
		_ = ec.SetDataContentType(event.TextPlain)
	}
	for name, v := range m.MessageAttributes {
		if !validExtensionName(name) {
			s.log.Debug("sqs message attribute dropped: not a CloudEvents extension name (a-z, 0-9, at most 20)", "message_id", id, "attribute", bounded(name))
			continue
		}
		val, ok := attrValue(v)
		if !ok {
			s.log.Debug("sqs message attribute dropped: only String and Number attributes become extensions", "message_id", id, "attribute", name)
			continue
		}
		if name == "subject" {
			_ = ec.SetSubject(fmt.Sprint(val))
			continue
		}
		if reserved[name] {
			s.log.Debug("sqs message attribute dropped: the name of a context attribute", "message_id", id, "attribute", name)
			continue
		}
		if err := ec.SetExtension(name, val); err != nil {
			s.log.Debug("sqs message attribute dropped", "message_id", id, "attribute", name, "err", err)
		}
	}
	e := &event.Event{Context: ec, DataEncoded: raw}
	if err := e.Validate(); err != nil {
		return nil, malformedf(id, "cannot wrap the message: %s", sdkReason(err))
	}
	return e, nil
}

// validExtensionName reports whether name is a CloudEvents attribute name
// as the spec recommends it: a-z and 0-9, at most 20 characters.
func validExtensionName(name string) bool {
	if name == "" || len(name) > maxExtensionName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// attrString returns a String (or custom String.x) attribute's value.
func attrString(v types.MessageAttributeValue) (string, bool) {
	if baseType(v) != "String" || v.StringValue == nil {
		return "", false
	}
	return *v.StringValue, true
}

// attrValue returns a String attribute as a string and a Number attribute
// as an int32 when it is an integer in range, else as its string form.
func attrValue(v types.MessageAttributeValue) (any, bool) {
	if v.StringValue == nil {
		return nil, false
	}
	switch baseType(v) {
	case "String":
		return *v.StringValue, true
	case "Number":
		n, err := strconv.ParseInt(strings.TrimSpace(*v.StringValue), 10, 64)
		if err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
			return int32(n), true
		}
		return *v.StringValue, true
	}
	return nil, false
}

// baseType is an attribute's data type without its custom suffix
// ("Number.float" → "Number").
func baseType(v types.MessageAttributeValue) string {
	t := aws.ToString(v.DataType)
	if i := strings.IndexByte(t, '.'); i >= 0 {
		t = t[:i]
	}
	return t
}

// sdkReason turns an SDK parse or validation error into a reason naming
// the attribute (bounded by malformedf).
func sdkReason(err error) string { return sources.EventError(err, "invalid CloudEvent: ") }

// jsonReason describes a JSON syntax error without quoting the input.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "not a JSON object"
	}
	return err.Error()
}
