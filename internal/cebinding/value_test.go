package cebinding

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPctEncode(t *testing.T) {
	cases := map[string]string{
		"":                      "",
		"plain-ASCII_~!#$&'()*": "plain-ASCII_~!#$&'()*",
		"a b":                   "a%20b",
		`say "hi"`:              "say%20%22hi%22",
		"100%":                  "100%25",
		"%20":                   "%2520",
		"Euro € 😀":              "Euro%20%E2%82%AC%20%F0%9F%98%80",
		"tab\tnl\n\x7f":         "tab%09nl%0A%7F",
	}
	for in, want := range cases {
		if got := PctEncode(in); got != want {
			t.Errorf("PctEncode(%q) = %q, want %q", in, got, want)
		}
		if back, err := url.PathUnescape(PctEncode(in)); err != nil || back != in {
			t.Errorf("decode(PctEncode(%q)) = %q, %v", in, back, err)
		}
	}
}

// FuzzHeaderValue: HeaderValue never panics, its errors are bounded, what
// it returns is UTF-8, and a quoted-string of a percent-encoded value
// decodes to the value (HTTP binding 3.1.3.2).
func FuzzHeaderValue(f *testing.F) {
	f.Add(`"a b"`)
	f.Add(`"say \"hi\" \\ now"`)
	f.Add(`"a%20b%2541"`)
	f.Add(`"open`)
	f.Add(`"a"b"`)
	f.Add(`"\`)
	f.Add(`%C0%A0`)
	f.Add(`%e2%82%ac`)
	f.Fuzz(func(t *testing.T, v string) {
		got, err := HeaderValue(v)
		if err != nil {
			if len(err.Error()) > 100 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if !utf8.ValidString(got) {
			t.Fatalf("HeaderValue(%q) = %q, not UTF-8", v, got)
		}
		if !utf8.ValidString(v) {
			return
		}
		quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(PctEncode(v)) + `"`
		if back, err := HeaderValue(quoted); err != nil || back != v {
			t.Fatalf("HeaderValue(%q) = %q, %v; want %q", quoted, back, err, v)
		}
	})
}
