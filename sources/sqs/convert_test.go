package sqssource

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/sqspoll"
	"github.com/junctionhq/junction/sources/sourcetest"
)

func testSource(logs *plugintest.LogBuffer) *Source {
	if logs == nil {
		logs = &plugintest.LogBuffer{}
	}
	return &Source{source: "arn:aws:sqs:us-east-1:123456789012:orders", eventType: DefaultEventType, log: sourcetest.Logger(logs), poller: &sqspoll.Poller{Visibility: 30 * time.Second}}
}

func msg(body string, attrs map[string]types.MessageAttributeValue) *types.Message {
	return &types.Message{
		MessageId:         aws.String("m-1"),
		Body:              aws.String(body),
		MessageAttributes: attrs,
		Attributes:        map[string]string{"SentTimestamp": "1715000000123", "ApproximateReceiveCount": "1"},
	}
}

func TestWrap(t *testing.T) {
	logs := &plugintest.LogBuffer{}
	s := testSource(logs)
	e, bad := s.toEvent(msg(`{"amount": 150}`, map[string]types.MessageAttributeValue{
		"tenant":                str("acme"),
		"priority":              num("7"),
		"ratio":                 num("1.5"),
		"big":                   num("9999999999"),
		"subject":               str("order-42"),
		"TenantId":              str("dropped: upper case"),
		"trace-id":              str("dropped: dash"),
		"averyveryverylongname": str("dropped: 21 characters"),
		"id":                    str("dropped: a context attribute"),
		"blob":                  {DataType: aws.String("Binary"), BinaryValue: []byte{1, 2}},
		"custom":                {DataType: aws.String("String.json"), StringValue: aws.String(`{"a":1}`)},
	}))
	if bad != nil {
		t.Fatalf("malformed: %+v", bad)
	}
	if e.ID() != "m-1" || e.Source() != "arn:aws:sqs:us-east-1:123456789012:orders" || e.Type() != DefaultEventType ||
		e.Subject() != "order-42" || e.DataContentType() != "application/json" || string(e.Data()) != `{"amount": 150}` || e.DataBase64 {
		t.Errorf("event: %s", e)
	}
	if want := time.UnixMilli(1715000000123).UTC(); !e.Time().Equal(want) {
		t.Errorf("time %v, want %v", e.Time(), want)
	}
	want := map[string]any{"tenant": "acme", "priority": int32(7), "ratio": "1.5", "big": "9999999999", "custom": `{"a":1}`}
	if got := e.Extensions(); len(got) != len(want) {
		t.Errorf("extensions %v, want %v", got, want)
	}
	for k, v := range want {
		if e.Extensions()[k] != v {
			t.Errorf("extension %s = %#v, want %#v", k, e.Extensions()[k], v)
		}
	}
	for _, dropped := range []string{"TenantId", "trace-id", "averyveryverylongname", `attribute=id`, "blob"} {
		if !strings.Contains(logs.String(), dropped) {
			t.Errorf("no debug line for dropped attribute %s:\n%s", dropped, logs)
		}
	}
	if strings.Contains(logs.String(), "upper case") || strings.Contains(logs.String(), "21 characters") {
		t.Errorf("a log line shows an attribute value:\n%s", logs)
	}
	// The structured form keeps JSON data as JSON (not base64).
	b, err := e.MarshalJSON()
	if err != nil || !strings.Contains(string(b), `"data":{"amount": 150}`) {
		t.Errorf("structured form %s (%v)", b, err)
	}
}

func TestWrapContentType(t *testing.T) {
	s := testSource(nil)
	for body, want := range map[string]string{
		`hello`:                          "text/plain",
		`{"specversion": 1`:              "", // claims to be a CloudEvent: malformed
		`[1,2]`:                          "application/json",
		`"quoted"`:                       "application/json",
		`{"data":{"specversion":"1.0"}}`: "application/json", // not top level
		`{not json`:                      "text/plain",
		`<xml/>`:                         "text/plain",
	} {
		e, bad := s.toEvent(msg(body, nil))
		if want == "" {
			if bad == nil {
				t.Errorf("%s: got an event, want malformed", body)
			}
			continue
		}
		if bad != nil {
			t.Errorf("%s: malformed: %s", body, bad.reason)
			continue
		}
		if e.DataContentType() != want || string(e.Data()) != body {
			t.Errorf("%s: datacontenttype %s data %q, want %s and the body", body, e.DataContentType(), e.Data(), want)
		}
	}
}

func TestStructured(t *testing.T) {
	s := testSource(nil)
	e, bad := s.toEvent(msg(`{"specversion":"1.0","id":"evt-1","source":"/orders","type":"com.example.order.created","subject":"42","tenant":"acme","datacontenttype":"application/json","data":{"amount":150}}`,
		map[string]types.MessageAttributeValue{"ignored": str("x")}))
	if bad != nil {
		t.Fatalf("malformed: %s", bad.reason)
	}
	if e.ID() != "evt-1" || e.Source() != "/orders" || e.Type() != "com.example.order.created" || e.Subject() != "42" ||
		e.Extensions()["tenant"] != "acme" || e.Extensions()["ignored"] != nil || string(e.Data()) != `{"amount":150}` {
		t.Errorf("event: %s", e)
	}
}

func TestBinary(t *testing.T) {
	s := testSource(nil)
	e, bad := s.toEvent(msg(`{"amount":150}`, map[string]types.MessageAttributeValue{
		"ce-specversion": str("1.0"),
		"ce-id":          str("evt-2"),
		"ce-source":      str("/orders"),
		"ce-type":        str("com.example.order.created"),
		"ce-subject":     str("42"),
		"ce-time":        str("2024-05-06T05:08:09.123456789Z"),
		"ce-dataschema":  str("https://example.com/order.json"),
		"ce-tenant":      str("acme"),
		"ce-attempt":     num("3"),
		"content-type":   str("application/json"),
		"other":          str("not a ce- attribute: ignored"),
	}))
	if bad != nil {
		t.Fatalf("malformed: %s", bad.reason)
	}
	if e.ID() != "evt-2" || e.Source() != "/orders" || e.Type() != "com.example.order.created" || e.Subject() != "42" ||
		e.DataSchema() != "https://example.com/order.json" || e.DataContentType() != "application/json" ||
		e.Extensions()["tenant"] != "acme" || e.Extensions()["attempt"] != int32(3) || len(e.Extensions()) != 2 ||
		e.Time().Format(time.RFC3339Nano) != "2024-05-06T05:08:09.123456789Z" || string(e.Data()) != `{"amount":150}` {
		t.Errorf("event: %s", e)
	}
}

// TestBinaryAsOtherTransports: binary mode reads 0.3 as well as 1.0 (the
// sqs sink writes an event's own specversion), and the ce- prefix and
// attribute names in any case, lower-cased, as every transport does.
func TestBinaryAsOtherTransports(t *testing.T) {
	s := testSource(nil)
	e, bad := s.toEvent(msg("x", map[string]types.MessageAttributeValue{
		"CE-SPECVERSION": str("0.3"),
		"Ce-Id":          str("evt-3"),
		"ce-Source":      str("/orders"),
		"ce-type":        str("t"),
		"ce-schemaurl":   str("/schema.json"),
		"CE-Tenant":      str("acme"),
	}))
	if bad != nil {
		t.Fatalf("malformed: %s", bad.reason)
	}
	if e.SpecVersion() != "0.3" || e.ID() != "evt-3" || e.Source() != "/orders" || e.DataSchema() != "/schema.json" || e.Extensions()["tenant"] != "acme" {
		t.Errorf("event: %s", e)
	}
}

func TestMalformed(t *testing.T) {
	s := testSource(nil)
	ce := func(extra map[string]types.MessageAttributeValue) map[string]types.MessageAttributeValue {
		m := map[string]types.MessageAttributeValue{"ce-specversion": str("1.0"), "ce-id": str("b-1"), "ce-source": str("/s"), "ce-type": str("t")}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		body   string
		attrs  map[string]types.MessageAttributeValue
		id     string
		reason string
	}{
		{"structured bad JSON", `{"specversion":"1.0","id":"x",`, nil, "", "body claims to be a CloudEvent but is not valid JSON: unexpected end of JSON input at byte 30"},
		{"structured missing source", `{"specversion":"1.0","id":"s-1","type":"t"}`, nil, "s-1", `invalid attribute "source": REQUIRED`},
		{"structured bad specversion", `{"specversion":"9.9","id":"s-2","source":"/s","type":"t"}`, nil, "s-2", `invalid attribute "specversion": unknown value: 9.9`},
		{"binary bad specversion", "x", map[string]types.MessageAttributeValue{"ce-specversion": str("0.1"), "ce-id": str("b-0")}, "b-0", `invalid attribute "specversion" (message attribute ce-specversion): unsupported value "0.1" (use 1.0 or 0.3)`},
		{"binary missing type", "x", map[string]types.MessageAttributeValue{"ce-specversion": str("1.0"), "ce-id": str("b-1"), "ce-source": str("/s")}, "b-1", `missing required attribute "type" (message attribute ce-type)`},
		{"binary bad time", "x", ce(map[string]types.MessageAttributeValue{"ce-time": str("yesterday")}), "b-1", `invalid attribute "time" (message attribute ce-time): not an RFC 3339 timestamp: "yesterday"`},
		{"binary bad extension name", "x", ce(map[string]types.MessageAttributeValue{"ce-Tenant_ID": str("a")}), "b-1", `invalid attribute name "tenant_id" (message attribute ce-Tenant_ID): use only letters a-z and digits`},
		{"binary datacontenttype", "x", ce(map[string]types.MessageAttributeValue{"ce-datacontenttype": str("text/plain")}), "b-1", `invalid attribute "datacontenttype" (message attribute ce-datacontenttype): in binary mode the message's content-type is the datacontenttype; it MUST NOT be present as an attribute`},
		{"binary attribute given twice", "x", ce(map[string]types.MessageAttributeValue{"CE-ID": str("b-2")}), "b-2", `invalid attribute "id" (message attribute ce-id): given twice (names that differ only in case or prefix)`},
		{"binary specversion given twice", "x", ce(map[string]types.MessageAttributeValue{"CE-SPECVERSION": str("1.0")}), "b-1", `invalid attribute "specversion" (message attribute ce-specversion): given twice (names that differ only in case or prefix)`},
		{"binary id not a string", "x", ce(map[string]types.MessageAttributeValue{"ce-id": num("7")}), "", `invalid attribute "id" (message attribute ce-id): must be a string, not integer`},
		{"binary binary value", "x", ce(map[string]types.MessageAttributeValue{"ce-blob": {DataType: aws.String("Binary"), BinaryValue: []byte{1}}}), "b-1", `invalid attribute "blob" (message attribute ce-blob): must be a String or a Number`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, bad := s.toEvent(msg(tc.body, tc.attrs))
			if bad == nil {
				t.Fatalf("got event %s, want malformed", e)
			}
			if bad.id != tc.id || !strings.HasPrefix(bad.reason, tc.reason) {
				t.Errorf("got id %q reason %q\nwant id %q reason %q", bad.id, bad.reason, tc.id, tc.reason)
			}
			if strings.ContainsAny(bad.reason, "\n\r") || len(bad.reason) > maxErrLen {
				t.Errorf("reason is not one bounded line: %q", bad.reason)
			}
		})
	}
}

func TestMalformedDelay(t *testing.T) {
	s := testSource(nil)
	for n, want := range map[string]time.Duration{"": 30 * time.Second, "1": 30 * time.Second, "2": time.Minute, "3": 2 * time.Minute, "6": 15 * time.Minute, "99": 15 * time.Minute} {
		m := types.Message{Attributes: map[string]string{"ApproximateReceiveCount": n}}
		if got := s.malformedDelay(m); got != want {
			t.Errorf("receive count %q: delay %v, want %v", n, got, want)
		}
	}
}

func FuzzToEvent(f *testing.F) {
	f.Add(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`, "ce-specversion", "1.0")
	f.Add(`{"specversion":`, "tenant", "x")
	f.Add("plain", "ce-time", "2024")
	s := testSource(nil)
	f.Fuzz(func(t *testing.T, body, name, value string) {
		attrs := map[string]types.MessageAttributeValue{name: str(value), "ce-id": str(value)}
		e, bad := s.toEvent(msg(body, attrs))
		if bad != nil {
			if strings.ContainsAny(bad.reason, "\n\r") || len(bad.reason) > maxErrLen {
				t.Errorf("reason is not one bounded line: %q", bad.reason)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Errorf("invalid event: %v", err)
		}
	})
}

var _ = event.ApplicationJSON
