package cebinding

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// PctEncode percent-encodes s as the CloudEvents HTTP binding requires for
// header values: space, '"', '%' and every byte outside the printable ASCII
// range U+0021-U+007E (so each byte of a non-ASCII character's UTF-8
// encoding) become %XY with upper-case hex digits. s is returned as is when
// nothing needs encoding.
func PctEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEncode(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEncode(c) {
			b = append(b, '%', hex[c>>4], hex[c&0xF])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func mustEncode(c byte) bool {
	return c <= ' ' || c >= 0x7F || c == '"' || c == '%'
}

// HeaderValue decodes a binary-mode header value as the HTTP binding
// (3.1.3.2) asks: "any HTTP header value MUST first be unescaped with
// respect to double-quoted strings, as described in RFC7230, section
// 3.2.6. A single round of percent-decoding MUST then be performed". A
// value that starts with '"' must be one whole quoted-string, a '%' must
// be followed by two hex digits and the result must be UTF-8.
func HeaderValue(v string) (string, error) {
	u, err := Unquote(v)
	if err != nil {
		return "", err
	}
	return PctDecode(u)
}

// ErrNotUTF8 is LenientHeaderValue's error for a value that is not UTF-8.
var ErrNotUTF8 = errors.New("not valid UTF-8")

// LenientHeaderValue is HeaderValue for receivers that take values from
// senders that do not encode: a '%' not followed by two hex digits is
// kept as it is. It fails when the quoted-string is not whole or the
// result is not UTF-8 (ErrNotUTF8).
func LenientHeaderValue(v string) (string, error) {
	v, err := Unquote(v)
	if err != nil {
		return "", err
	}
	if strings.IndexByte(v, '%') < 0 {
		if !utf8.ValidString(v) {
			return "", ErrNotUTF8
		}
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	s := b.String()
	if !utf8.ValidString(s) {
		return "", ErrNotUTF8
	}
	return s, nil
}

// Unquote undoes the quoted-string of RFC 7230 section 3.2.6 when v is one
// (a '"', then characters or backslash escapes, then '"'); any other v is
// returned as it is. A value that starts with '"' but is not a whole
// quoted-string is an error.
func Unquote(v string) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return v, nil
	}
	b := make([]byte, 0, len(v))
	for i := 1; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i+1 >= len(v) {
				return "", errors.New("invalid quoted-string: ends in a backslash")
			}
			i++
			b = append(b, v[i])
		case '"':
			if i != len(v)-1 {
				return "", errors.New("invalid quoted-string: text after the closing quote")
			}
			return string(b), nil
		default:
			b = append(b, c)
		}
	}
	return "", errors.New("invalid quoted-string: no closing quote")
}

// PctDecode undoes PctEncode: %XY becomes the byte 0xXY; a '%' must be
// followed by two hex digits and the result must be UTF-8.
func PctDecode(s string) (string, error) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		if !utf8.ValidString(s) {
			return "", errors.New("not UTF-8")
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", errors.New("invalid percent-encoding")
		}
		b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	if !utf8.Valid(b) {
		return "", errors.New("not UTF-8 once percent-decoded")
	}
	return string(b), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
