package natssource

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

func hdr(kv ...string) nats.Header {
	h := nats.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = []string{kv[i+1]}
	}
	return h
}

var testWrap = wrap{id: "S:7", subject: "orders.created", eventType: DefaultEventType, time: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}

func TestDecode(t *testing.T) {
	binary := []string{"ce-specversion", "1.0", "ce-id", "42", "ce-source", "/shop", "ce-type", "com.example.order.created"}
	tests := []struct {
		name   string
		header nats.Header
		data   string
		// want is "id|source|type|datacontenttype|data" and extensions as
		// name=value, or the error.
		want, ext, err string
	}{
		{name: "binary", header: hdr(append(binary, "content-type", "application/json", "ce-subject", "o 1", "ce-time", "2024-05-01T10:00:00Z", "ce-tenant", "acme")...),
			data: `{"amount":1}`, want: `42|/shop|com.example.order.created|application/json|{"amount":1}`, ext: "tenant=acme"},
		{name: "binary header case", header: hdr("Ce-Specversion", "1.0", "CE-ID", "42", "Ce-Source", "/shop", "ce-TYPE", "t", "Content-Type", "text/plain", "Ce-Tenant", "acme"),
			data: "hi", want: "42|/shop|t|text/plain|hi", ext: "tenant=acme"},
		{name: "binary without data", header: hdr(binary...), want: "42|/shop|com.example.order.created||"},
		{name: "binary 0.3", header: hdr("ce-specversion", "0.3", "ce-id", "1", "ce-source", "/s", "ce-type", "t"), want: "1|/s|t||"},
		{name: "structured", header: hdr("content-type", "application/cloudevents+json; charset=utf-8"),
			data: `{"specversion":"1.0","id":"9","source":"/s","type":"t","datacontenttype":"application/json","data":{"a":1},"tenant":"x"}`,
			want: `9|/s|t|application/json|{"a":1}`, ext: "tenant=x"},
		{name: "structured without headers", data: ` {"specversion":"1.0","id":"9","source":"/s","type":"t"}`, want: "9|/s|t||"},
		{name: "wrap json", data: `{"orderId":"o-1"}`, want: `S:7|nats://orders.created|io.nats.message|application/json|{"orderId":"o-1"}`},
		{name: "wrap json with a nested specversion", data: `{"meta":{"specversion":"1.0"}}`, want: `S:7|nats://orders.created|io.nats.message|application/json|{"meta":{"specversion":"1.0"}}`},
		{name: "wrap text", data: "hello", want: "S:7|nats://orders.created|io.nats.message|application/octet-stream|hello"},
		{name: "wrap with content-type", header: hdr("content-type", "text/csv", "X-Other", "1"), data: "a,b", want: "S:7|nats://orders.created|io.nats.message|text/csv|a,b"},
		{name: "wrap json with content-type json", header: hdr("content-type", "application/json"), data: `{"specversion":"1.0"}`,
			want: `S:7|nats://orders.created|io.nats.message|application/json|{"specversion":"1.0"}`},
		{name: "wrap empty", want: "S:7|nats://orders.created|io.nats.message||"},

		{name: "binary without id", header: hdr("ce-specversion", "1.0", "ce-source", "/s", "ce-type", "t"), err: `binary mode: missing required attribute "id" (header ce-id)`},
		{name: "binary empty id", header: hdr("ce-specversion", "1.0", "ce-id", "", "ce-source", "/s", "ce-type", "t"), err: `binary mode: invalid attribute "id" (header ce-id): must be non-empty`},
		{name: "binary bad specversion", header: hdr("ce-specversion", "2.0", "ce-id", "1"), err: `binary mode: invalid attribute "specversion" (header ce-specversion): unsupported value "2.0" (use 1.0 or 0.3)`},
		{name: "binary bad time", header: hdr(append(binary, "ce-time", "yesterday")...), err: `binary mode: invalid attribute "time" (header ce-time): not an RFC 3339 timestamp: "yesterday"`},
		{name: "binary bad extension name", header: hdr(append(binary, "ce-bad_name", "x")...), err: `binary mode: invalid attribute name "bad_name" (header ce-bad_name): use only letters a-z and digits`},
		{name: "binary header given twice", header: hdr(append(binary, "CE-ID", "43")...), err: `binary mode: invalid attribute "id" (header ce-id): given twice (names that differ only in case or prefix)`},
		{name: "binary not UTF-8", header: hdr(append(binary, "ce-tenant", "\xff")...), err: `binary mode: invalid attribute "tenant" (header ce-tenant): not valid UTF-8`},
		{name: "structured bad json", header: hdr("content-type", "application/cloudevents+json"), data: `{"specversion":`, err: "structured mode: the payload is not valid JSON"},
		{name: "structured array", header: hdr("content-type", "application/cloudevents+json"), data: `[1]`, err: "structured mode: expected a JSON object (one CloudEvent)"},
		{name: "structured empty", header: hdr("content-type", "application/cloudevents+json"), err: "structured mode: empty payload"},
		{name: "structured missing type", data: `{"specversion":"1.0","id":"9","source":"/s"}`, err: "structured mode: type: MUST be a non-empty string"},
		{name: "structured data_base64 number", data: `{"specversion":"1.0","id":"9","source":"/s","type":"t","data_base64":1}`, err: "structured mode: "},
		{name: "batch", header: hdr("content-type", "application/cloudevents-batch+json"), data: `[]`, err: `unsupported event format "application/cloudevents-batch+json": use application/cloudevents+json or binary mode`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := decode(tt.header, []byte(tt.data), testWrap)
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("error %v, want prefix %q", err, tt.err)
				}
				if e != nil {
					t.Fatal("an event and an error")
				}
				if _, ok := err.(*MalformedError); !ok {
					t.Fatalf("error type %T", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join([]string{e.ID(), e.Source(), e.Type(), e.DataContentType(), string(e.Data())}, "|")
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var ext []string
			for k, v := range e.Extensions() {
				ext = append(ext, k+"="+v.(string))
			}
			if strings.Join(ext, ",") != tt.ext {
				t.Errorf("extensions %v, want %s", ext, tt.ext)
			}
			if err := e.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestDecodeBinaryAttributes(t *testing.T) {
	e, err := decode(hdr("ce-specversion", "1.0", "ce-id", "1", "ce-source", "/s", "ce-type", "t",
		"ce-subject", "order 42 ✓", "ce-time", "2024-05-01T10:00:00.5Z", "ce-dataschema", "https://example.com/s.json"), nil, testWrap)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject() != "order 42 ✓" || !e.Time().Equal(time.Date(2024, 5, 1, 10, 0, 0, 5e8, time.UTC)) || e.DataSchema() != "https://example.com/s.json" {
		t.Errorf("attributes: %v", e)
	}
}

func TestDecodeWrapTime(t *testing.T) {
	e, err := decode(nil, []byte("x"), testWrap)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Time().Equal(testWrap.time) {
		t.Errorf("time %v", e.Time())
	}
}

// FuzzDecode: arbitrary headers and payloads never panic; an error is a
// bounded line, an event validates.
func FuzzDecode(f *testing.F) {
	f.Add("application/cloudevents+json", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`))
	f.Add("", "1.0", "ce-time", "x", []byte("data"))
	f.Add("", "0.3", "ce-datacontentencoding", "", []byte(`x`))
	f.Add("", "", "", "", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":1}`))
	f.Fuzz(func(t *testing.T, ct, sv, k, v string, data []byte) {
		h := nats.Header{}
		if ct != "" {
			h["content-type"] = []string{ct}
		}
		if sv != "" {
			h["ce-specversion"] = []string{sv}
			h["ce-id"], h["ce-source"], h["ce-type"] = []string{"1"}, []string{"/s"}, []string{"t"}
		}
		if k != "" {
			h[k] = []string{v}
		}
		e, err := decode(h, data, testWrap)
		if err != nil {
			if len(err.Error()) > maxReason || strings.ContainsAny(err.Error(), "\r\n") || !utf8.ValidString(err.Error()) {
				t.Fatalf("reason not one bounded line: %q", err.Error())
			}
			return
		}
		if verr := e.Validate(); verr != nil {
			t.Fatalf("event does not validate: %v", verr)
		}
	})
}

func TestTermWithReason(t *testing.T) {
	for v, want := range map[string]bool{"2.9.10": false, "2.10.3": false, "2.10.4": true, "2.10.14-beta": true, "2.11.0": true, "3.0.0": true, "": false, "x": false} {
		if got := termWithReason(v); got != want {
			t.Errorf("termWithReason(%q) = %v", v, got)
		}
	}
}
