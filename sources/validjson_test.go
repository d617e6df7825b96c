package sources

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

const sampleEvent = `{"specversion":"1.0","id":"1","source":"/shop","type":"com.example.order.created","datacontenttype":"application/json","data":{"amount":120}}`

func TestValidJSON(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{sampleEvent, true},
		{` [1, "a", true, false, null, -0.5e+10, {}] `, true},
		{`"\u00e9\n"`, true},
		{"", false},
		{" ", false},
		{`[1,]`, false},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`01`, false},
		{`1.`, false},
		{`{} {}`, false},
		{"\"\xff\"", false}, // json.Valid accepts it
		{strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth), true},
		{strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1), false},
	} {
		if got := ValidJSON([]byte(tt.in)); got != tt.want {
			t.Errorf("ValidJSON(%.40q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// FuzzValidJSON checks ValidJSON against encoding/json.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{sampleEvent, `[` + sampleEvent + `,` + sampleEvent + `]`, `"\u00e9\n"`, `-0.5e+10`, `[1,]`, `{"a":1,}`, `01`, "\"\xff\"", `[[[]]]`, ` null `, `"\ud800"`, `1.`, `{"a" 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b) && utf8.Valid(b)
		if got := ValidJSON(b); got != want && !(want && depth(b) > MaxJSONDepth) {
			t.Fatalf("ValidJSON(%q) = %v, want %v", b, got, want)
		}
	})
}

// depth is an upper bound of the nesting of b.
func depth(b []byte) int {
	n, max := 0, 0
	for _, c := range b {
		switch c {
		case '[', '{':
			n++
			if n > max {
				max = n
			}
		case ']', '}':
			n--
		}
	}
	return max
}

// BenchmarkValidJSON compares ValidJSON with encoding/json's Valid on a
// 1 KiB structured event.
func BenchmarkValidJSON(b *testing.B) {
	data := []byte(strings.Replace(sampleEvent, `{"amount":120}`, `{"note":"`+strings.Repeat("x", 900)+`"}`, 1))
	b.Run("ValidJSON", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if !ValidJSON(data) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(data) {
				b.Fatal("invalid")
			}
		}
	})
}
