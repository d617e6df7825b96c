package cehttp

import (
	"bytes"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
)

// FuzzBinaryRoundTrip: an event that ParseEvent's own rules accept, written
// with SetBinaryHeaders, reads back the same with ParseEvent; and
// cebinding.PctDecode undoes cebinding.PctEncode for any UTF-8 string.
func FuzzBinaryRoundTrip(f *testing.F) {
	f.Add("id 1 ✓", "com.example.t", `order 42 "q" 100%`, "tenant", "acme corp", "application/json", []byte(`{"a":1}`))
	f.Add("1", "t", "", "x", "", "", []byte(nil))
	f.Add("%41", "t\x7f", "\u2028", "subject", "s", "text/plain; charset=utf-8", []byte("hi"))
	f.Add("1", "t", "a", "Tenant", "%", "application/cloudevents+json", []byte("{"))
	// Conformance seeds: a quoted-looking subject, +json data, JSON data
	// without datacontenttype (the implied application/json), a type-less
	// media type.
	f.Add("1", "t", `"a b"`, "ext", `"x"`, "application/vnd.api+json", []byte(`{"a":[1]}`))
	f.Add("1", "t", "s", "ext", "v", "", []byte(`"just a string"`))
	f.Add("1", "t", "s", "ext", "v", "json", []byte(`{}`))
	f.Fuzz(func(t *testing.T, id, typ, subject, extName, extValue, ct string, data []byte) {
		for _, s := range []string{id, typ, subject, extName, extValue} {
			if back, err := cebinding.PctDecode(cebinding.PctEncode(s)); utf8.ValidString(s) && (err != nil || back != s) {
				t.Fatalf("PctDecode(PctEncode(%q)) = %q, %v", s, back, err)
			}
			if !utf8.ValidString(s) {
				return // CloudEvents strings are Unicode
			}
		}
		e := event.New()
		e.SetID(id)
		e.SetSource("/s")
		e.SetType(typ)
		if subject != "" {
			e.SetSubject(subject)
		}
		if extName != "" {
			if err := e.Context.SetExtension(extName, extValue); err != nil {
				return
			}
		}
		if ct != "" {
			e.SetDataContentType(ct)
		}
		if len(data) > 0 {
			e.DataEncoded = data
		}
		if validate(&e) != nil {
			return
		}
		h := http.Header{}
		if err := SetBinaryHeaders(h, &e); err != nil {
			return
		}
		got, err := ParseEvent(h, data)
		if err != nil {
			t.Fatalf("ParseEvent of %v written as %v: %v", &e, h, err)
		}
		if got.ID() != e.ID() || got.Type() != e.Type() || got.Subject() != e.Subject() || got.Source() != e.Source() ||
			got.DataContentType() != cejson.ContentType(&e) || !bytes.Equal(got.Data(), e.Data()) ||
			len(got.Extensions()) != len(e.Extensions()) {
			t.Fatalf("round trip through %v:\n got %v\nwant %v", h, got, &e)
		}
		for k, v := range e.Extensions() {
			if got.Extensions()[k] != v {
				t.Fatalf("extension %s: got %v, want %v", k, got.Extensions()[k], v)
			}
		}
	})
}
