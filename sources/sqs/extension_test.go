package sqssource

import (
	"strings"
	"testing"
)

// TestStructuredExtensionValues: CloudEvents has no floating-point type. A
// JSON number extension of a structured message is an Integer, a whole
// number from -2147483648 to 2147483647 (1e3 is 1000); any other number,
// an object or an array is an invalid attribute value: the message is
// malformed (handled as any malformed message), never delivered with the
// value truncated.
func TestStructuredExtensionValues(t *testing.T) {
	s := testSource(nil)
	for _, tc := range []struct {
		value string
		want  any    // the value decoded
		err   string // the reason; "" when valid
	}{
		{value: "7", want: int32(7)},
		{value: "1e3", want: int32(1000)},
		{value: "true", want: true},
		{value: "1.5", err: `invalid attribute "myext": 1.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)`},
		{value: "1e400", err: `invalid attribute "myext": 1e400 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)`},
		{value: strings.Repeat("9", 1_000_000), err: `invalid attribute "myext": 999999999999999999999999... is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)`},
		{value: "2147483648", err: `invalid attribute "myext": 2147483648 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)`},
		{value: "-2147483649", err: `invalid attribute "myext": -2147483649 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)`},
		{value: `{"a":1}`, err: `invalid attribute "myext": extension values must be strings, integers or booleans`},
	} {
		name := tc.value
		if len(name) > 20 {
			name = name[:20]
		}
		t.Run(name, func(t *testing.T) {
			e, bad := s.toEvent(msg(`{"specversion":"1.0","id":"s-1","source":"/s","type":"t","myext":`+tc.value+`}`, nil))
			if tc.err != "" {
				if bad == nil || bad.id != "s-1" || bad.reason != tc.err {
					t.Fatalf("got %v, %+v\nwant reason %q", e, bad, tc.err)
				}
				return
			}
			if bad != nil {
				t.Fatal(bad.reason)
			}
			if got := e.Extensions()["myext"]; got != tc.want {
				t.Errorf("myext = %#v, want %#v", got, tc.want)
			}
		})
	}
}
