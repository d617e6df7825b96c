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
		{"short", 10, "short"},
		{"a\r\n\tb  c", 10, "a b c"},
		{"\n lead and trail \n", 30, "lead and trail"},
		{"0123456789", 10, "0123456789"},
		{"0123456789a", 10, "0123456…"},
		{"ééééééé", 10, "ééé…"}, // cut on a rune boundary
	} {
		got := OneLine(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("OneLine(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if len(got) > tc.max {
			t.Errorf("OneLine(%q, %d) is %d bytes", tc.in, tc.max, len(got))
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
