package httpsource

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"

	"github.com/junctionhq/junction/sources/sourcetest"
)

// Conformance of the http source to CloudEvents 1.0.2 (the core
// specification, the JSON format and the HTTP protocol binding), over the
// real HTTP stack: each row quotes the rule, gives a request and the
// expected answer (202 and what was ingested, or 400 and a part of the
// one-line reason; nothing is ingested then).

const v1 = `"specversion":"1.0","id":"1","source":"/s","type":"t"`

func TestConformance(t *testing.T) {
	bin := func(kv ...string) http.Header {
		h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h[http.CanonicalHeaderKey(kv[i])] = []string{kv[i+1]}
		}
		return h
	}
	for _, tc := range []struct {
		rule   string
		header http.Header
		body   string
		status int
		reason string // a part of the reason, for 400
		events int    // events ingested, for 202
		check  func(t *testing.T, r *sourcetest.Recorder)
	}{
		{rule: `HTTP 3.1.3.2: "any HTTP header value MUST first be unescaped with respect to double-quoted strings ... they MUST be supported when receiving events"`,
			header: bin("Ce-Subject", `"a \"b\" c"`), status: 202, events: 1,
			check: func(t *testing.T, r *sourcetest.Recorder) {
				if got := r.Last().Subject(); got != `a "b" c` {
					t.Errorf("subject %q", got)
				}
			}},
		{rule: `HTTP 3.1.3.2: "A single round of percent-decoding MUST then be performed"`,
			header: bin("Ce-Subject", `"Euro%20%E2%82%AC"`), status: 202, events: 1,
			check: func(t *testing.T, r *sourcetest.Recorder) {
				if got := r.Last().Subject(); got != "Euro €" {
					t.Errorf("subject %q", got)
				}
			}},
		{rule: `HTTP 3.1.3.2: a quoted-string must be whole (RFC 7230 3.2.6)`,
			header: bin("Ce-Subject", `"open`), status: 400, reason: `invalid attribute "subject" (header ce-subject): invalid quoted-string: no closing quote`},
		{rule: `HTTP 3.1.3.2: "encoded byte sequences which are invalid in UTF-8 MUST be rejected"`,
			header: bin("Ce-Subject", `%C0%A0`), status: 400, reason: "not valid UTF-8"},
		{rule: `core "Naming Conventions": "CloudEvent attributes MUST NOT have the name data"`,
			header: bin("Ce-Data", "x"), status: 400, reason: `"data"`},
		{rule: `core String: "the "control characters" in the ranges U+0000-U+001F and U+007F-U+009F" are disallowed`,
			header: bin("Ce-Subject", "a%09b"), status: 400, reason: "control character"},
		{rule: `core subject: "If present, MUST be a non-empty string" (binary)`,
			header: bin("Ce-Subject", ""), status: 400, reason: `"subject"`},
		{rule: `core dataschema: "If present, MUST be a non-empty URI" (binary)`,
			header: bin("Ce-Dataschema", ""), status: 400, reason: `"dataschema"`},
		{rule: `core datacontenttype: "If present, MUST adhere to the format specified in RFC 2046" (binary Content-Type)`,
			header: bin("Content-Type", "json"), body: `{}`, status: 400, reason: `"datacontenttype"`},
		{rule: `HTTP 3.1.1: "a ce-datacontenttype HTTP header MUST NOT also be present in the message"`,
			header: bin("Ce-Datacontenttype", "text/plain"), status: 400, reason: "ce-datacontenttype"},
		{rule: `core subject: "If present, MUST be a non-empty string" (structured)`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"subject":""}`, status: 400, reason: `"subject"`},
		{rule: `core dataschema: "If present, MUST be a non-empty URI" (structured)`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"dataschema":""}`, status: 400, reason: `"dataschema"`},
		{rule: `core datacontenttype: RFC 2046 (structured, a type without subtype)`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"datacontenttype":"text"}`, status: 400, reason: `"datacontenttype"`},
		{rule: `core "Attribute Naming Convention": "CloudEvents attribute names MUST consist of lower-case letters ('a' to 'z') or digits ('0' to '9')"`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"Tenant":"acme"}`, status: 400, reason: `"Tenant"`},
		{rule: `core Integer: "A whole number in the range -2,147,483,648 to +2,147,483,647 inclusive"`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"n":2.5}`, status: 400, reason: "not an integer"},
		{rule: `JSON 3.1.1: "the presence of the data and data_base64 members is mutually exclusive"`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"data":"x","data_base64":"eA=="}`, status: 400, reason: "data"},
		{rule: `JSON 2.2: "When decoding attributes and a null value is encountered, it MUST be treated as the equivalent of unset or omitted"`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"datacontenttype":null,"subject":null,"data":{"a":1}}`, status: 202, events: 1,
			check: func(t *testing.T, r *sourcetest.Recorder) {
				if e := r.Last(); e.DataContentType() != "" || e.Subject() != "" || string(e.Data()) != `{"a":1}` {
					t.Errorf("event %v", e)
				}
			}},
		{rule: `JSON 3.1.2: "If the datacontenttype declares the data to contain JSON-formatted content (that is, its subtype is json or has a +json format extension), then the data member MUST be treated directly as a JSON value"`,
			header: ct(ContentTypeStructured), body: `{` + v1 + `,"datacontenttype":"application/vnd.api+json","data":"x"}`, status: 202, events: 1,
			check: func(t *testing.T, r *sourcetest.Recorder) {
				if got := string(r.Last().Data()); got != `"x"` {
					t.Errorf("data %s, want the JSON string \"x\"", got)
				}
			}},
		{rule: `HTTP 3.3.2: "The batch MAY be empty." (202, nothing journaled)`,
			header: ct(ContentTypeBatch), body: `[]`, status: 202, events: 0,
			check: func(t *testing.T, r *sourcetest.Recorder) {
				if r.Calls() != 0 {
					t.Errorf("%d calls to Ingest, want none", r.Calls())
				}
			}},
		{rule: `HTTP 3.3.2: "All batched CloudEvents MUST have the same specversion attribute."`,
			header: ct(ContentTypeBatch), body: `[{` + v1 + `},{"specversion":"0.3","id":"2","source":"/s","type":"t"}]`, status: 400, reason: "same specversion"},
		{rule: `HTTP 3.3.2: "Other attributes MAY differ, including the datacontenttype attribute."`,
			header: ct(ContentTypeBatch), body: `[{` + v1 + `,"datacontenttype":"text/plain","data":"a"},{"specversion":"1.0","id":"2","source":"/s","type":"t","data":{"b":1}}]`, status: 202, events: 2},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			rec := &sourcetest.Recorder{}
			srv := httptest.NewServer(build(t, newConfig(), 1<<20).Handler(rec))
			defer srv.Close()
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/events", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			reason := strings.TrimSuffix(string(body), "\n")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tc.status, reason)
			}
			if tc.status == http.StatusBadRequest {
				if !strings.Contains(reason, tc.reason) || strings.Contains(reason, "\n") {
					t.Errorf("reason %q, want one line with %q", reason, tc.reason)
				}
				if rec.Count() != 0 {
					t.Errorf("%d events ingested from a refused request", rec.Count())
				}
				return
			}
			if rec.Count() != tc.events {
				t.Errorf("%d events ingested, want %d", rec.Count(), tc.events)
			}
			if tc.check != nil {
				tc.check(t, rec)
			}
		})
	}
}

// TestSDKGoSender: sdk-go as a third-party sender (its HTTP client, binary
// and structured modes) is accepted and read back as sent.
func TestSDKGoSender(t *testing.T) {
	rec := &sourcetest.Recorder{}
	srv := httptest.NewServer(build(t, newConfig(), 1<<20).Handler(rec))
	defer srv.Close()
	for i, mode := range []binding.Encoding{binding.EncodingBinary, binding.EncodingStructured} {
		c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(srv.URL + "/events"))
		if err != nil {
			t.Fatal(err)
		}
		e := cloudevents.NewEvent()
		e.SetID(fmt.Sprintf("go-%d", i))
		e.SetSource("/go")
		e.SetType("com.example.go")
		e.SetSubject("orders/42")
		e.SetExtension("tenant", "acme")
		e.SetExtension("count", 7)
		if err := e.SetData("application/vnd.api+json", map[string]any{"a": []int{1, 2}}); err != nil {
			t.Fatal(err)
		}
		ctx := cloudevents.ContextWithTarget(context.Background(), srv.URL+"/events")
		if mode == binding.EncodingStructured {
			ctx = binding.WithForceStructured(ctx)
		} else {
			ctx = binding.WithForceBinary(ctx)
		}
		if res := c.Send(ctx, e); !cloudevents.IsACK(res) {
			t.Fatalf("%s: sdk-go Send: %v", mode, res)
		}
		got := rec.Last()
		if got.ID() != e.ID() || got.Subject() != "orders/42" || got.Extensions()["tenant"] != "acme" {
			t.Errorf("%s: got %v", mode, got)
		}
		want := `{"a":[1,2]}`
		if mode == binding.EncodingStructured {
			// sdk-go writes */*+json data as a JSON string (sdk-go#1161);
			// JSON format 3.1.2: "if the data member is a string, a JSON
			// deserializer MUST interpret it directly as a JSON String
			// value; it MUST NOT further deserialize the string".
			want = `"{\"a\":[1,2]}"`
		}
		if d := string(got.Data()); d != want {
			t.Errorf("%s: data %s, want %s", mode, d, want)
		}
	}
}
