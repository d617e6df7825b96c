package httpsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// nopIngester accepts everything.
type nopIngester struct{}

func (nopIngester) Ingest(context.Context, []*event.Event) error { return nil }
func (nopIngester) Rejected(string)                              {}

// payload is about 1 KiB of JSON data.
var payload = `{"orderId":"o-1","customerId":"c-1","amount":120,"note":"` + strings.Repeat("x", 950) + `"}`

func structuredOf(id int) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":"%d","source":"/shop","type":"com.example.order.created","time":"2024-05-01T10:00:00Z","datacontenttype":"application/json","data":%s}`, id, payload)
}

type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

func benchHandler(b *testing.B, h http.Header, data []byte) {
	s := build(b, newConfig(), 1<<20)
	hd := s.Handler(nopIngester{})
	req := httptest.NewRequest("POST", "/events", nil)
	req.Header = h
	req.ContentLength = int64(len(data))
	rb := &body{}
	req.Body = rb
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rb.Reset(data)
		w := httptest.NewRecorder()
		hd.ServeHTTP(w, req)
		if w.Code != 202 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

func BenchmarkBinary(b *testing.B) {
	h := binaryHeaders("Content-Type", "application/json", "Ce-Time", "2024-05-01T10:00:00Z")
	benchHandler(b, h, []byte(payload))
}

func BenchmarkStructured(b *testing.B) {
	benchHandler(b, ct(ContentTypeStructured), []byte(structuredOf(1)))
}

func BenchmarkBatch10(b *testing.B) {
	parts := make([]string, 10)
	for i := range parts {
		parts[i] = structuredOf(i)
	}
	benchHandler(b, ct(ContentTypeBatch), []byte("["+strings.Join(parts, ",")+"]"))
}

var _ io.ReadCloser = (*body)(nil)
