package functionsink

import (
	"context"
	"net/http"
	"testing"
)

// BenchmarkDeliverReply is one round trip to a loopback function that
// answers with a binary-mode reply event.
func BenchmarkDeliverReply(b *testing.B) {
	srv := newFn(b, false, binaryReply(http.StatusOK))
	f := build(b, srv.srv.URL+"/fn", nil)
	e := order(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := f.DeliverReply(ctx, e)
		if err != nil || r == nil {
			b.Fatalf("DeliverReply: %v, %v", r, err)
		}
	}
}
