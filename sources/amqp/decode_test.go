package amqpsource

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func testSource() *Source {
	return &Source{source: "amqp://127.0.0.1:5672/orders", typ: "com.example.wrapped", queue: "orders", log: discardLogger()}
}

func TestDecodeBinary(t *testing.T) {
	ts := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	d := &amqp.Delivery{
		ContentType: "application/json",
		Headers: amqp.Table{
			"cloudEvents:specversion": "1.0",
			"cloudEvents:id":          "b-1",
			"cloudEvents:source":      "/shop",
			"cloudEvents:type":        "order.created",
			"cloudEvents:subject":     "café 42",
			"cloudEvents:time":        ts, // native AMQP timestamp
			"cloudEvents:dataschema":  "https://example.com/s.json",
			"cloudEvents:tenant":      "acme",
			"cloudEvents:priority":    int32(7),
			"cloudEvents:urgent":      true,
			"cloudEvents:blob":        []byte{0, 1, 2},
			"x-other":                 "ignored",
		},
		Body: []byte(`{"amount":120}`),
	}
	evs, err := testSource().decode(d)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	if e.ID() != "b-1" || e.Source() != "/shop" || e.Type() != "order.created" || e.Subject() != "café 42" ||
		!e.Time().Equal(ts) || e.DataSchema() != "https://example.com/s.json" || e.DataContentType() != "application/json" ||
		string(e.Data()) != `{"amount":120}` {
		t.Errorf("event: %s", e)
	}
	ext := e.Extensions()
	if ext["tenant"] != "acme" || ext["priority"] != int32(7) || ext["urgent"] != true || string(ext["blob"].([]byte)) != "\x00\x01\x02" || ext["xother"] != nil {
		t.Errorf("extensions: %#v", ext)
	}
	// The event survives the journal's JSON encoding unchanged.
	b, err := e.MarshalJSON()
	if err != nil || !strings.Contains(string(b), `"data":{"amount":120}`) {
		t.Errorf("JSON: %s %v", b, err)
	}
}

func TestDecodeBinaryStringForms(t *testing.T) {
	// The canonical string form of every attribute, the cloudEvents_
	// prefix of JMS-style clients, and names in any case (lower-cased, as
	// every transport reads them).
	d := &amqp.Delivery{
		Headers: amqp.Table{
			"cloudEvents_specversion": "1.0",
			"cloudEvents_id":          []byte("b-2"),
			"cloudEvents_source":      "/shop",
			"cloudEvents_type":        "t",
			"cloudEvents_time":        "2024-03-01T12:00:00.123456789Z",
			"CLOUDEVENTS_Tenant":      "acme",
		},
		Body: []byte("plain text"),
	}
	evs, err := testSource().decode(d)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	if e.ID() != "b-2" || e.Time().Nanosecond() != 123456789 || string(e.Data()) != "plain text" || e.Extensions()["tenant"] != "acme" {
		t.Errorf("event: %s", e)
	}
}

func TestDecodeStructuredAndBatch(t *testing.T) {
	s := testSource()
	evs, err := s.decode(&amqp.Delivery{
		ContentType: "application/cloudevents+json; charset=utf-8",
		Body:        []byte(`{"specversion":"1.0","id":"s-1","source":"/s","type":"t","tenant":"acme","data":{"x":1}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := evs[0]; e.ID() != "s-1" || e.Extensions()["tenant"] != "acme" || string(e.Data()) != `{"x":1}` {
		t.Errorf("structured: %s", e)
	}
	evs, err = s.decode(&amqp.Delivery{
		ContentType: "application/cloudevents-batch+json",
		Body:        []byte(`[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t"}]`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].ID() != "a" || evs[1].ID() != "b" {
		t.Errorf("batch: %v", evs)
	}
}

func TestDecodeWrapped(t *testing.T) {
	s := testSource()
	ts := time.Unix(1700000000, 0)
	d := &amqp.Delivery{
		MessageId:   "m-1",
		RoutingKey:  "orders.eu",
		ContentType: "application/json",
		Timestamp:   ts,
		Body:        []byte(`{"n":1}`),
	}
	evs, err := s.decode(d)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	if e.ID() != "m-1" || e.Source() != "amqp://127.0.0.1:5672/orders" || e.Type() != "com.example.wrapped" ||
		e.Subject() != "orders.eu" || !e.Time().Equal(ts) || e.DataContentType() != "application/json" || string(e.Data()) != `{"n":1}` {
		t.Errorf("wrapped: %s", e)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}

	// Without message-id: a stable hash, the same on redelivery, different
	// for a different body.
	d2 := &amqp.Delivery{RoutingKey: "k", Body: []byte{0xff, 0xfe, 'x'}, DeliveryTag: 1, Headers: amqp.Table{"a": "1", "b": int32(2)}}
	id1 := s.wrap(d2).ID()
	d2.DeliveryTag, d2.Redelivered = 9, true
	if id2 := s.wrap(d2).ID(); id2 != id1 || len(id1) != 32 {
		t.Errorf("ids %q and %q: want the same 32 hex digits on redelivery", id1, id2)
	}
	d2.Body = []byte("other")
	if id3 := s.wrap(d2).ID(); id3 == id1 {
		t.Error("a different body gave the same id")
	}
	// Binary data survives the journal's JSON encoding (base64).
	w := s.wrap(&amqp.Delivery{Body: []byte{0xff, 0x00}})
	b, err := w.MarshalJSON()
	if err != nil || !strings.Contains(string(b), `"data_base64":"/wA="`) {
		t.Errorf("binary data: %s %v", b, err)
	}
	// Invalid JSON under a JSON content type is kept as bytes too.
	w = s.wrap(&amqp.Delivery{ContentType: "application/json", Body: []byte(`{broken`)})
	if b, err := w.MarshalJSON(); err != nil || !strings.Contains(string(b), `"data_base64"`) {
		t.Errorf("broken JSON data: %s %v", b, err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	base := func() amqp.Table {
		return amqp.Table{"cloudEvents:specversion": "1.0", "cloudEvents:id": "1", "cloudEvents:source": "/s", "cloudEvents:type": "t"}
	}
	with := func(k string, v any) amqp.Table {
		h := base()
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	cases := []struct {
		name string
		d    amqp.Delivery
		want string
	}{
		{"no specversion", amqp.Delivery{Headers: with("cloudEvents:specversion", nil)}, `missing required attribute "specversion" (header cloudEvents:specversion)`},
		{"no id", amqp.Delivery{Headers: with("cloudEvents:id", nil)}, `missing required attribute "id" (header cloudEvents:id)`},
		{"empty source", amqp.Delivery{Headers: with("cloudEvents:source", " ")}, `invalid attribute "source" (header cloudEvents:source): must be non-empty`},
		{"type not a string", amqp.Delivery{Headers: with("cloudEvents:type", int32(3))}, `invalid attribute "type" (header cloudEvents:type): must be a string, not integer`},
		{"version", amqp.Delivery{Headers: with("cloudEvents:specversion", "2.0")}, `invalid attribute "specversion" (header cloudEvents:specversion): unsupported value "2.0" (use 1.0 or 0.3)`},
		{"time", amqp.Delivery{Headers: with("cloudEvents:time", "yesterday")}, `invalid attribute "time" (header cloudEvents:time): not an RFC 3339 timestamp: "yesterday"`},
		{"subject type", amqp.Delivery{Headers: with("cloudEvents:subject", 1.5)}, `invalid attribute "subject" (header cloudEvents:subject): must be a string, not floating point number`},
		{"extension type", amqp.Delivery{Headers: with("cloudEvents:tenant", amqp.Table{"a": 1})}, `invalid attribute "tenant" (header cloudEvents:tenant): unsupported value type map (use a string, boolean, integer, binary or timestamp)`},
		{"extension range", amqp.Delivery{Headers: with("cloudEvents:big", int64(1)<<40)}, `invalid attribute "big" (header cloudEvents:big): integer out of range (CloudEvents integers are 32-bit)`},
		{"extension name", amqp.Delivery{Headers: with("cloudEvents:my-ext", "x")}, `invalid attribute name "my-ext" (header cloudEvents:my-ext): use only letters a-z and digits`},
		{"datacontenttype header", amqp.Delivery{Headers: with("cloudEvents:datacontenttype", "text/plain")}, `invalid attribute "datacontenttype" (header cloudEvents:datacontenttype): in binary mode the message's content-type is the datacontenttype; it MUST NOT be present as an attribute`},
		{"duplicate", amqp.Delivery{Headers: with("cloudevents_id", "2")}, `invalid attribute "id" (header cloudevents_id): given twice (names that differ only in case or prefix)`},
		{"duplicate specversion", amqp.Delivery{Headers: with("cloudEvents_specversion", "1.0")}, `invalid attribute "specversion" (header cloudEvents_specversion): given twice (names that differ only in case or prefix)`},
		{"specversion type", amqp.Delivery{Headers: with("cloudEvents:specversion", int32(1))}, `invalid attribute "specversion" (header cloudEvents:specversion): must be a string`},
		{"bad content type", amqp.Delivery{Headers: base(), ContentType: "not a type"}, `invalid attribute "datacontenttype" (content-type property): not a media type (RFC 2046)`},
		{"structured not JSON", amqp.Delivery{ContentType: "application/cloudevents+json", Body: []byte(`{"id":`)}, `structured mode: the body is not valid JSON`},
		{"structured array", amqp.Delivery{ContentType: "application/cloudevents+json", Body: []byte(`[1]`)}, `structured mode: the body is not a JSON object`},
		{"structured missing id", amqp.Delivery{ContentType: "application/cloudevents+json", Body: []byte(`{"specversion":"1.0","source":"/s","type":"t"}`)}, `invalid attribute "id": `},
		{"structured bad data_base64", amqp.Delivery{ContentType: "application/cloudevents+json", Body: []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":5}`)}, `invalid event`},
		{"avro", amqp.Delivery{ContentType: "application/cloudevents+avro", Body: []byte("x")}, `unsupported event format "application/cloudevents+avro": only application/cloudevents+json and application/cloudevents-batch+json are read`},
		{"batch object", amqp.Delivery{ContentType: "application/cloudevents-batch+json", Body: []byte(`{}`)}, `batch: the body is not a JSON array of events`},
		{"batch item", amqp.Delivery{ContentType: "application/cloudevents-batch+json", Body: []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t"}, 3]`)}, `event[1]: not a JSON object`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testSource().decode(&tc.d)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tc.want) || strings.ContainsAny(err.Error(), "\n\r") || len(err.Error()) > 400 {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

// TestDecodeEmptyBatch: JSON format 4.3, "An example of an empty batch of
// CloudEvents (typically used in a response, but also valid in a request)".
func TestDecodeEmptyBatch(t *testing.T) {
	evs, err := testSource().decode(&amqp.Delivery{ContentType: "application/cloudevents-batch+json", Body: []byte(` [ ] `)})
	if err != nil || len(evs) != 0 {
		t.Fatalf("decode of []: %d events, %v; want none and no error", len(evs), err)
	}
}

// FuzzDecode checks that no message makes decode panic, and that what it
// accepts is a valid event that can be journaled.
func FuzzDecode(f *testing.F) {
	f.Add("application/cloudevents+json", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1}`, "")
	f.Add("application/cloudevents-batch+json", `[{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontentencoding":""}]`, "")
	f.Add("text/plain", "hello", "1.0")
	f.Add("", "\xff", "")
	s := testSource()
	f.Fuzz(func(t *testing.T, ct, body, sv string) {
		d := &amqp.Delivery{ContentType: ct, Body: []byte(body)}
		if sv != "" {
			d.Headers = amqp.Table{"cloudEvents:specversion": sv, "cloudEvents:id": "1", "cloudEvents:source": "/s", "cloudEvents:type": "t"}
		}
		evs, err := s.decode(d)
		if err != nil {
			return
		}
		for _, e := range evs {
			if err := e.Validate(); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
			if _, err := e.MarshalJSON(); err != nil {
				t.Fatalf("accepted an event that cannot be encoded: %v", err)
			}
		}
	})
}
