package cebinding

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/text"
)

// The reasons a Reader gives in an *AttrError. Test for them with
// errors.Is; the other reasons (a value that is not a URI, not a
// timestamp, of the wrong type ...) are plain errors.
var (
	// ErrMissing is the reason for a required attribute (id, source, type)
	// that the message does not carry.
	ErrMissing = errors.New("missing")
	// ErrEmpty is the reason for an empty (or all white space) id, source,
	// type, subject, dataschema or schemaurl.
	ErrEmpty = errors.New("must be non-empty")
	// ErrName is the reason for a name that is not lower-case letters and
	// digits once lower-cased.
	ErrName = errors.New("use only letters a-z and digits")
	// ErrReserved is the reason for the name data, which no attribute may
	// have.
	ErrReserved = errors.New(`reserved: CloudEvent attributes MUST NOT have the name "data"`)
	// ErrContentType is the reason for a datacontenttype attribute: in
	// binary mode the message's own content type carries it.
	ErrContentType = errors.New("in binary mode the message's content-type is the datacontenttype; it MUST NOT be present as an attribute")
	// ErrDuplicate is the reason for an attribute given twice, under names
	// that differ only in case or prefix.
	ErrDuplicate = errors.New("given twice (names that differ only in case or prefix)")
	// ErrSpecVersion is the reason NewReader gives for a specversion other
	// than 1.0 and 0.3.
	ErrSpecVersion = errors.New("unsupported value")
)

// maxQuoted bounds a name or value quoted in an AttrError.
const maxQuoted = 64

// AttrError is why a Reader refused a message's attribute. Its text names
// the attribute and, once the transport has said it with At, where the
// message carried it:
//
//	missing required attribute "id" (header ce-id)
//	invalid attribute name "my-ext" (header ce-my-ext): use only letters a-z and digits
//	invalid attribute "time" (header ce-time): not an RFC 3339 timestamp: "noon"
type AttrError struct {
	// Name is the attribute's name, lower-cased.
	Name string
	// Where is the place in the message, such as "header ce-time" or
	// "message attribute ce-time": set by At, or by Context for a missing
	// attribute.
	Where string
	// Err is the reason: one of the Err* values above, ErrNotUTF8, or
	// another error saying what is wrong with the value.
	Err error
}

// Error returns one line: the attribute, where it was and why.
func (e *AttrError) Error() string {
	where := ""
	if e.Where != "" {
		where = " (" + text.OneLine(e.Where, maxQuoted) + ")"
	}
	name := fmt.Sprintf("%q", text.OneLine(e.Name, maxQuoted))
	switch {
	case errors.Is(e.Err, ErrMissing):
		return "missing required attribute " + name + where
	case errors.Is(e.Err, ErrName), errors.Is(e.Err, ErrReserved):
		return "invalid attribute name " + name + where + ": " + e.Err.Error()
	}
	return "invalid attribute " + name + where + ": " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *AttrError) Unwrap() error { return e.Err }

// At returns err with where, the place of the attribute in the message
// ("header ce-time"), put into it when it is an *AttrError, and err
// prefixed with where otherwise.
func At(err error, where string) error {
	var ae *AttrError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s: %w", where, err)
	}
	located := *ae
	located.Where = where
	return &located
}

// Context attributes a Reader has set, to find a missing or repeated one.
const (
	seenID uint8 = 1 << iota
	seenSource
	seenType
	seenSubject
	seenTime
	seenSchema   // dataschema (1.0) or schemaurl (0.3)
	seenEncoding // datacontentencoding (0.3)
)

// Reader builds the context of an event read in binary mode from its
// attributes, one at a time, with the rules of the CloudEvents 1.0.2 core
// specification (and 0.3 for events of that version), the same for every
// transport:
//
//   - names are compared without regard to case and lower-cased, on every
//     transport (HTTP, NATS, AMQP, SQS): the spec makes every name
//     lower-case letters and digits precisely so that hops that change the
//     case of metadata names (HTTP, JMS-style clients) lose nothing; two
//     names that meet once lower-cased are refused (ErrDuplicate), and so
//     are a name of other characters (ErrName) and data (ErrReserved);
//   - id, source and type are required and non-empty; subject and
//     dataschema (schemaurl in 0.3) are non-empty when present; source is a
//     URI-reference, dataschema an absolute URI, time RFC 3339;
//   - datacontenttype is refused (ErrContentType): it is the message's
//     content-type;
//   - context attributes are strings (UTF-8 bytes are taken as a string,
//     and time may be a time.Time); extensions keep the native types a
//     transport has (bool, integers within 32 bits, []byte, time.Time),
//     else they are strings.
//
// The transport walks its headers (see SortedHeaders), decodes each value
// as its binding says, calls Set and says where with At, then calls
// Context. A Reader is not safe for concurrent use.
type Reader struct {
	ec   event.EventContext
	v03  bool
	seen uint8
}

// NewReader returns a Reader for an event of specversion (1.0 or 0.3).
// Another version is an *AttrError for specversion (ErrSpecVersion).
func NewReader(specversion string) (*Reader, error) {
	switch specversion {
	case event.CloudEventsVersionV1:
		return &Reader{ec: &event.EventContextV1{}}, nil
	case event.CloudEventsVersionV03:
		return &Reader{ec: &event.EventContextV03{}, v03: true}, nil
	}
	return nil, &AttrError{Name: "specversion", Err: fmt.Errorf("%w %q (use 1.0 or 0.3)", ErrSpecVersion, text.OneLine(specversion, maxQuoted))}
}

// Set sets the attribute name, compared without regard to case, to v: a
// string, UTF-8 []byte or, for time and extensions, a native value (see
// Reader). specversion is NewReader's and is skipped, and so is a nil v
// (no value: the attribute stays unset). The error is an *AttrError.
func (r *Reader) Set(name string, v any) error {
	if v == nil {
		return nil
	}
	if s, ok := v.(string); ok {
		return r.SetString(name, s)
	}
	return r.set(name, "", v)
}

// SetString is Set of a string value without putting it in an interface
// (an allocation for each attribute), for transports whose values are all
// strings (HTTP, NATS).
func (r *Reader) SetString(name, s string) error {
	return r.set(name, s, nil)
}

// set sets name to native, or to s when native is nil.
func (r *Reader) set(name, s string, native any) error {
	name = lower(name)
	if name == "specversion" {
		return nil
	}
	if err := r.setLower(name, s, native); err != nil {
		return &AttrError{Name: name, Err: err}
	}
	return nil
}

func (r *Reader) setLower(name, s string, native any) error {
	var bit uint8
	switch {
	case name == "id":
		bit = seenID
	case name == "source":
		bit = seenSource
	case name == "type":
		bit = seenType
	case name == "subject":
		bit = seenSubject
	case name == "time":
		bit = seenTime
	case name == "dataschema" && !r.v03, name == "schemaurl" && r.v03:
		bit = seenSchema
	case name == "datacontentencoding" && r.v03:
		bit = seenEncoding
	case name == "datacontenttype":
		return ErrContentType
	default:
		return r.setExtension(name, s, native)
	}
	if r.seen&bit != 0 {
		return ErrDuplicate
	}
	r.seen |= bit
	if t, ok := native.(time.Time); ok && bit == seenTime {
		return r.ec.SetTime(t)
	}
	if native != nil {
		b, ok := native.([]byte)
		if !ok {
			return fmt.Errorf("must be a string, not %s", typeName(native))
		}
		s = string(b)
	}
	if !utf8.ValidString(s) {
		return ErrNotUTF8
	}
	if strings.TrimSpace(s) == "" && bit != seenTime && bit != seenEncoding {
		// sdk-go takes "" for unset, or trims it to nothing.
		return ErrEmpty
	}
	switch bit {
	case seenID:
		return r.ec.SetID(s)
	case seenSource:
		if err := checkRef(s); err != nil {
			return err
		}
		return r.ec.SetSource(s)
	case seenType:
		return r.ec.SetType(s)
	case seenSubject:
		return r.ec.SetSubject(s)
	case seenTime:
		t, err := types.ParseTime(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("not an RFC 3339 timestamp: %q", text.OneLine(s, maxQuoted))
		}
		return r.ec.SetTime(t)
	case seenSchema:
		// 1.0 dataschema is a URI (absolute), 0.3 schemaurl a URI-reference.
		if r.v03 {
			if err := checkRef(strings.TrimSpace(s)); err != nil {
				return err
			}
		} else if u, err := url.Parse(strings.TrimSpace(s)); err != nil || !u.IsAbs() {
			return fmt.Errorf("not an absolute URI: %q", text.OneLine(s, maxQuoted))
		}
		return r.ec.SetDataSchema(s)
	}
	if !strings.EqualFold(strings.TrimSpace(s), event.Base64) {
		return fmt.Errorf("the only allowed value is %q", event.Base64)
	}
	return r.ec.DeprecatedSetDataContentEncoding(s)
}

// setExtension sets the extension name to native, or to s when native is
// nil.
func (r *Reader) setExtension(name, s string, native any) error {
	switch {
	case !ValidName(name):
		return ErrName
	case name == "data":
		return ErrReserved
	}
	if _, err := r.ec.GetExtension(name); err == nil {
		return ErrDuplicate
	}
	var val any
	switch x := native.(type) {
	case nil:
		if !utf8.ValidString(s) {
			return ErrNotUTF8
		}
		val = s
	case bool, []byte, int32:
		val = x
	case int, int8, int16, int64, uint, uint8, uint16, uint32, uint64:
		n, ok := toInt64(x)
		if !ok || n < math.MinInt32 || n > math.MaxInt32 {
			return errors.New("integer out of range (CloudEvents integers are 32-bit)")
		}
		val = int32(n)
	case time.Time:
		val = types.Timestamp{Time: x}
	default:
		return fmt.Errorf("unsupported value type %s (use a string, boolean, integer, binary or timestamp)", typeName(native))
	}
	return r.ec.SetExtension(name, val)
}

// Context returns the event context once every attribute is set. A
// required attribute that was not set is an *AttrError with ErrMissing,
// for id, source and type in that order, placed at at+name: at is where
// the transport carries attributes, without the name ("header ce-").
func (r *Reader) Context(at string) (event.EventContext, error) {
	for _, req := range [...]struct {
		bit  uint8
		name string
	}{{seenID, "id"}, {seenSource, "source"}, {seenType, "type"}} {
		if r.seen&req.bit == 0 {
			return nil, &AttrError{Name: req.name, Where: at + req.name, Err: ErrMissing}
		}
	}
	return r.ec, nil
}

// checkRef checks that s is a URI-reference that sdk-go keeps: it holds
// the parsed form, and one such as "#" or "?" reads back as "".
func checkRef(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URI-reference: %q", text.OneLine(s, maxQuoted))
	}
	if strings.TrimSpace(u.String()) == "" {
		return fmt.Errorf("%w (%q is an empty URI-reference)", ErrEmpty, text.OneLine(s, maxQuoted))
	}
	return nil
}

// toInt64 converts an integer of any Go type; ok is false for a uint or
// uint64 above the int64 range.
func toInt64(v any) (n int64, ok bool) {
	rv := reflect.ValueOf(v)
	if rv.CanInt() {
		return rv.Int(), true
	}
	u := rv.Uint()
	return int64(u), u <= math.MaxInt64
}

// typeName names the type of v for a reason.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case []byte:
		return "binary"
	case bool:
		return "boolean"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "integer"
	case float32, float64:
		return "floating point number"
	case time.Time:
		return "timestamp"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map:
		return "map"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// knownNames are the names of the context attributes of 1.0 and 0.3.
var knownNames = [...]string{"specversion", "id", "source", "type", "subject", "time", "dataschema", "schemaurl", "datacontenttype", "datacontentencoding"}

// lower lower-cases the ASCII letters of s (only those: a name with other
// letters is refused, and must not become a valid one). A context
// attribute's name in any case costs no allocation.
func lower(s string) string {
	for _, k := range knownNames {
		if len(s) == len(k) && strings.EqualFold(s, k) {
			return k
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
