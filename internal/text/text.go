// Package text holds small helpers for messages built from untrusted text.
package text

import (
	"strings"
	"unicode/utf8"
)

// OneLine replaces runs of control characters, white space and invalid
// UTF-8 with one space, and cuts s to at most max bytes, marking a cut with
// "…".
func OneLine(s string, max int) string {
	var b strings.Builder
	b.Grow(min(len(s), max+8))
	space := false
	for _, r := range s {
		if r == utf8.RuneError || r <= ' ' || r >= 0x7F && r < 0xA0 || r == '\u2028' || r == '\u2029' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		if b.Len() > max {
			break
		}
	}
	out := b.String()
	if len(out) <= max {
		return out
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return strings.TrimRight(out[:cut], " ") + "…"
}

// Bounded replaces each control character (below U+0020, and U+007F) with
// a space and cuts s to at most max bytes, marking a cut with "…". Unlike
// OneLine it keeps every other character and each space as it is.
func Bounded(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7F {
			return ' '
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// IsToken reports whether s is an RFC 9110 token, such as a header name.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
