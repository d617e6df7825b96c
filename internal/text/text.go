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
