package cehttp

import (
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

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
