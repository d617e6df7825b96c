package cejson

import (
	"math/big"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// The rule: CloudEvents has no floating-point type. In the JSON format an
// Integer is a JSON number, and the type system defines Integer as a whole
// number from -2,147,483,648 to +2,147,483,647. A JSON number that stands
// for such a whole number is that Integer, whatever its spelling (1e3 is
// 1000, 1.0 is 1); any other number is an invalid attribute value.
func TestInteger(t *testing.T) {
	million := strings.Repeat("9", 1_000_000)
	for _, tc := range []struct {
		num  string
		want int32
		err  string // "" when valid
	}{
		{num: "7", want: 7},
		{num: "0", want: 0},
		{num: "-0", want: 0},
		{num: "1e3", want: 1000},
		{num: "1E+3", want: 1000},
		{num: "1.0", want: 1},
		{num: "0.1e1", want: 1},
		{num: "12.5e1", want: 125},
		{num: "1000000000000000000000e-21", want: 1},
		{num: "0e999999999999999999999", want: 0},
		{num: "0.000e-5", want: 0},
		{num: "2147483647", want: 2147483647},
		{num: "-2147483648", want: -2147483648},
		{num: "2147483647.000", want: 2147483647},
		{num: "2.147483647e9", want: 2147483647},
		{num: "-2.147483648e9", want: -2147483648},

		{num: "1.5", err: "1.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)"},
		{num: "-0.5", err: "-0.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)"},
		{num: "1e-400", err: "1e-400 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)"},
		{num: "2147483647.5", err: "2147483647.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)"},
		{num: "1e400", err: "1e400 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{num: "2147483648", err: "2147483648 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{num: "-2147483649", err: "-2147483649 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{num: "2.147483648e9", err: "2.147483648e9 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{num: "1e10", err: "1e10 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{num: "1e99999999999999999999", err: "1e99999999999999999999 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{num: million, err: strings.Repeat("9", 24) + "... is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)"},
		{num: "1" + strings.Repeat("0", 1_000_000) + "e-1000000", want: 1},

		{num: "", err: "not a JSON number"},
		{num: "-", err: "not a JSON number"},
		{num: "01", err: "not a JSON number"},
		{num: "+1", err: "not a JSON number"},
		{num: ".5", err: "not a JSON number"},
		{num: "1.", err: "not a JSON number"},
		{num: "1e", err: "not a JSON number"},
		{num: "1e+", err: "not a JSON number"},
		{num: "0x10", err: "not a JSON number"},
		{num: "1 ", err: "not a JSON number"},
		{num: "NaN", err: "not a JSON number"},
	} {
		name := tc.num
		if len(name) > 30 {
			name = name[:30] + "..."
		}
		t.Run(name, func(t *testing.T) {
			got, err := Integer([]byte(tc.num))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %d, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	const head = `{"specversion":"1.0","id":"1","source":"/s","type":"t",`
	for _, tc := range []struct {
		name, json string
		ext        string // the extension to look at
		want       any    // its value; nil for unset
		err        string // the error text; "" when valid
	}{
		{name: "integer", json: head + `"myext":7}`, ext: "myext", want: int32(7)},
		{name: "exponent", json: head + `"myext":1e3}`, ext: "myext", want: int32(1000)},
		{name: "whole with a fraction", json: head + `"myext":1.0}`, ext: "myext", want: int32(1)},
		{name: "negative bound", json: head + `"myext":-2147483648}`, ext: "myext", want: int32(-2147483648)},
		{name: "digits the SDK rounds", json: head + `"myext":2147483647.0000000000000000000}`, ext: "myext", want: int32(2147483647)},
		{name: "boolean", json: head + `"myext":true}`, ext: "myext", want: true},
		{name: "false", json: head + `"myext":false}`, ext: "myext", want: false},
		{name: "string", json: head + `"myext":"1.5"}`, ext: "myext", want: "1.5"},
		{name: "null is unset", json: head + `"myext":null}`, ext: "myext", want: nil},
		{name: "escaped name", json: head + `"my\u0065xt":12}`, ext: "myext", want: int32(12)},
		{name: "before specversion", json: `{"myext":7,"specversion":"1.0","id":"1","source":"/s","type":"t"}`, ext: "myext", want: int32(7)},
		{name: "v0.3 dataschema is an extension", json: `{"specversion":"0.3","id":"1","source":"/s","type":"t","dataschema":4}`, ext: "dataschema", want: int32(4)},

		{name: "fraction", json: head + `"myext":1.5}`, err: "myext: 1.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)\n"},
		{name: "tiny", json: head + `"myext":1e-400}`, err: "myext: 1e-400 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)\n"},
		{name: "huge", json: head + `"myext":1e400}`, err: "myext: 1e400 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)\n"},
		{name: "a million digits", json: head + `"myext":` + strings.Repeat("1", 1_000_000) + `}`, err: "myext: 111111111111111111111111... is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)\n"},
		{name: "above", json: head + `"myext":2147483648}`, err: "myext: 2147483648 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)\n"},
		{name: "below", json: head + `"myext":-2147483649}`, err: "myext: -2147483649 is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)\n"},
		{name: "object", json: head + `"myext":{"a":1}}`, err: "myext: extension values must be strings, integers or booleans\n"},
		{name: "array", json: head + `"myext":[1]}`, err: "myext: extension values must be strings, integers or booleans\n"},
		{name: "before specversion, fraction", json: `{"myext":0.5,"specversion":"1.0","id":"1","source":"/s","type":"t"}`, err: "myext: 0.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)\n"},
		{name: "v1 schemaurl is an extension", json: head + `"schemaurl":2.5}`, err: "schemaurl: 2.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)\n"},
		{name: "v0.3 dataschema fraction", json: `{"specversion":"0.3","id":"1","source":"/s","type":"t","dataschema":4.5}`, err: "dataschema: 4.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)\n"},
		{name: "second of two", json: head + `"a":1,"b":2.5}`, err: "b: 2.5 is not an integer (CloudEvents has no floating-point type; send a whole number or a string)\n"},
		{name: "SDK panic", json: head + `"data_base64":1}`, err: "cannot read the event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e event.Event
			err := Unmarshal(&e, []byte(tc.json))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %v, %q; want error %q", e.Extensions(), err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Extensions()[tc.ext]; got != tc.want {
				t.Errorf("%s = %#v, want %#v", tc.ext, got, tc.want)
			}
		})
	}
}

// TestUnmarshalNoCostWithoutNumbers checks the common case stays on the
// SDK's path: no allocation beyond the SDK's own.
func TestUnmarshalNoCostWithoutNumbers(t *testing.T) {
	raw := []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","tenant":"acme","data":{"a":1}}`)
	sdk := testing.AllocsPerRun(100, func() {
		var e event.Event
		_ = e.UnmarshalJSON(raw)
	})
	ours := testing.AllocsPerRun(100, func() {
		var e event.Event
		_ = Unmarshal(&e, raw)
	})
	if ours > sdk {
		t.Errorf("%v allocations, the SDK alone %v", ours, sdk)
	}
}

func TestMembers(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // name=value;... or "!" when not read whole
	}{
		{`{}`, ""},
		{` { "a" : 1 , "b":"x\"}" ,"c":{"d":[1,{"e":"]"}]}, "f":null} `, `"a"=1;"b"="x\"}";"c"={"d":[1,{"e":"]"}]};"f"=null;`},
		{`{"a":1`, "!"},
		{`{"a"`, "!"},
		{`{"a":"`, "!"},
		{`{"a":{`, "!"},
		{`{"a":1,}`, "!"},
		{`[1]`, "!"},
		{``, "!"},
		{`{"a\`, "!"},
	} {
		var b strings.Builder
		ok := members([]byte(tc.raw), func(name, value []byte) bool {
			b.WriteString(string(name) + "=" + string(value) + ";")
			return true
		})
		got := b.String()
		if !ok {
			got = "!"
		}
		if got != tc.want {
			t.Errorf("members(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// FuzzInteger checks Integer against exact rational arithmetic: it accepts
// exactly the JSON numbers that stand for a whole number in the int32
// range, with that value.
func FuzzInteger(f *testing.F) {
	for _, s := range []string{"7", "1.5", "1e3", "-0", "2147483647", "2147483648", "-2147483649", "1e400", "0.1e1", "1e-400", "01", "1.", "-2.147483648e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Integer([]byte(s))
		if !jsonNumber(s) {
			if err == nil {
				t.Fatalf("Integer(%q) = %d, want an error: not a JSON number", s, got)
			}
			return
		}
		// big.Rat takes exponents of any size; keep them small enough to
		// compute.
		if i := strings.IndexAny(s, "eE"); i >= 0 && len(strings.TrimLeft(s[i+1:], "+-0")) > 4 {
			return
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("big.Rat cannot read %q", s)
		}
		whole := r.IsInt() && r.Num().IsInt64() && r.Num().Int64() >= MinInteger && r.Num().Int64() <= MaxInteger
		switch {
		case whole && (err != nil || int64(got) != r.Num().Int64()):
			t.Fatalf("Integer(%q) = %d, %v; want %s", s, got, err, r.Num())
		case !whole && err == nil:
			t.Fatalf("Integer(%q) = %d, want an error", s, got)
		}
	})
}

// jsonNumber reports whether s is a JSON number (RFC 8259), by its grammar.
func jsonNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

// BenchmarkUnmarshal measures the cost over the SDK's parser, with and
// without an integer extension to check.
func BenchmarkUnmarshal(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"strings", `{"specversion":"1.0","id":"1","source":"/s","type":"t","tenant":"acme","data":{"amount":120}}`},
		{"integer", `{"specversion":"1.0","id":"1","source":"/s","type":"t","attempt":3,"data":{"amount":120}}`},
	} {
		raw := []byte(bc.raw)
		b.Run(bc.name+"/sdk", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var e event.Event
				_ = e.UnmarshalJSON(raw)
			}
		})
		b.Run(bc.name+"/cejson", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var e event.Event
				_ = Unmarshal(&e, raw)
			}
		})
	}
}

// TestExtensionNames: attribute names MUST be lower-case letters and digits
// (CloudEvents "Attribute Naming Convention", 1.0 and 0.3). An empty name
// next to a number extension made the number vanish on the journal's round
// trip (found by FuzzParseRequest).
func TestExtensionNames(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"specversion":"0.3","id":"0","source":"s","type":"t","0":0,"":0}`, false},
		{`{"specversion":"1.0","id":"0","source":"s","type":"t","n":1,"":0}`, false},
		{`{"specversion":"0.3","id":"0","source":"s","type":"t","Upper":"x"}`, false},
		{`{"specversion":"0.3","id":"0","source":"s","type":"t","ext0":"x","n":7}`, true},
	} {
		var e event.Event
		err := Unmarshal(&e, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.body, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "lower-case letters") {
			t.Errorf("%s: reason %q does not say what names may be", tc.body, err)
		}
	}
}
