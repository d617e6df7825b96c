package amqpsource

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestDecodeExtensionValues: CloudEvents has no floating-point type. A JSON
// number extension of a structured or batch message is an Integer, a whole
// number from -2147483648 to 2147483647 (1e3 is 1000); any other number,
// an object or an array is an invalid attribute value, and the message is
// malformed (refused as decode refuses any malformed message: the whole
// batch), never delivered with the value truncated.
func TestDecodeExtensionValues(t *testing.T) {
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
		{value: "[1]", err: `invalid attribute "myext": extension values must be strings, integers or booleans`},
	} {
		name := tc.value
		if len(name) > 20 {
			name = name[:20]
		}
		ev := `{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":` + tc.value + `}`
		for _, mode := range []struct{ name, ct, body, prefix string }{
			{"structured", ContentTypeStructured, ev, ""},
			{"batch", ContentTypeBatch, `[{"specversion":"1.0","id":"0","source":"/s","type":"t"},` + ev + `]`, "event[1]: "},
		} {
			t.Run(mode.name+"/"+name, func(t *testing.T) {
				events, err := testSource().decode(&amqp.Delivery{ContentType: mode.ct, Body: []byte(mode.body)})
				if tc.err != "" {
					if err == nil || err.Error() != mode.prefix+tc.err {
						t.Fatalf("got %d events, %v\nwant error %q", len(events), err, mode.prefix+tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := events[len(events)-1].Extensions()["myext"]; got != tc.want {
					t.Errorf("myext = %#v, want %#v", got, tc.want)
				}
			})
		}
	}
}
