package config

import (
	"strings"
	"testing"
)

// FuzzParseDuration: any string parses or fails with a bounded one-line
// error; a duration written without a sign is not negative; what parses
// is written by Duration.String in a form that parses back to it.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "24h", "14d", "1d12h", " 7d ", "0d1s", "1.5h", "-5s", "d", "1d-48h", "36500d", "36500d2562047h", "2562047h47m16.854775807s", "+1d", "1e3d", "1dd", "0d", "106751d", "106752d", "1d+1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if msg := err.Error(); len(msg) > 6*len(s)+200 || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("ParseDuration(%q): error not one bounded line: %q", s, msg)
			}
			return
		}
		if d < 0 && !strings.Contains(s, "-") {
			t.Fatalf("ParseDuration(%q) = %v: negative without a sign (overflow)", s, d)
		}
		if d < 0 {
			return
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, written %q, parsed back as %v, %v", s, d, Duration(d).String(), back, err)
		}
	})
}

// FuzzParseByteSize: any string parses or fails; a size is never
// negative; ByteSize.String writes it in a form that parses back to it.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"1048576", "1MiB", "512KiB", "10MB", "1GiB", " 1 mib ", "0", "1B", "4611686018427387904", "4611686018427387903", "4G", "99999999999999999999", "1.5MiB", "-1", "KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			if msg := err.Error(); len(msg) > 6*len(s)+200 || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("ParseByteSize(%q): error of %d bytes", s, len(msg))
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseByteSize(%q) = %d", s, n)
		}
		w := ByteSize(n).String()
		if back, err := ParseByteSize(w); err != nil || back != n {
			t.Fatalf("ParseByteSize(%q) = %d, written %q, parsed back as %d, %v", s, n, w, back, err)
		}
	})
}

// FuzzParseRate: any string parses to a rate in (0, MaxRatePerSecond] or
// fails with a bounded one-line error.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"200/s", "30/m", "1000/h", "0.5/s", " 1 / s ", "1e9/s", "-1/s", "/s", "1/", "1/d", "NaN/s", "Inf/s", "0x10/s", "1_000/s", "9999999999999999999999999/s", "0.0000000001/h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			if msg := err.Error(); len(msg) > 400 || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("ParseRate(%q): error not one bounded line: %q", s, msg)
			}
			return
		}
		if !(r > 0 && r <= MaxRatePerSecond) {
			t.Fatalf("ParseRate(%q) = %v: out of range", s, r)
		}
		if b := DefaultBurst(r); b < 1 || b > MaxRateBurst {
			t.Fatalf("DefaultBurst(%v) = %d", r, b)
		}
	})
}
