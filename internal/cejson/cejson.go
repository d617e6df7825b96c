// Package cejson reads CloudEvents in the JSON event format from untrusted
// input, strictly: what the CloudEvents SDK's parser would silently change
// is refused instead.
//
// The SDK reads a JSON number extension as a float64 and converts it to a
// CloudEvents Integer (int32) by truncation: 1.5 becomes 1, 1e-400 becomes
// 0, and numbers its JSON reader cannot hold (1e400, a number of a million
// digits) become 0. CloudEvents has no floating-point type; in the JSON
// format an Integer is a JSON number (CloudEvents JSON format, section
// 2.2), and the type system defines Integer as a whole number from
// -2,147,483,648 to +2,147,483,647. Unmarshal checks each number against
// its text, exactly, and refuses any other value. Every parser of
// structured events from outside (the http, amqp, nats and sqs sources,
// function and lambda replies) goes through it.
package cejson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
)

// MaxInteger and MinInteger bound a CloudEvents Integer.
const (
	MaxInteger = 1<<31 - 1
	MinInteger = -1 << 31
)

// errCannotRead stands for a panic of the SDK's parser (a number as
// data_base64, an empty 0.3 datacontentencoding, ...).
var errCannotRead = errors.New("cannot read the event")

// Unmarshal reads one event in the CloudEvents JSON format from raw into e.
// It is e.UnmarshalJSON made strict and safe: a panic of the SDK is an
// error, and an extension attribute whose JSON value is not a CloudEvents
// value is refused with an event.ValidationError naming the attribute
// (a number that is not a whole number from MinInteger to MaxInteger, an
// object or an array). Strings, booleans and null (the attribute unset)
// are taken as the SDK takes them, and a whole number such as 7, 1e3
// (1000) or 1.0 becomes exactly that int32. A member that is null is
// unset, whatever attribute it is; data of a */*+json datacontenttype is
// the JSON value as it is; data and data_base64 together are refused (see
// prepare). It does not call e.Validate nor Check.
func Unmarshal(e *event.Event, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errCannotRead
		}
	}()
	p, err := prepare(raw)
	if err != nil {
		return err
	}
	raw = p.raw
	if err := e.UnmarshalJSON(raw); err != nil {
		// Say which attribute is at fault when the SDK refused a value
		// (out of range, an object) that the rules below name better.
		if ve := checkExtensions(e, raw, false); ve != nil {
			return ve
		}
		return err
	}
	// Attribute names MUST consist of lower-case ASCII letters and digits
	// (CloudEvents 1.0 and 0.3, "Attribute Naming Convention"); the SDK
	// checks it for 1.0 only, in Validate.
	for name := range extensions(e) {
		if !validName(name) {
			return event.ValidationError{name: errBadName}
		}
	}
	if p.hasData {
		e.DataEncoded = p.data
	}
	// Only a JSON number becomes an int32 extension: when there is none,
	// there is nothing to check (the usual case, at no cost).
	for _, v := range extensions(e) {
		if _, ok := v.(int32); ok {
			if ve := checkExtensions(e, raw, true); ve != nil {
				return ve
			}
			break
		}
	}
	return nil
}

// errBadName is the reason for an attribute name that is not valid.
var errBadName = errors.New("attribute names must be non-empty and consist of lower-case letters (a-z) and digits (0-9)")

// validName reports whether name is a valid CloudEvents attribute name.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// extensions returns the extensions of e without copying them, as
// e.Extensions does.
func extensions(e *event.Event) map[string]any {
	switch c := e.Context.(type) {
	case *event.EventContextV1:
		return c.Extensions
	case *event.EventContextV03:
		return c.Extensions
	}
	return e.Extensions()
}

// CheckExtension checks v, the JSON value of an extension attribute: a
// string, a boolean, null, or a number that is a CloudEvents Integer. Its
// error is a reason without the attribute's name.
func CheckExtension(v []byte) error {
	if len(v) == 0 {
		return errors.New("no value")
	}
	switch c := v[0]; {
	case c == '{' || c == '[':
		return errors.New("extension values must be strings, integers or booleans")
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := Integer(v)
		return err
	}
	return nil
}

// Integer returns the CloudEvents Integer that num, the text of a JSON
// number, stands for. The value is computed from the text, exactly: it must
// be a whole number (1e3 and 1.0 are, 1.5 and 1e-400 are not) from
// MinInteger to MaxInteger. Its errors quote at most the first 24 bytes of
// num. It does not allocate unless it fails, and takes time linear in
// len(num).
func Integer(num []byte) (int32, error) {
	var (
		i   int
		neg bool
	)
	if i < len(num) && num[i] == '-' {
		neg = true
		i++
	}
	// The significant digits are those of the integer part then of the
	// fraction: intPart = num[intStart:intEnd], frac = num[fracStart:fracEnd].
	intStart := i
	switch {
	case i < len(num) && num[i] == '0':
		i++
	case i < len(num) && num[i] >= '1' && num[i] <= '9':
		i = digits(num, i+1)
	default:
		return 0, errNotNumber
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(num) && num[i] == '.' {
		fracStart = i + 1
		fracEnd = digits(num, fracStart)
		if fracEnd == fracStart {
			return 0, errNotNumber
		}
		i = fracEnd
	}
	var exp int64 // the exponent, saturated far beyond any digit count
	if i < len(num) && (num[i] == 'e' || num[i] == 'E') {
		i++
		expNeg := false
		if i < len(num) && (num[i] == '+' || num[i] == '-') {
			expNeg = num[i] == '-'
			i++
		}
		end := digits(num, i)
		if end == i {
			return 0, errNotNumber
		}
		for _, c := range num[i:end] {
			if exp < 1<<40 {
				exp = exp*10 + int64(c-'0')
			}
		}
		if expNeg {
			exp = -exp
		}
		i = end
	}
	if i != len(num) {
		return 0, errNotNumber
	}

	// Digit k of the significand (k counts integer digits then fraction
	// digits) has weight 10^(nInt-1-k+exp).
	nInt, nFrac := int64(intEnd-intStart), int64(fracEnd-fracStart)
	at := func(k int64) byte {
		if k < nInt {
			return num[intStart+int(k)]
		}
		return num[fracStart+int(k-nInt)]
	}
	first, last := int64(-1), int64(-1)
	for k := int64(0); k < nInt+nFrac; k++ {
		if at(k) != '0' {
			if first < 0 {
				first = k
			}
			last = k
		}
	}
	if first < 0 {
		return 0, nil // 0, -0, 0.000e99
	}
	if nInt-1-last+exp < 0 {
		return 0, fmt.Errorf("%s is not an integer (CloudEvents has no floating-point type; send a whole number or a string)", quoteNum(num))
	}
	// The leading digit weighs 10^top; 10^10 is beyond any int32.
	top := nInt - 1 - first + exp
	if top >= 10 {
		return 0, rangeError(num)
	}
	var v int64
	for k := first; k <= last; k++ {
		v = v*10 + int64(at(k)-'0')
	}
	for z := nInt - 1 - last + exp; z > 0; z-- {
		v *= 10
	}
	if neg {
		v = -v
	}
	if v < MinInteger || v > MaxInteger {
		return 0, rangeError(num)
	}
	return int32(v), nil
}

var errNotNumber = errors.New("not a JSON number")

func rangeError(num []byte) error {
	return fmt.Errorf("%s is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)", quoteNum(num))
}

// quoteNum is num (the text of a JSON number, so printable) for a reason,
// bounded.
func quoteNum(num []byte) string {
	const max = 24
	if len(num) > max {
		return string(num[:max]) + "..."
	}
	return string(num)
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// Context attributes of each specversion, and the members that carry the
// data: the other members of an event are extensions.
var (
	v1Attrs  = map[string]bool{"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true}
	v03Attrs = map[string]bool{"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true, "datacontenttype": true, "schemaurl": true, "datacontentencoding": true, "data": true, "data_base64": true}
)

// checkExtensions checks the extension members of raw, an event the SDK
// read into e (or refused, then fix is false). With fix, each number is set
// on e as the exact int32 its text stands for, in place of the SDK's
// float64 conversion. The error is an event.ValidationError naming the
// first bad attribute, or nil; raw that cannot be scanned is an error only
// with fix (the SDK took it, so a number in it went unchecked).
func checkExtensions(e *event.Event, raw []byte, fix bool) error {
	attrs := v1Attrs
	members(raw, func(name, value []byte) bool {
		if string(name) == `"specversion"` && string(value) == `"0.3"` {
			attrs = v03Attrs
		}
		return true
	})
	var bad error
	ok := members(raw, func(rawName, value []byte) bool {
		name, ok := memberName(rawName)
		if !ok {
			if fix {
				bad = errCannotRead
			}
			return false
		}
		if attrs[name] {
			return true
		}
		if !validName(name) {
			bad = event.ValidationError{name: errBadName}
			return false
		}
		if err := CheckExtension(value); err != nil {
			bad = event.ValidationError{name: err}
			return false
		}
		if fix && (value[0] == '-' || (value[0] >= '0' && value[0] <= '9')) {
			n, _ := Integer(value)
			if err := e.Context.SetExtension(name, n); err != nil {
				bad = event.ValidationError{name: err}
				return false
			}
		}
		return true
	})
	if !ok && bad == nil && fix {
		return errCannotRead
	}
	return bad
}

// memberName is the name of a member, from its JSON string.
func memberName(raw []byte) (string, bool) {
	if len(raw) < 2 {
		return "", false
	}
	if !strings.Contains(string(raw), `\`) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// members calls fn with the name (a JSON string, quotes included) and the
// value of each member of the JSON object at the start of raw, in order,
// until fn returns false. It reports whether it read the whole object. It
// never reads past raw, whatever raw holds.
func members(raw []byte, fn func(name, value []byte) bool) bool {
	i := ws(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	i = ws(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return true
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return false
		}
		j := skipString(raw, i)
		if j < 0 {
			return false
		}
		name := raw[i:j]
		i = ws(raw, j)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i = ws(raw, i+1)
		j = skipValue(raw, i)
		if j <= i {
			return false
		}
		if !fn(name, raw[i:j]) {
			return false
		}
		i = ws(raw, j)
		if i >= len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i = ws(raw, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
}

func ws(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index past the JSON string at b[i] (a '"'), or
// -1 when it does not end.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index past the JSON value at b[i], or -1 when it
// does not end. A literal or number runs to the next delimiter.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
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
		return -1
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
	}
	return len(b)
}
