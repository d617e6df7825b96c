package router

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		h, scheme, param string
		ok               bool
	}{
		{h: "Bearer abc", scheme: "bearer", param: "abc", ok: true},
		{h: "bearer   abc  ", scheme: "bearer", param: "abc", ok: true},
		{h: "BASIC YWxpY2U6cHc=", scheme: "basic", param: "YWxpY2U6cHc=", ok: true},
		{h: ""},
		{h: "Bearer"},
		{h: "Bearer "},
		{h: "Bearer a b"},
		{h: "Bearer a\tb"},
		{h: "Bearer ab\x00"},
		{h: "Digest abc"},
		{h: "Bearerabc"},
		{h: "Bearer " + strings.Repeat("a", maxAuthorization)},
	}
	for _, tt := range tests {
		s, p, ok := parseAuthorization(tt.h)
		if s != tt.scheme || p != tt.param || ok != tt.ok {
			t.Errorf("parseAuthorization(%q) = %q, %q, %v; want %q, %q, %v", tt.h, s, p, ok, tt.scheme, tt.param, tt.ok)
		}
	}
	basic := []struct {
		param, user, pass string
		ok                bool
	}{
		{param: base64.StdEncoding.EncodeToString([]byte("alice:pw")), user: "alice", pass: "pw", ok: true},
		{param: base64.StdEncoding.EncodeToString([]byte("alice:p:w")), user: "alice", pass: "p:w", ok: true},
		{param: base64.StdEncoding.EncodeToString([]byte("alice:")), user: "alice", pass: "", ok: true},
		{param: base64.StdEncoding.EncodeToString([]byte("alice"))},
		{param: base64.StdEncoding.EncodeToString([]byte(":pw"))},
		{param: "not base64!"},
	}
	for _, tt := range basic {
		u, p, ok := parseBasic(tt.param)
		if u != tt.user || p != tt.pass || ok != tt.ok {
			t.Errorf("parseBasic(%q) = %q, %q, %v; want %q, %q, %v", tt.param, u, p, ok, tt.user, tt.pass, tt.ok)
		}
	}
}

func TestCredentials(t *testing.T) {
	c := newCredentials("r", []string{"tok1", "tok2"}, map[string]string{"alice": "pw"})
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for h, want := range map[string]bool{
		"Bearer tok1": true, "Bearer tok2": true, "Bearer tok": false, "Bearer tok12": false, "": false,
		basic("alice:pw"): true, basic("alice:pw2"): false, basic("bob:pw"): false, "Basic tok1": false,
		// A bearer token that equals user:password is not basic.
		"Bearer alice:pw": false,
	} {
		if got := c.check(h); got != want {
			t.Errorf("check(%q) = %v, want %v", h, got, want)
		}
	}
}

// FuzzParseAuthorization checks that any header parses without panic, and
// that what parses is what a client would have sent.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer abc", "Basic YWxpY2U6cHc=", "basic  Og==", "Bearer", "", "Digest x", "Bearer a b", "Basic ####"} {
		f.Add(s)
	}
	creds := newCredentials("r", []string{"abc"}, map[string]string{"alice": "pw"})
	f.Fuzz(func(t *testing.T, h string) {
		scheme, param, ok := parseAuthorization(h)
		if !ok {
			if scheme != "" || param != "" {
				t.Fatalf("%q: not ok but %q, %q", h, scheme, param)
			}
			if creds.check(h) {
				t.Fatalf("%q: does not parse but checks", h)
			}
			return
		}
		if scheme != "bearer" && scheme != "basic" || param == "" || strings.ContainsAny(param, " \t\r\n") || !utf8.ValidString(param) {
			t.Fatalf("%q: parsed as %q, %q", h, scheme, param)
		}
		if len(h) > maxAuthorization {
			t.Fatalf("%q: longer than %d bytes but parsed", h, maxAuthorization)
		}
		if again, p2, _ := parseAuthorization(scheme + " " + param); again != scheme || p2 != param {
			t.Fatalf("%q: %q %q does not parse back the same", h, scheme, param)
		}
		if scheme == "basic" {
			if u, p, ok := parseBasic(param); ok {
				if u == "" || strings.Contains(u, ":") {
					t.Fatalf("%q: user %q", h, u)
				}
				if creds.check(h) != (u == "alice" && p == "pw") {
					t.Fatalf("%q: check disagrees with %q:%q", h, u, p)
				}
			}
		}
		if scheme == "bearer" && creds.check(h) != (param == "abc") {
			t.Fatalf("%q: check disagrees with token %q", h, param)
		}
	})
}
