package journal

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

func codecEvents() []*event.Event {
	full := event.New()
	full.SetID("id-1")
	full.SetSource("https://example.org/src?x=1")
	full.SetType("com.example.t")
	full.SetSubject("héllo wörld")
	full.SetTime(time.Date(2026, 11, 23, 1, 2, 3, 456789000, time.UTC))
	full.SetDataSchema("https://example.org/schema")
	full.SetExtension("tenant", "acme")
	full.SetExtension("attempts", int32(3))
	full.SetExtension("flag", true)
	full.SetExtension("when", types.Timestamp{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)})
	full.SetData("application/json", map[string]any{"a": []int{1, 2}})

	bin := event.New()
	bin.SetID("b")
	bin.SetSource("/s")
	bin.SetType("t")
	bin.SetData("application/octet-stream", []byte{0, 0xff, 0xfe})
	bin.DataBase64 = true

	bare := event.New()
	bare.SetID("bare")
	bare.SetSource("/s")
	bare.SetType("t")

	old := event.New(event.CloudEventsVersionV03)
	old.SetID("v03")
	old.SetSource("/s")
	old.SetType("t")
	old.SetData("text/plain", "hello")
	// JSON data of a media type sdk-go does not take for JSON (*/*+json,
	// sdk-go#1161) is stored byte for byte, in both forms.
	plus := event.New()
	plus.SetID("plus")
	plus.SetSource("/s")
	plus.SetType("t")
	plus.SetDataContentType("application/vnd.api+json")
	plus.DataEncoded = []byte(`{"a":[1,"x"]}`)

	oldPlus := event.New(event.CloudEventsVersionV03)
	oldPlus.SetID("v03plus")
	oldPlus.SetSource("/s")
	oldPlus.SetType("t")
	oldPlus.SetDataContentType("application/geo+json")
	oldPlus.DataEncoded = []byte(`"a string"`)
	return []*event.Event{&full, &bin, &bare, &old, &plus, &oldPlus}
}

// TestCodecRoundTrip checks that every event comes back equal, attribute by
// attribute, with its data byte for byte and its extension types.
func TestCodecRoundTrip(t *testing.T) {
	for _, in := range codecEvents() {
		b, err := EncodeEvent(nil, in)
		if err != nil {
			t.Fatalf("%s: %v", in.ID(), err)
		}
		var out event.Event
		if err := DecodeEvent(b, &out); err != nil {
			t.Fatalf("%s: decode: %v", in.ID(), err)
		}
		wantJSON, _ := json.Marshal(in)
		gotJSON, _ := json.Marshal(out)
		if !bytes.Equal(wantJSON, gotJSON) {
			t.Errorf("%s: round trip\n got  %s\n want %s", in.ID(), gotJSON, wantJSON)
		}
		if !bytes.Equal(out.Data(), in.Data()) {
			t.Errorf("%s: data %q, want %q", in.ID(), out.Data(), in.Data())
		}
		for k, v := range in.Extensions() {
			if got := out.Extensions()[k]; got != v {
				t.Errorf("%s: extension %s = %#v, want %#v", in.ID(), k, got, v)
			}
		}
		if in.SpecVersion() == event.CloudEventsVersionV1 && b[0] != formatBinary {
			t.Errorf("%s: a 1.0 event was not stored in the binary form", in.ID())
		}
	}
}

// TestCodecReadsJSON checks that entries in the JSON format (earlier
// versions, other spec versions) are still read.
func TestCodecReadsJSON(t *testing.T) {
	in := codecEvents()[0]
	b, _ := in.MarshalJSON()
	var out event.Event
	if err := DecodeEvent(b, &out); err != nil || out.ID() != in.ID() || out.Extensions()["tenant"] != "acme" {
		t.Fatalf("JSON entry: %v %s", err, out)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, e := range codecEvents() {
		b, _ := EncodeEvent(nil, e)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e event.Event
		if err := DecodeEvent(b, &e); err != nil {
			return
		}
		if _, err := EncodeEvent(nil, &e); err != nil && b[0] == formatBinary {
			t.Fatalf("decoded an entry that does not encode again: %v", err)
		}
	})
}

func BenchmarkCodec(b *testing.B) {
	e := codecEvents()[0]
	e.SetData("application/json", bytes.Repeat([]byte("x"), 1000))
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = EncodeEvent(buf[:0], e)
			var out event.Event
			if err := DecodeEvent(buf, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ := e.MarshalJSON()
			var out event.Event
			if err := out.UnmarshalJSON(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
