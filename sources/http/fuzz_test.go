package httpsource

import (
	"bytes"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cejson"
)

// FuzzParseRequest feeds arbitrary content types, ce- headers and bodies to
// ParseRequest: it must never panic, refuse with a 4xx and a bounded
// one-line reason, and every event it returns must validate. An integer
// extension of an accepted structured or batch event must be exactly the
// number its JSON text stands for, and come back the same from the JSON
// format the journal stores.
func FuzzParseRequest(f *testing.F) {
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(structured))
	f.Add(ContentTypeBatch, "", "", "", "", "", "", []byte(batchOf(3)))
	f.Add("application/json", "1.0", "1", "/s", "t", "Tenant", "acme", []byte(`{"a":1}`))
	f.Add("", "0.3", "1", "/s", "t", "Schemaurl", "http://x", []byte(nil))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":1}`))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"datacontentencoding":"","specversion":"0.3"}`))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/x+json","data":[1]}`))
	f.Add(ContentTypeBatch, "", "", "", "", "", "", []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"\"]\\"}]`))
	for _, v := range []string{"7", "1.5", "1e3", "1e400", "1e-400", "2147483647.0", "2147483648", "-2147483649", "0.1e1", "true", "null", `{"a":1}`} {
		f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":`+v+`}`))
		f.Add(ContentTypeBatch, "", "", "", "", "", "", []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":`+v+`}]`))
	}
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"0.3","id":"1","source":"/s","type":"t","dataschema":12.0,"b":-0}`))
	// Conformance seeds: quoted header values, an empty subject, a
	// type-less media type, null attributes, data with data_base64, an
	// empty batch and a batch of mixed specversions.
	f.Add("text/plain", "1.0", "1", "/s", "t", "Subject", `"a \"b\" %20"`, []byte("x"))
	f.Add("json", "1.0", "1", "/s", "t", "Subject", "", []byte("{}"))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":null,"subject":null,"data":1}`))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}`))
	f.Add(ContentTypeBatch, "", "", "", "", "", "", []byte(`[]`))
	f.Add(ContentTypeBatch, "", "", "", "", "", "", []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"0.3","id":"1","source":"/s","type":"t"}]`))
	f.Fuzz(func(t *testing.T, contentType, specversion, id, source, typ, ext, extValue string, body []byte) {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		for k, v := range map[string]string{"Ce-Specversion": specversion, "Ce-Id": id, "Ce-Source": source, "Ce-Type": typ} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		if ext != "" {
			h["Ce-"+ext] = []string{extValue}
		}
		events, err := ParseRequest(h, body)
		if err != nil {
			if events != nil {
				t.Fatalf("events and an error")
			}
			switch err.Status {
			case 400, 415:
			default:
				t.Fatalf("status %d", err.Status)
			}
			checkReason(t, err.Reason)
			return
		}
		empty := len(events) == 0 && strings.EqualFold(cejson.MediaType(contentType), ContentTypeBatch)
		if (len(events) == 0 && !empty) || len(events) > MaxBatchEvents {
			t.Fatalf("%d events without an error", len(events))
		}
		for i, e := range events {
			if e == nil {
				t.Fatalf("event %d is nil", i)
			}
			if verr := e.Validate(); verr != nil {
				t.Fatalf("event %d does not validate: %v", i, verr)
			}
			if verr := cejson.Check(e); verr != nil {
				t.Fatalf("event %d breaks a core rule: %v", i, verr)
			}
			if e.SpecVersion() != events[0].SpecVersion() {
				t.Fatalf("event %d: specversion %s in a batch of %s", i, e.SpecVersion(), events[0].SpecVersion())
			}
		}
		checkIntegers(t, cejson.MediaType(contentType), body, events)
	})
}

// checkIntegers checks that each int32 extension of events, read from body
// in structured or batch mode, is the value its JSON number stands for,
// computed exactly, and survives the journal's JSON format.
func checkIntegers(t *testing.T, mt string, body []byte, events []*event.Event) {
	t.Helper()
	var objects []map[string]json.RawMessage
	switch {
	case strings.EqualFold(mt, ContentTypeStructured):
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			t.Fatalf("accepted a structured body that is not a JSON object")
		}
		objects = append(objects, m)
	case strings.EqualFold(mt, ContentTypeBatch):
		if json.Unmarshal(body, &objects) != nil || len(objects) != len(events) {
			t.Fatalf("accepted a batch that is not an array of %d objects", len(events))
		}
	default:
		return // binary mode: extensions are strings
	}
	for i, e := range events {
		for name, v := range e.Extensions() {
			n, ok := v.(int32)
			if !ok {
				continue
			}
			var raw json.RawMessage
			for k, r := range objects[i] {
				if strings.EqualFold(k, name) {
					raw = r
				}
			}
			num := string(bytes.TrimSpace(raw))
			// big.Rat computes 10^exponent: keep it small enough.
			if j := strings.IndexAny(num, "eE"); j >= 0 && len(strings.TrimLeft(num[j+1:], "+-0")) > 4 {
				continue
			}
			want, ok := new(big.Rat).SetString(num)
			if !ok {
				t.Fatalf("event %d: %s is int32 %d, but its JSON value %q is not a number", i, name, n, num)
			}
			if !want.IsInt() || want.Num().Cmp(big.NewInt(int64(n))) != 0 {
				t.Fatalf("event %d: %s is int32 %d, but its JSON value is %s", i, name, n, num)
			}
			b, err := e.MarshalJSON()
			if err != nil {
				t.Fatalf("event %d: journal encoding: %v", i, err)
			}
			var back event.Event
			if err := back.UnmarshalJSON(b); err != nil {
				t.Fatalf("event %d: journal decoding: %v", i, err)
			}
			if got := back.Extensions()[name]; got != n {
				t.Fatalf("event %d: %s is %d, %#v after the journal", i, name, n, got)
			}
		}
	}
}
