package cehttp

import "testing"

func TestParseURL(t *testing.T) {
	cases := []struct{ url, want string }{
		{"http://example.com/hook", ""},
		{"https://example.com", ""},
		{"example.com/hook", `"example.com/hook" has no scheme (did you mean "http://example.com/hook"?)`},
		{"localhost:9000/hook", `"localhost:9000/hook" has no scheme (did you mean "http://localhost:9000/hook"?)`},
		{"/hook", `scheme must be http or https, not ""`},
		{"ftp://example.com", `scheme must be http or https, not "ftp"`},
		{"http://", `missing host in "http://"`},
		{"", "required"},
	}
	for _, c := range cases {
		_, err := ParseURL(c.url)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("ParseURL(%q): %q, want %q", c.url, got, c.want)
		}
	}
}
