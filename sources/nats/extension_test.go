package natssource

import (
	"strings"
	"testing"
)

// TestDecodeExtensionValues: CloudEvents has no floating-point type. A JSON
// number extension of a structured message is an Integer, a whole number
// from -2147483648 to 2147483647 (1e3 is 1000); any other number, an object
// or an array is an invalid attribute value: the message is malformed
// (terminated as any malformed message), never delivered with the value
// truncated.
func TestDecodeExtensionValues(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  any    // the value decoded
		err   string // the reason; "" when valid
	}{
		{value: "7", want: int32(7)},
		{value: "1e3", want: int32(1000)},
		{value: "false", want: false},
		{value: "1.5", err: "structured mode: myext: 1.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)"},
		{value: "1e400", err: "structured mode: myext: 1e400 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: strings.Repeat("9", 1_000_000), err: "structured mode: myext: 999999999999999999999999... is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: "2147483648", err: "structured mode: myext: 2147483648 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: "-2147483649", err: "structured mode: myext: -2147483649 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{value: `{"a":1}`, err: "structured mode: myext: extension values must be strings, integers or booleans"},
	} {
		name := tc.value
		if len(name) > 20 {
			name = name[:20]
		}
		data := []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":` + tc.value + `}`)
		for _, mode := range []struct{ name, ct string }{{"content-type", ContentTypeStructured}, {"no headers", ""}} {
			t.Run(mode.name+"/"+name, func(t *testing.T) {
				h := hdr()
				if mode.ct != "" {
					h = hdr("content-type", mode.ct)
				}
				e, err := decode(h, data, testWrap)
				if tc.err != "" {
					if _, ok := err.(*MalformedError); !ok || err.Error() != tc.err {
						t.Fatalf("got %v, %v\nwant error %q", e, err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := e.Extensions()["myext"]; got != tc.want {
					t.Errorf("myext = %#v, want %#v", got, tc.want)
				}
			})
		}
	}
}
