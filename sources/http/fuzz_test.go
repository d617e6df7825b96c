package httpsource

import (
	"net/http"
	"testing"
)

// FuzzParseRequest feeds arbitrary content types, ce- headers and bodies to
// ParseRequest: it must never panic, refuse with a 4xx and a bounded
// one-line reason, and every event it returns must validate.
func FuzzParseRequest(f *testing.F) {
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(structured))
	f.Add(ContentTypeBatch, "", "", "", "", "", "", []byte(batchOf(3)))
	f.Add("application/json", "1.0", "1", "/s", "t", "Tenant", "acme", []byte(`{"a":1}`))
	f.Add("", "0.3", "1", "/s", "t", "Schemaurl", "http://x", []byte(nil))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":1}`))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"datacontentencoding":"","specversion":"0.3"}`))
	f.Add(ContentTypeStructured, "", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/x+json","data":[1]}`))
	f.Add(ContentTypeBatch, "", "", "", "", "", "", []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"\"]\\"}]`))
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
		if len(events) == 0 || len(events) > MaxBatchEvents {
			t.Fatalf("%d events without an error", len(events))
		}
		for i, e := range events {
			if e == nil {
				t.Fatalf("event %d is nil", i)
			}
			if verr := e.Validate(); verr != nil {
				t.Fatalf("event %d does not validate: %v", i, verr)
			}
		}
	})
}
