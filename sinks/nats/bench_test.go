package natssink

import (
	"context"
	"fmt"
	"testing"

	"github.com/junctionhq/junction/internal/natstest"
)

func benchDeliver(b *testing.B, jetStream, parallel bool) {
	_, js := natstest.Connect(b)
	_, prefix := natstest.NewStream(b, js)
	s := build(b, fmt.Sprintf("url: %s\nsubject: '%q + tenant'\njetstream: %v", natstest.URL(), prefix+".", jetStream))
	e := newEvent("x")
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Deliver(context.Background(), e); err != nil {
					b.Fatal(err)
				}
			}
		})
	} else {
		for b.Loop() {
			if err := s.Deliver(context.Background(), e); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDeliverJetStream publishes to the real broker and waits for
// each PubAck (the same event: the stream drops the duplicates, as it does
// for retried deliveries).
func BenchmarkDeliverJetStream(b *testing.B)         { benchDeliver(b, true, false) }
func BenchmarkDeliverJetStreamParallel(b *testing.B) { benchDeliver(b, true, true) }
func BenchmarkDeliverCore(b *testing.B)              { benchDeliver(b, false, false) }

func BenchmarkEncodeBinary(b *testing.B) {
	e := newEvent("x")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeBinary("a.b", e); err != nil {
			b.Fatal(err)
		}
	}
}
