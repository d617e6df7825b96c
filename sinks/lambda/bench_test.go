package lambdasink

import (
	"testing"
)

// BenchmarkInvoke is one RequestResponse invocation of the label-push
// function on serverless-offline, reply included (mostly the server's
// cost: it runs a Node handler per call).
func BenchmarkInvoke(b *testing.B) {
	s := build(b, fnLabelPush, nil)
	e := push(b)
	ctx := testCtx(b)
	b.ReportAllocs()
	for b.Loop() {
		if r, err := s.DeliverReply(ctx, e); err != nil || r == nil {
			b.Fatalf("DeliverReply: %v, %v", r, err)
		}
	}
}

// BenchmarkPayloadAndReply is the sink's own work per event: encoding the
// payload and reading a reply.
func BenchmarkPayloadAndReply(b *testing.B) {
	s := &Sink{}
	e := push(b)
	reply := []byte(`{"specversion":"1.0","id":"delivery-1-labelled","source":"/functions/label-push","type":"com.example.push.labelled","datacontenttype":"application/json","data":{"repository":"octo/hello","labels":["default-branch"]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.payload(e); err != nil {
			b.Fatal(err)
		}
		if r, err := s.reply(reply); err != nil || r == nil {
			b.Fatal(err)
		}
	}
}
