package cehttp

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
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

// BenchmarkBinaryHeaders is the binary-mode encoding of an event with
// every attribute set and three extensions.
func BenchmarkBinaryHeaders(b *testing.B) {
	e := event.New()
	e.SetID("evt-1")
	e.SetSource("/orders/eu")
	e.SetType("com.example.order.created")
	e.SetSubject(`order 42 ✓ "quoted" 100%`)
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600)))
	e.SetDataSchema("https://example.com/schemas/order.json")
	e.SetExtension("tenant", "acme corp")
	e.SetExtension("attempt", 3)
	e.SetExtension("vip", true)
	if err := e.SetData(event.ApplicationJSON, map[string]any{"amount": 150}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h := make(http.Header, 16)
		if err := SetBinaryHeaders(h, &e); err != nil {
			b.Fatal(err)
		}
	}
}
