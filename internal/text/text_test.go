package text

import "testing"

func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"  a\r\n\tb\x00c  ", 10, "a b c"},
		{"bad \xff utf8", 20, "bad utf8"},
		{"abcdefghij", 5, "ab…"},
		{"ééééé", 6, "é…"}, // 2+3 bytes: a second é would pass 6
	} {
		if got := OneLine(tc.in, tc.max); got != tc.want {
			t.Errorf("OneLine(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestBounded(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{" a\r\n\tb\x7fc ", 10, " a   b c "},
		{"abcdefghij", 5, "ab…"},
		{"ab  cdefgh", 6, "ab …"},
		{"ééééé", 6, "é…"},
	} {
		if got := Bounded(tc.in, tc.max); got != tc.want {
			t.Errorf("Bounded(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
