package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	at := time.Unix(1_800_000_000, 123456789)
	in := []*Entry{
		{Route: "r1", Data: []byte("one")},
		{Route: "", DeadLetter: true},
		{Route: "orders", Key: "customer-7", Priority: 9, NotBefore: at, Attempts: 4, Accepted: at.Add(-time.Hour), Seq: 1 << 40, Data: bytes.Repeat([]byte{0xff}, 300)},
	}
	out, err := decodeEnvelope(appendEnvelope(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d entries back, want %d", len(out), len(in))
	}
	for i := range in {
		w, g := *in[i], out[i]
		if len(w.Data) == 0 {
			w.Data = []byte{}
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	for _, bad := range [][]byte{nil, {'J'}, {'J', 3, 1, 0, 0, 0}, {'J', 1, 0}, {'J', 1, 1, 0x80, 0, 0}, {'J', 1, 1, 0, 1, 'r'}, {'J', 1, 1, 0, 0, 0, 'x'}, {'J', 1, 200, 0, 0, 0}} {
		if _, err := decodeEnvelope(bad); err == nil {
			t.Errorf("decodeEnvelope(%v) accepted a malformed envelope", bad)
		}
	}
}

const testTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestEnvelopeTraceVersions: an envelope with a trace context is version 2
// and reads back with it; one without stays version 1, byte for byte what
// the versions before trace contexts wrote (so they can read it); a
// version 1 envelope that claims a trace context is refused.
func TestEnvelopeTraceVersions(t *testing.T) {
	plain := []*Entry{{Route: "r", Key: "k", Attempts: 2, Data: []byte("ev")}}
	p1 := appendEnvelope(nil, plain)
	// Version 1 as written before: magic, version, count, flags (key and
	// attempts), route, key, attempts, data.
	want := []byte{'J', 1, 1, flagKey | flagAttempts, 1, 'r', 1, 'k', 2, 2, 'e', 'v'}
	if !bytes.Equal(p1, want) {
		t.Fatalf("envelope without a trace context:\n got %v\nwant %v", p1, want)
	}
	traced := []*Entry{{Route: "r", Data: []byte("a")}, {Route: "s", TraceParent: testTraceParent, TraceState: "vendor=x", Attempts: 1, Data: []byte("b")}}
	p2 := appendEnvelope(nil, traced)
	if p2[1] != 2 {
		t.Fatalf("envelope with a trace context has version %d, want 2", p2[1])
	}
	if isLegacy(nil, p2) {
		t.Fatal("a version 2 envelope is taken for a legacy message")
	}
	out, err := decodeEnvelope(p2)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].TraceParent != "" || out[1].TraceParent != testTraceParent || out[1].TraceState != "vendor=x" || string(out[1].Data) != "b" {
		t.Fatalf("read back %+v", out)
	}
	// The trace flag in a version 1 envelope is not version 1.
	bad := bytes.Clone(p2)
	bad[1] = 1
	if _, err := decodeEnvelope(bad); err == nil || !strings.Contains(err.Error(), "unknown flags") {
		t.Fatalf("version 1 with a trace context: %v", err)
	}
	for _, tc := range []struct{ tp, ts string }{{"", "x"}, {strings.Repeat("a", MaxTraceParentLen+1), ""}, {testTraceParent, strings.Repeat("a", MaxTraceStateLen+1)}} {
		b := []byte{'J', 2, 1}
		b = binary.AppendUvarint(b, flagTrace)
		b = appendString(b, "r")
		b = appendString(appendString(b, tc.tp), tc.ts)
		b = append(b, 0)
		if _, err := decodeEnvelope(b); err == nil {
			t.Errorf("trace context %.20q / %.20q accepted", tc.tp, tc.ts)
		}
	}
	if _, err := decodeEnvelope([]byte{'J', 3, 1, 0, 0, 0}); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("version 3: %v", err)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, []*Entry{{Route: "r", Data: []byte("x")}, {Route: "q", DeadLetter: true, Key: "k", Priority: 3}}))
	f.Add(appendEnvelope(nil, []*Entry{{Route: "r", NotBefore: time.Unix(5, 0), Attempts: 2, Accepted: time.Unix(1, 0), Seq: 9}}))
	f.Add(appendEnvelope(nil, []*Entry{{Route: "r", TraceParent: testTraceParent, TraceState: "k=v", Data: []byte("x")}, {Route: "q"}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		es, err := decodeEnvelope(p)
		if err != nil {
			return
		}
		// What was read encodes to an envelope that reads the same.
		ptrs := make([]*Entry, len(es))
		for i := range es {
			ptrs[i] = &es[i]
		}
		again, err := decodeEnvelope(appendEnvelope(nil, ptrs))
		if err != nil || len(again) != len(es) {
			t.Fatalf("re-encoding %d entries gave %d (%v)", len(es), len(again), err)
		}
		for i := range es {
			a, b := es[i], again[i]
			if a.Route != b.Route || a.Key != b.Key || a.Priority != b.Priority || a.DeadLetter != b.DeadLetter ||
				a.Attempts != b.Attempts || a.Seq != b.Seq || !a.NotBefore.Equal(b.NotBefore) || !a.Accepted.Equal(b.Accepted) ||
				a.TraceParent != b.TraceParent || a.TraceState != b.TraceState || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("entry %d changed on a round trip: %+v, then %+v", i, a, b)
			}
		}
	})
}

func TestLanes(t *testing.T) {
	l := lanes{prefix: "junction.x", delay: "junction-delay.x"}
	for _, tc := range []struct {
		e       Entry
		subject string
		filter  string
		durable string
	}{
		{Entry{Sink: "s"}, "junction.x.s.3", "junction.x.s.*", "s"},
		{Entry{Sink: "s", Priority: 7}, "junction.x.s.p7.3", "junction.x.s.p7.*", "s_p7"},
		{Entry{Sink: "s", Priority: 7, Key: "k"}, "junction.x.s.k.3", "junction.x.s.k.*", "s_k"},
	} {
		ln := l.of(&tc.e)
		if got := l.subject(ln, 3); got != tc.subject {
			t.Errorf("%+v: subject %q, want %q", tc.e, got, tc.subject)
		}
		if got := l.filter(ln); got != tc.filter {
			t.Errorf("%+v: filter %q, want %q", tc.e, got, tc.filter)
		}
		if got := l.consumer(ln); got != tc.durable {
			t.Errorf("%+v: consumer %q, want %q", tc.e, got, tc.durable)
		}
		back, n, ok := l.parse(tc.subject)
		if !ok || n != 3 || back != ln {
			t.Errorf("parse(%q) = %+v %d %v", tc.subject, back, n, ok)
		}
	}
	for _, bad := range []string{"junction.x.s", "junction.x.s.u", "junction.x.s.p0.1", "junction.x.s.p10.1", "junction.x.s.0", "junction.x.s.k.0", "other.s.1", "junction.x.s.q.1"} {
		if _, _, ok := l.parse(bad); ok {
			t.Errorf("parse(%q) accepted it", bad)
		}
	}
}

// legacyBatch encodes entries as a batch message of earlier versions.
func legacyBatch(entries []Entry) []byte {
	var buf []byte
	for _, e := range entries {
		buf = binary.AppendUvarint(buf, uint64(len(e.Route)))
		buf = append(buf, e.Route...)
		var flags byte
		if e.DeadLetter {
			flags |= 1
		}
		buf = append(buf, flags)
		buf = binary.AppendUvarint(buf, uint64(len(e.Data)))
		buf = append(buf, e.Data...)
	}
	return buf
}

func TestSplitLegacyBatch(t *testing.T) {
	in := []Entry{{Route: "r1", Data: []byte("one")}, {DeadLetter: true}, {Route: "route-3", Data: bytes.Repeat([]byte{0xff}, 300)}}
	out, err := splitBatch(legacyBatch(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d entries back, want %d", len(out), len(in))
	}
	for i := range in {
		w, g := in[i], out[i]
		if g.Route != w.Route || g.DeadLetter != w.DeadLetter || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range [][]byte{nil, {5, 'a'}, {1, 'r', 0, 9, 'x'}, {1, 'r'}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := splitBatch(bad); err == nil {
			t.Errorf("splitBatch(%v) accepted a malformed payload", bad)
		}
	}
}

// TestReadsEarlierVersions: a journal written by an earlier version (a
// single entry with headers, a batch frame, an entry retried alone with
// its attempts) is delivered after an upgrade, beside new entries.
func TestReadsEarlierVersions(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	old := j.lanes.prefix + ".s."
	single := &nats.Msg{Subject: old + "1", Data: []byte("single"), Header: nats.Header{}}
	single.Header.Set(HeaderRoute, "r1")
	batch := &nats.Msg{Subject: old + "2", Data: legacyBatch([]Entry{{Route: "r2", Data: []byte("b0")}, {Route: "r2", DeadLetter: true, Data: []byte("b1")}})}
	retried := &nats.Msg{Subject: old + "1", Data: []byte("retried"), Header: nats.Header{}}
	retried.Header.Set(HeaderRoute, "r3")
	retried.Header.Set(headerAttempts, "3")
	retried.Header.Set(headerAccepted, "1000000000")
	retried.Header.Set(headerDue, "0")
	for _, m := range []*nats.Msg{single, batch, retried} {
		if _, err := j.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "new", Data: []byte("new")}}); err != nil {
		t.Fatal(err)
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		got.add(d)
		d.Ack()
	})
	defer stop()
	eventually(t, 10*time.Second, "five entries", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		return len(got.seen) == 5
	})
	got.mu.Lock()
	defer got.mu.Unlock()
	byData := map[string]*Delivery{}
	for _, d := range got.seen {
		byData[string(d.Data)] = d
	}
	for data, route := range map[string]string{"single": "r1", "b0": "r2", "b1": "r2", "retried": "r3", "new": "new"} {
		d := byData[data]
		if d == nil || d.Route != route {
			t.Errorf("%q: %+v, want route %s", data, d, route)
		}
	}
	if d := byData["b1"]; d != nil && !d.DeadLetter {
		t.Error("the dead-letter mark of a batch entry was lost")
	}
	// The first letter of a route after its length, in a batch frame of
	// an earlier version, is never the envelope's version byte.
	if !isLegacy(nil, legacyBatch([]Entry{{Route: strings.Repeat("r", 'J'), Data: []byte("x")}})) {
		t.Error("a batch frame whose first route is 74 bytes long was taken for an envelope")
	}
	if d := byData["retried"]; d != nil && (d.Attempt != 4 || !d.Accepted.Equal(time.Unix(1, 0))) {
		t.Errorf("retried entry: attempt %d accepted %v, want 4 and %v", d.Attempt, d.Accepted, time.Unix(1, 0))
	}
}

func FuzzSplitBatch(f *testing.F) {
	f.Add(legacyBatch([]Entry{{Route: "r", Data: []byte("x")}, {Route: "q", DeadLetter: true}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		es, err := splitBatch(p)
		if err != nil {
			return
		}
		// What was read encodes to a frame that reads the same.
		again, err := splitBatch(legacyBatch(es))
		if err != nil || len(again) != len(es) {
			t.Fatalf("re-encoding %d entries gave %d (%v)", len(es), len(again), err)
		}
		for i := range es {
			if es[i].Route != again[i].Route || es[i].DeadLetter != again[i].DeadLetter || !bytes.Equal(es[i].Data, again[i].Data) {
				t.Fatalf("entry %d changed on a round trip", i)
			}
		}
	})
}
