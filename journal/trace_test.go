package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func withTrace(o *Options) { o.Trace = true; o.TraceRetention = time.Hour }

// TestTraceByID: the records of an event are found by its id, whatever
// characters it holds, apart from other events' (and from those of another
// source with the same id, which the look-up returns too, told apart by
// source); they survive a restart.
func TestTraceByID(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, withTrace)
	at := time.Now().UTC().Truncate(time.Millisecond)
	ids := []string{"plain", "a.b *>", "ünï cödé\n", "other", sameBucket("plain")}
	for i, id := range ids {
		j.Trace(TraceRecord{Kind: TraceAccepted, ID: id, Source: "/s", At: at, Type: "t", SourceName: "in", Routes: []string{"r"}})
		j.Trace(TraceRecord{Kind: TraceAttempt, ID: id, Source: "/s", At: at, Route: "r", Sink: "out", Attempt: 1,
			Outcome: "retried", Status: 500 + i, Error: "HTTP 500", DurationMs: 1.5})
	}
	j.Trace(TraceRecord{Kind: TraceAccepted, ID: "plain", Source: "/other", At: at})
	ctx := context.Background()
	j.FlushTrace()
	check := func(j *Journal) {
		t.Helper()
		for i, id := range ids {
			recs, err := j.TraceOf(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := 2
			if id == "plain" {
				want = 3
			}
			if len(recs) != want {
				t.Fatalf("%q: %d records, want %d: %+v", id, len(recs), want, recs)
			}
			for _, r := range recs {
				if r.ID != id {
					t.Errorf("%q: record of %q", id, r.ID)
				}
			}
			if recs[0].Kind != TraceAccepted || recs[1].Kind != TraceAttempt || recs[1].Status != 500+i || !recs[0].At.Equal(at) || recs[1].DurationMs != 1.5 {
				t.Errorf("%q: records %+v", id, recs)
			}
		}
		recs, err := j.TraceOf(ctx, "unknown")
		if err != nil || len(recs) != 0 {
			t.Errorf("unknown id: %v, %v", recs, err)
		}
	}
	check(j)
	j.Close()
	j = open(t, dir, withTrace)
	defer j.Close()
	check(j)
}

// sameBucket returns an id other than id in the same bucket of the event log.
func sameBucket(id string) string {
	for i := 0; ; i++ {
		if other := fmt.Sprint("c", i); traceBucket(other) == traceBucket(id) {
			return other
		}
	}
}

// TestTraceFullBufferDrops: past the writer's buffer, Trace drops records
// and counts them, without blocking.
func TestTraceFullBufferDrops(t *testing.T) {
	defer func(b, f int, e time.Duration) { traceBuffer, traceFlushAt, traceFlushEvery = b, f, e }(traceBuffer, traceFlushAt, traceFlushEvery)
	traceBuffer, traceFlushAt, traceFlushEvery = 10, 1000, time.Hour // nothing written on its own
	j := open(t, "", func(o *Options) { o.Memory = true; withTrace(o) })
	defer j.Close()
	for i := range 25 {
		j.Trace(TraceRecord{Kind: TraceAccepted, ID: fmt.Sprint(i), Source: "/s", At: time.Now()})
	}
	if got := j.TraceDropped(); got != 15 {
		t.Fatalf("dropped %d, want 15", got)
	}
	j.FlushTrace()
	for i, want := range map[int]int{0: 1, 9: 1, 10: 0} {
		recs, err := j.TraceOf(context.Background(), fmt.Sprint(i))
		if err != nil || len(recs) != want {
			t.Errorf("id %d: %d records (%v), want %d", i, len(recs), err, want)
		}
	}
}

// TestTraceOff: without Options.Trace there is no event log.
func TestTraceOff(t *testing.T) {
	j := open(t, "", func(o *Options) { o.Memory = true })
	defer j.Close()
	j.Trace(TraceRecord{Kind: TraceAccepted, ID: "x"})
	if _, err := j.TraceOf(context.Background(), "x"); !errors.Is(err, ErrTraceOff) {
		t.Fatalf("err %v, want ErrTraceOff", err)
	}
	if j.Tracing() {
		t.Fatal("Tracing() with the event log off")
	}
}

// TestEncodeTraceSplits: a message holds at most traceMaxMessage bytes of
// records, and at least one.
func TestEncodeTraceSplits(t *testing.T) {
	big := make([]byte, traceMaxMessage/3)
	for i := range big {
		big[i] = 'x'
	}
	recs := make([]TraceRecord, 5)
	for i := range recs {
		recs[i] = TraceRecord{Kind: TraceAttempt, ID: "x", Error: string(big)}
	}
	total := 0
	for len(recs) > 0 {
		data, n := encodeTrace(recs)
		if n < 1 || (n > 1 && len(data) > traceMaxMessage) {
			t.Fatalf("message of %d records, %d bytes", n, len(data))
		}
		total += n
		recs = recs[n:]
	}
	if total != 5 {
		t.Fatalf("%d records encoded, want 5", total)
	}
}

// FuzzDecodeTrace: any payload decodes to records of the id asked for, or
// an error, never a panic; what encodeTrace writes decodes to itself.
func FuzzDecodeTrace(f *testing.F) {
	data, _ := encodeTrace([]TraceRecord{{Kind: TraceAccepted, ID: "a", Source: "/s", Routes: []string{"r"}},
		{Kind: TraceAttempt, ID: "b", Route: "r", Sink: "s", Attempt: 2, Status: 503, Error: "x", DurationMs: 1.5}})
	f.Add(data, "a")
	f.Add([]byte(`[{"kind":"attempt","id":"a","at":"not a time"}]`), "a")
	f.Add([]byte(`{}`), "")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		recs, err := decodeTrace(nil, data, id)
		if err != nil && len(recs) > 0 {
			t.Fatalf("records %v with error %v", recs, err)
		}
		for _, r := range recs {
			if r.ID != id {
				t.Fatalf("record of %q for %q", r.ID, id)
			}
		}
		if err == nil && len(recs) > 0 {
			again, err := decodeTrace(nil, mustEncode(t, recs), id)
			if err != nil || len(again) != len(recs) {
				t.Fatalf("round trip: %d records, %v; want %d", len(again), err, len(recs))
			}
		}
	})
}

func mustEncode(t *testing.T, recs []TraceRecord) []byte {
	var out []byte
	for len(recs) > 0 {
		data, n := encodeTrace(recs)
		if out != nil {
			t.Skip("more than one message")
		}
		out, recs = data, recs[n:]
	}
	return out
}

// FuzzEncodeTrace: a record written by appendJSON reads back as the one
// json.Marshal writes does.
func FuzzEncodeTrace(f *testing.F) {
	f.Add("attempt", "id\x00\"\\\n", "/ü\xff", "r", "s", "HTTP 503 \u2028", 3, 503, 1.25, int64(1700000000123456789))
	f.Add("", "", "", "", "", "", 0, 0, 0.0, int64(0))
	f.Fuzz(func(t *testing.T, kind, id, source, route, sink, errText string, attempt, status int, ms float64, at int64) {
		r := TraceRecord{Kind: kind, ID: id, Source: source, At: time.Unix(0, at).UTC(), Type: errText, SourceName: sink,
			Routes: []string{route, sink}, Route: route, Sink: sink, Attempt: attempt, Outcome: kind, Status: status, Error: errText, DurationMs: ms}
		want, err := json.Marshal(r)
		if err != nil {
			t.Skip(err) // NaN, a year past 9999: not what the writer makes
		}
		got := r.appendJSON(nil)
		var a, b TraceRecord
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		if err := json.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("appendJSON %s\nreads as %+v\njson.Marshal %s\nreads as %+v", got, a, want, b)
		}
	})
}

// BenchmarkTraceOf measures one look-up in a bucket of the event log that
// holds `messages` messages (of 4 records each, of other events but for
// one). With the writer's one flush a second, a bucket gets at most one
// message a second: 86,400 a day at any rate of 4,096 events/s or more;
// at 100 events/s about 2,100 a day.
func BenchmarkTraceOf(b *testing.B) {
	for _, n := range []int{100, 2000, 20000, 86400} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			j := open(b, b.TempDir(), withTrace)
			defer j.Close()
			subject := j.traceSubject(traceBucket("target"))
			rec := func(id string) TraceRecord {
				return TraceRecord{Kind: TraceAttempt, ID: id, Source: "/bench", At: time.Now(), Route: "orders", Sink: "billing",
					Attempt: 1, Outcome: "delivered", DurationMs: 1.25}
			}
			for i := range n {
				recs := []TraceRecord{rec(fmt.Sprint("other-", i, "-0")), rec(fmt.Sprint("other-", i, "-1")), rec(fmt.Sprint("other-", i, "-2")), rec(fmt.Sprint("other-", i, "-3"))}
				if i == n/2 {
					recs[0] = rec("target")
				}
				data, _ := encodeTrace(recs)
				if err := j.trace.nc.Publish(subject, data); err != nil {
					b.Fatal(err)
				}
			}
			j.trace.nc.Flush()
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
				if info, err := j.trace.stream.Info(context.Background()); err == nil && info.State.Msgs == uint64(n) {
					break
				}
				if time.Now().After(deadline) {
					b.Fatal("messages not stored within a minute")
				}
			}
			b.ResetTimer()
			for range b.N {
				recs, err := j.TraceOf(context.Background(), "target")
				if err != nil || len(recs) != 1 {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
	}
}
