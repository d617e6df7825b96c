package webhooksink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func benchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchDeliver(b *testing.B, format string, parallel bool) {
	srv := benchServer(b)
	c := cfgFor(srv.URL + "/hook")
	c.Format = format
	c.Headers = map[string]string{"Authorization": "Bearer token"}
	w := build(b, c)
	e := testEvent(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := w.Deliver(ctx, e); err != nil {
					b.Error(err)
					return
				}
			}
		})
		return
	}
	for b.Loop() {
		if err := w.Deliver(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliverBinary is one binary-mode delivery to a loopback server,
// end to end (client, loopback TCP, server).
func BenchmarkDeliverBinary(b *testing.B)         { benchDeliver(b, FormatBinary, false) }
func BenchmarkDeliverBinaryParallel(b *testing.B) { benchDeliver(b, FormatBinary, true) }
func BenchmarkDeliverStructured(b *testing.B)     { benchDeliver(b, FormatStructured, false) }
