package sqssink

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDeliver measures Deliver against the real server with 64
// concurrent callers (the router's default sink concurrency), so that
// batches form as they would under load.
func BenchmarkDeliver(b *testing.B) {
	c := broker(b)
	q := queue(b, c, "bench")
	s := build(b, q, nil)
	e := testEvent(b, "bench")
	var n atomic.Int64
	b.SetParallelism(32) // × GOMAXPROCS callers
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ev := e.Clone()
			ev.SetID(fmt.Sprint("bench-", n.Add(1)))
			if err := s.Deliver(context.Background(), &ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkEncodeBinary measures the binary-mode encoding of one event.
func BenchmarkEncodeBinary(b *testing.B) {
	s := newSink(nil, "http://127.0.0.1:4566/000000000000/q", true, nil, nil)
	defer s.Close()
	e := testEvent(b, "evt-1")
	e.SetDataSchema("")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.encode(e); err != nil {
			b.Fatal(err)
		}
	}
}
