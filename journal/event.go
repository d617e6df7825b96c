package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// How events are stored in journal entries.
//
// A CloudEvents 1.0 event is stored in a compact binary form: the byte
// formatBinary, a flags byte, the context attributes as length-prefixed
// strings, the extensions with their types, then the data as it is (no
// base64, no JSON escaping). Other events are stored in the JSON event
// format, which starts with '{'; entries written by earlier versions are
// JSON too, and DecodeEvent reads both.
const formatBinary = 0x01

const flagBase64 = 1 << 0

// Extension value kinds in the binary form.
const (
	extString = 's'
	extInt    = 'i'
	extBool   = 'b'
	extTime   = 't'
)

// EncodeEvent appends the stored form of e to dst.
func EncodeEvent(dst []byte, e *event.Event) ([]byte, error) {
	if e.SpecVersion() != event.CloudEventsVersionV1 {
		b, err := e.MarshalJSON()
		return append(dst, b...), err
	}
	// One allocation in the common case: the data plus room for the
	// attributes.
	dst = slices.Grow(dst, len(e.Data())+256)
	var flags byte
	if e.DataBase64 {
		flags |= flagBase64
	}
	dst = append(dst, formatBinary, flags)
	dst = appendString(dst, e.ID())
	dst = appendString(dst, e.Source())
	dst = appendString(dst, e.Type())
	dst = appendString(dst, e.Subject())
	dst = appendString(dst, e.DataContentType())
	dst = appendString(dst, e.DataSchema())
	if t := e.Time(); !t.IsZero() {
		dst = appendTime(dst, t)
	} else {
		dst = appendString(dst, "")
	}
	// The context's own map: Extensions() would copy it.
	var ext map[string]any
	if ec, ok := e.Context.(*event.EventContextV1); ok {
		ext = ec.Extensions
	} else {
		ext = e.Extensions()
	}
	dst = binary.AppendUvarint(dst, uint64(len(ext)))
	for name, v := range ext {
		dst = appendString(dst, name)
		switch x := v.(type) {
		case int32:
			dst = append(dst, extInt)
			dst = binary.AppendVarint(dst, int64(x))
		case bool:
			dst = append(dst, extBool)
			if x {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case types.Timestamp:
			dst = appendTime(append(dst, extTime), x.Time)
		case time.Time:
			dst = appendTime(append(dst, extTime), x)
		default:
			s, err := types.Format(v)
			if err != nil {
				return dst, fmt.Errorf("encode extension %s: %w", name, err)
			}
			dst = append(dst, extString)
			dst = appendString(dst, s)
		}
	}
	return append(dst, e.Data()...), nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendTime appends t in UTC as an RFC 3339 string, as appendString does.
func appendTime(dst []byte, t time.Time) []byte {
	var b [64]byte
	s := t.UTC().AppendFormat(b[:0], time.RFC3339Nano)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errCorrupt = errors.New("corrupt journal entry")

// DecodeEvent reads an event stored by EncodeEvent (or in the JSON format).
// The event refers to b, for its data and its string attributes, without
// copying: b must not change afterwards (a journal entry's bytes never do).
func DecodeEvent(b []byte, e *event.Event) error {
	if len(b) == 0 || b[0] != formatBinary {
		return e.UnmarshalJSON(b)
	}
	r := reader{b: b[1:]}
	flags := r.byte()
	var s [7]string
	for i := range s {
		s[i] = r.string()
	}
	n := r.uvarint()
	if r.err != nil {
		return r.err
	}
	ec := event.EventContextV1{}
	*e = event.Event{Context: &ec}
	// Direct calls: a table of method values would allocate each of them.
	var err error
	if s[0] != "" {
		err = ec.SetID(s[0])
	}
	if err == nil && s[1] != "" {
		err = ec.SetSource(s[1])
	}
	if err == nil && s[2] != "" {
		err = ec.SetType(s[2])
	}
	if err == nil && s[3] != "" {
		err = ec.SetSubject(s[3])
	}
	if err == nil && s[4] != "" {
		err = ec.SetDataContentType(s[4])
	}
	if err == nil && s[5] != "" {
		err = ec.SetDataSchema(s[5])
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if s[6] != "" {
		t, err := time.Parse(time.RFC3339Nano, s[6])
		if err != nil {
			return fmt.Errorf("%w: time: %w", errCorrupt, err)
		}
		ec.SetTime(t)
	}
	if n > uint64(len(r.b)) {
		return errCorrupt
	}
	for range n {
		name := r.string()
		var v any
		switch r.byte() {
		case extString:
			v = r.string()
		case extInt:
			v = int32(r.varint())
		case extBool:
			v = r.byte() == 1
		case extTime:
			t, err := time.Parse(time.RFC3339Nano, r.string())
			if err != nil {
				return fmt.Errorf("%w: extension %s: %w", errCorrupt, name, err)
			}
			v = types.Timestamp{Time: t}
		default:
			return errCorrupt
		}
		if r.err != nil {
			return r.err
		}
		if err := ec.SetExtension(name, v); err != nil {
			return fmt.Errorf("%w: extension %s: %w", errCorrupt, name, err)
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) > 0 {
		e.DataEncoded = r.b
	}
	e.DataBase64 = flags&flagBase64 != 0
	return nil
}

// reader reads the binary form; the first problem sticks in err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a zig-zag encoded varint, as binary.Varint does.
func (r *reader) varint() int64 {
	ux := r.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return ""
	}
	// No copy: the decoded event owns b (see DecodeEvent).
	s := unsafe.String(unsafe.SliceData(r.b), int(n))
	r.b = r.b[n:]
	return s
}
