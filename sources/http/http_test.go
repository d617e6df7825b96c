package httpsource

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

//go:embed example.yaml
var exampleYAML string

func build(t testing.TB, c *Config, maxBody int64) *Source {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "events", MaxBodySize: maxBody})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s.(*Source)
}

func newConfig() *Config {
	f, ok := sources.Lookup("http")
	if !ok {
		panic("http source not registered")
	}
	c := f().(*Config)
	c.Path = "/events"
	return c
}

const (
	structured = `{"specversion":"1.0","id":"1","source":"/shop","type":"com.example.order.created","datacontenttype":"application/json","data":{"amount":120}}`
	minimal    = `{"specversion":"1.0","id":"%d","source":"/shop","type":"t"}`
)

func batchOf(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(minimal, i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func binaryHeaders(kv ...string) http.Header {
	h := http.Header{}
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", "42")
	h.Set("Ce-Source", "/shop")
	h.Set("Ce-Type", "com.example.order.created")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			h.Del(kv[i])
		} else {
			h.Set(kv[i], kv[i+1])
		}
	}
	return h
}

func TestHandler(t *testing.T) {
	unavailable := fmt.Errorf("publish: %w", sources.ErrUnavailable)
	tests := []struct {
		name       string
		method     string
		header     http.Header
		body       string
		fail       error
		maxBody    int64
		status     int
		reason     string // the response body, without its newline
		label      string // "" when nothing is rejected
		events     int
		wantHeader map[string]string
	}{
		{name: "structured", header: ct(ContentTypeStructured), body: structured, status: 202, events: 1},
		{name: "structured with charset", header: ct("Application/CloudEvents+JSON; charset=utf-8"), body: structured, status: 202, events: 1},
		{name: "binary", header: binaryHeaders("Content-Type", "application/json"), body: `{"amount":120}`, status: 202, events: 1},
		{name: "binary without data", header: binaryHeaders(), status: 202, events: 1},
		{name: "batch", header: ct(ContentTypeBatch), body: batchOf(3), status: 202, events: 3},
		{name: "batch at the limit", header: ct(ContentTypeBatch), body: batchOf(MaxBatchEvents), maxBody: 1 << 20, status: 202, events: MaxBatchEvents},

		{name: "GET", method: "GET", status: 405, reason: `method "GET" not allowed: send events with POST`, label: "method_not_allowed", wantHeader: map[string]string{"Allow": "OPTIONS, POST"}},
		{name: "PUT", method: "PUT", header: ct(ContentTypeStructured), body: structured, status: 405, reason: `method "PUT" not allowed: send events with POST`, label: "method_not_allowed"},

		{name: "no content type", body: structured, status: 415, label: "unsupported_media_type",
			reason: `not a CloudEvent (no Content-Type and no ce-specversion header): send application/cloudevents+json, application/cloudevents-batch+json, or binary mode with ce-specversion, ce-id, ce-source and ce-type headers`},
		{name: "plain json", header: ct("application/json"), body: structured, status: 415, label: "unsupported_media_type",
			reason: `not a CloudEvent (Content-Type "application/json" and no ce-specversion header): send application/cloudevents+json, application/cloudevents-batch+json, or binary mode with ce-specversion, ce-id, ce-source and ce-type headers`},
		{name: "other format", header: ct("application/cloudevents+avro"), body: "x", status: 415, label: "unsupported_media_type",
			reason: `unsupported event format "application/cloudevents+avro": use application/cloudevents+json or application/cloudevents-batch+json`},
		{name: "other batch format", header: ct("application/cloudevents-batch+protobuf"), body: "x", status: 415, label: "unsupported_media_type",
			reason: `unsupported event format "application/cloudevents-batch+protobuf": use application/cloudevents+json or application/cloudevents-batch+json`},

		{name: "bad json", header: ct(ContentTypeStructured), body: `{"specversion":`, status: 400, label: "malformed",
			reason: `malformed JSON at byte 15: unexpected end of JSON input`},
		{name: "trailing garbage", header: ct(ContentTypeStructured), body: structured + `x`, status: 400, label: "malformed",
			reason: `malformed JSON at byte ` + fmt.Sprint(len(structured)+1) + `: invalid character 'x' after top-level value`},
		{name: "empty body", header: ct(ContentTypeStructured), status: 400, label: "malformed", reason: `malformed JSON: empty body`},
		{name: "array as structured", header: ct(ContentTypeStructured), body: `[]`, status: 400, label: "malformed",
			reason: `expected a JSON object (one structured CloudEvent), got an array`},
		{name: "missing id", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","source":"/s","type":"t"}`, status: 400, label: "malformed",
			reason: `missing required attribute "id"`},
		{name: "missing source", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","type":"t"}`, status: 400, label: "malformed",
			reason: `missing required attribute "source"`},
		{name: "missing type", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s"}`, status: 400, label: "malformed",
			reason: `missing required attribute "type"`},
		{name: "empty type", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":" "}`, status: 400, label: "malformed",
			reason: `missing required attribute "type": must be a non-empty string`},
		{name: "missing specversion", header: ct(ContentTypeStructured), body: `{"id":"1","source":"/s","type":"t"}`, status: 400, label: "malformed",
			reason: `missing required attribute "specversion"`},
		{name: "unsupported specversion", header: ct(ContentTypeStructured), body: `{"specversion":"2.0","id":"1","source":"/s","type":"t"}`, status: 400, label: "malformed",
			reason: `unsupported specversion "2.0" (use 1.0 or 0.3)`},
		{name: "id not a string", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":1,"source":"/s","type":"t"}`, status: 400, label: "malformed",
			reason: `invalid attribute "id": must be a string`},
		{name: "bad time", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}`, status: 400, label: "malformed",
			reason: `invalid attribute "time": not an RFC 3339 timestamp`},
		{name: "bad datacontenttype", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"a b"}`, status: 400, label: "malformed",
			reason: `invalid attribute "datacontenttype": not a media type (RFC 2046)`},
		{name: "bad extension name", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","my-ext":"x"}`, status: 400, label: "malformed",
			reason: `invalid attribute name "my-ext": use only letters a-z and digits`},
		{name: "object extension", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{"a":1}}`, status: 400, label: "malformed",
			reason: `invalid attribute "ext": extension values must be strings, integers or booleans`},
		{name: "numeric data_base64 (SDK panics)", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":1}`, status: 400, label: "malformed",
			reason: `invalid member "data_base64": must be a base64 string`},
		{name: "empty 0.3 datacontentencoding (SDK panics)", header: ct(ContentTypeStructured), body: `{"datacontentencoding":"","specversion":"0.3","id":"1","source":"/s","type":"t"}`, status: 400, label: "malformed",
			reason: `invalid attribute "datacontentencoding": the only allowed value is "base64"`},
		{name: "object data with text type", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":{"a":1}}`, status: 400, label: "malformed",
			reason: `invalid member "data": must be a JSON string when datacontenttype is "text/plain" (not JSON)`},
		{name: "object data with +json type", header: ct(ContentTypeStructured), body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/vnd.x+json","data":{"a":1}}`, status: 202, events: 1},

		{name: "batch not an array", header: ct(ContentTypeBatch), body: structured, status: 400, label: "malformed",
			reason: `batch: expected a JSON array of events, got an object`},
		{name: "empty batch", header: ct(ContentTypeBatch), body: ` [ ] `, status: 202, events: 0},
		{name: "batch over the limit", header: ct(ContentTypeBatch), body: batchOf(MaxBatchEvents + 1), maxBody: 1 << 20, status: 400, label: "malformed",
			reason: `batch: more than 1000 events; send at most 1000 per request`},
		{name: "batch with a bad event", header: ct(ContentTypeBatch), body: `[` + fmt.Sprintf(minimal, 0) + `,{"specversion":"1.0","id":"1","type":"t"}]`, status: 400, label: "malformed",
			reason: `event[1]: missing required attribute "source"`},
		{name: "batch with a non-object", header: ct(ContentTypeBatch), body: `[` + fmt.Sprintf(minimal, 0) + `, "x"]`, status: 400, label: "malformed",
			reason: `event[1]: expected a JSON object, got a string`},
		{name: "batch with bad json", header: ct(ContentTypeBatch), body: `[` + fmt.Sprintf(minimal, 0) + `,]`, status: 400, label: "malformed",
			reason: `malformed JSON at byte 61: invalid character ']' looking for beginning of value`},

		{name: "binary missing id", header: binaryHeaders("Ce-Id", ""), status: 400, label: "malformed", reason: `missing required attribute "id" (header ce-id)`},
		{name: "binary missing source", header: binaryHeaders("Ce-Source", ""), status: 400, label: "malformed", reason: `missing required attribute "source" (header ce-source)`},
		{name: "binary missing type", header: binaryHeaders("Ce-Type", ""), status: 400, label: "malformed", reason: `missing required attribute "type" (header ce-type)`},
		{name: "binary empty id", header: binaryHeaders("Ce-Id", " "), status: 400, label: "malformed", reason: `invalid attribute "id" (header ce-id): must be non-empty`},
		{name: "binary unsupported specversion", header: binaryHeaders("Ce-Specversion", "0.1"), status: 400, label: "malformed", reason: `invalid attribute "specversion" (header ce-specversion): unsupported value "0.1" (use 1.0 or 0.3)`},
		{name: "binary bad time", header: binaryHeaders("Ce-Time", "noon"), status: 400, label: "malformed", reason: `invalid attribute "time" (header ce-time): not an RFC 3339 timestamp: "noon"`},
		{name: "binary bad source", header: binaryHeaders("Ce-Source", "http://x/%zz"), status: 400, label: "malformed", reason: `invalid attribute "source" (header ce-source): not a URI-reference: "http://x/%zz"`},
		{name: "binary bad extension name", header: binaryHeaders("Ce-My-Ext", "x"), status: 400, label: "malformed", reason: `invalid attribute name "my-ext" (header ce-my-ext): use only letters a-z and digits`},
		{name: "binary datacontenttype header", header: binaryHeaders("Ce-Datacontenttype", "text/plain"), status: 400, label: "malformed", reason: `invalid attribute "datacontenttype" (header ce-datacontenttype): in binary mode the message's content-type is the datacontenttype; it MUST NOT be present as an attribute`},
		{name: "binary bad content type", header: binaryHeaders("Content-Type", "a b"), body: "x", status: 400, label: "malformed", reason: `invalid attribute "datacontenttype" (header content-type): not a media type (RFC 2046)`},

		{name: "body over the limit", header: ct(ContentTypeStructured), body: structured, maxBody: 64, status: 413, label: "too_large", reason: `body over the limit of 64B`},

		{name: "journal unavailable", header: ct(ContentTypeStructured), body: structured, fail: unavailable, status: 503, label: "unavailable",
			reason: `journal unavailable; retry later`, wantHeader: map[string]string{"Retry-After": "1"}},
		{name: "event too large for the journal", header: ct(ContentTypeStructured), body: structured, fail: fmt.Errorf("append: %w", sources.ErrTooLarge), status: 413, label: "too_large",
			reason: `event too large for the journal`},
		{name: "journal timeout", header: ct(ContentTypeStructured), body: structured, fail: fmt.Errorf("append: %w", context.DeadlineExceeded), status: 503, label: "unavailable",
			reason: `journal unavailable; retry later`, wantHeader: map[string]string{"Retry-After": "1"}},
		{name: "other ingest error", header: ct(ContentTypeStructured), body: structured, fail: errors.New("append: disk\non fire"), status: 500, label: "internal",
			reason: `internal error: the events were not stored`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxBody := tt.maxBody
			if maxBody == 0 {
				maxBody = 4096
			}
			s := build(t, newConfig(), maxBody)
			rec := &sourcetest.Recorder{Fail: func(int, []*event.Event) error { return tt.fail }}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/events", strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			s.Handler(rec).ServeHTTP(w, req)

			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.status, w.Body.String())
			}
			got := strings.TrimSuffix(w.Body.String(), "\n")
			if got != tt.reason {
				t.Errorf("body\n got %q\nwant %q", got, tt.reason)
			}
			if tt.status != 202 && !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", w.Header().Get("Content-Type"))
			}
			for k, v := range tt.wantHeader {
				if g := w.Header().Get(k); g != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			_, events, rejected := rec.Snapshot()
			if len(events) != tt.events {
				t.Errorf("%d events ingested, want %d", len(events), tt.events)
			}
			want := map[string]int{}
			if tt.label != "" {
				want[tt.label] = 1
			}
			if fmt.Sprint(rejected) != fmt.Sprint(want) {
				t.Errorf("rejected %v, want %v", rejected, want)
			}
			for _, e := range events {
				if err := e.Validate(); err != nil {
					t.Errorf("ingested event does not validate: %v", err)
				}
			}
		})
	}
}

func ct(v string) http.Header { return http.Header{"Content-Type": {v}} }

func TestBinaryAttributes(t *testing.T) {
	h := binaryHeaders(
		"Content-Type", "application/json; charset=utf-8",
		"Ce-Subject", "caf%C3%A9 100%",
		"Ce-Time", "2024-05-01T10:00:00Z",
		"Ce-Dataschema", "https://example.com/order.json",
		"Ce-Tenant", "acme",
		"Ce-Traceparent", "00-abc-01",
	)
	body := []byte(`{"amount":120}`)
	events, err := ParseRequest(h, body)
	if err != nil {
		t.Fatal(err)
	}
	e := events[0]
	checks := map[string][2]string{
		"id":              {e.ID(), "42"},
		"source":          {e.Source(), "/shop"},
		"type":            {e.Type(), "com.example.order.created"},
		"specversion":     {e.SpecVersion(), "1.0"},
		"subject":         {e.Subject(), "café 100%"},
		"time":            {e.Time().UTC().Format(time.RFC3339), "2024-05-01T10:00:00Z"},
		"dataschema":      {e.DataSchema(), "https://example.com/order.json"},
		"datacontenttype": {e.DataContentType(), "application/json; charset=utf-8"},
		"tenant":          {fmt.Sprint(e.Extensions()["tenant"]), "acme"},
		"traceparent":     {fmt.Sprint(e.Extensions()["traceparent"]), "00-abc-01"},
		"data":            {string(e.Data()), `{"amount":120}`},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
}

func TestStructuredAttributes(t *testing.T) {
	body := `{"specversion":"1.0","id":"1","source":"/shop","type":"t","subject":"s","tenant":"acme","datacontenttype":"application/json","data":{"amount":120}}`
	events, err := ParseRequest(ct(ContentTypeStructured), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	e := events[0]
	if e.ID() != "1" || e.Subject() != "s" || e.Extensions()["tenant"] != "acme" || string(e.Data()) != `{"amount":120}` {
		t.Errorf("wrong event: %v", e)
	}
	// Version 0.3 and base64 data.
	body = `{"specversion":"0.3","id":"2","source":"/shop","type":"t","datacontenttype":"text/plain","datacontentencoding":"base64","data":"aGk="}`
	events, err = ParseRequest(ct(ContentTypeStructured), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if e := events[0]; e.SpecVersion() != "0.3" || string(e.Data()) != "hi" {
		t.Errorf("wrong 0.3 event: %v", e)
	}
}

func TestReasonsAreOneBoundedLine(t *testing.T) {
	long := strings.Repeat("é\x01\n", 500)
	cases := []struct {
		h    http.Header
		body string
	}{
		{ct("application/cloudevents+" + long), "x"},
		{ct(ContentTypeStructured), `{"specversion":"` + long + `"}`},
		{ct(ContentTypeStructured), `{"specversion":"1.0","id":"1","source":"/s","type":"t","` + strings.Repeat("x-", 300) + `":1}`},
		{binaryHeaders("Ce-Time", long), ""},
		{binaryHeaders("Ce-"+strings.Repeat("Ab-", 200), "x"), ""},
	}
	for i, c := range cases {
		_, err := ParseRequest(c.h, []byte(c.body))
		if err == nil {
			t.Fatalf("case %d: accepted", i)
		}
		checkReason(t, err.Reason)
	}
}

func checkReason(t testing.TB, r string) {
	t.Helper()
	if r == "" || len(r) > sources.MaxReason {
		t.Errorf("reason of %d bytes: %q", len(r), r)
	}
	for _, c := range r {
		if c < 0x20 || c == 0x7f {
			t.Errorf("reason with a control character: %q", r)
			break
		}
	}
}

func TestRejectedBatchIsNotIngested(t *testing.T) {
	s := build(t, newConfig(), 1<<20)
	rec := &sourcetest.Recorder{}
	body := `[` + fmt.Sprintf(minimal, 0) + `,` + fmt.Sprintf(minimal, 1) + `,{"specversion":"1.0","id":"x"}]`
	req := httptest.NewRequest("POST", "/events", strings.NewReader(body))
	req.Header.Set("Content-Type", ContentTypeBatch)
	w := httptest.NewRecorder()
	s.Handler(rec).ServeHTTP(w, req)
	if w.Code != 400 {
		t.Fatalf("status %d, want 400", w.Code)
	}
	if calls, _, _ := rec.Snapshot(); calls != 0 {
		t.Fatalf("Ingest called %d times for a rejected batch, want 0", calls)
	}
}

func TestOptionsHandshake(t *testing.T) {
	tests := []struct {
		name       string
		origins    []string
		reqOrigin  string
		wantOrigin string
		wantRate   string
	}{
		{name: "default grants all", origins: nil, reqOrigin: "eventemitter.example.com", wantOrigin: "*", wantRate: "*"},
		{name: "listed origin", origins: []string{"other.example.com", "EventEmitter.example.com"}, reqOrigin: "eventemitter.example.com", wantOrigin: "eventemitter.example.com", wantRate: "*"},
		{name: "unlisted origin", origins: []string{"other.example.com"}, reqOrigin: "eventemitter.example.com"},
		{name: "empty list grants none", origins: []string{}, reqOrigin: "eventemitter.example.com"},
		{name: "no request origin", origins: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConfig()
			if tt.origins != nil {
				c.AllowedOrigins = tt.origins
			}
			s := build(t, c, 0)
			rec := &sourcetest.Recorder{}
			req := httptest.NewRequest("OPTIONS", "/events", nil)
			if tt.reqOrigin != "" {
				req.Header.Set("WebHook-Request-Origin", tt.reqOrigin)
				req.Header.Set("WebHook-Request-Rate", "120")
			}
			w := httptest.NewRecorder()
			s.Handler(rec).ServeHTTP(w, req)
			if w.Code != 200 {
				t.Fatalf("status %d, want 200", w.Code)
			}
			if g := w.Header().Get("Allow"); g != "OPTIONS, POST" {
				t.Errorf("Allow %q", g)
			}
			if g := w.Header().Get("WebHook-Allowed-Origin"); g != tt.wantOrigin {
				t.Errorf("WebHook-Allowed-Origin %q, want %q", g, tt.wantOrigin)
			}
			if g := w.Header().Get("WebHook-Allowed-Rate"); g != tt.wantRate {
				t.Errorf("WebHook-Allowed-Rate %q, want %q", g, tt.wantRate)
			}
			if _, _, rejected := rec.Snapshot(); len(rejected) != 0 {
				t.Errorf("OPTIONS counted as rejected: %v", rejected)
			}
		})
	}
}

// TestServer goes through a real server and a keep-alive client: many
// requests of every mode on one connection, a refused one in between, and a
// body over the limit sent chunked (no Content-Length).
func TestServer(t *testing.T) {
	s := build(t, newConfig(), 2048)
	rec := &sourcetest.Recorder{}
	mux := http.NewServeMux()
	mux.Handle(s.Path(), s.Handler(rec))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var conns sync.Map
	client := srv.Client()
	post := func(h http.Header, body io.Reader) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+"/events", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		conns.Store(resp.Request.RemoteAddr, true)
		return resp.StatusCode, string(b)
	}
	for i := 0; i < 20; i++ {
		if code, b := post(ct(ContentTypeStructured), strings.NewReader(fmt.Sprintf(minimal, i))); code != 202 || b != "" {
			t.Fatalf("structured: %d %q", code, b)
		}
		if code, b := post(binaryHeaders("Content-Type", "text/plain"), strings.NewReader("hello")); code != 202 || b != "" {
			t.Fatalf("binary: %d %q", code, b)
		}
		if code, b := post(ct(ContentTypeBatch), strings.NewReader(batchOf(2))); code != 202 || b != "" {
			t.Fatalf("batch: %d %q", code, b)
		}
		if code, b := post(ct("text/plain"), strings.NewReader("hi")); code != 415 || !strings.HasPrefix(b, "not a CloudEvent") {
			t.Fatalf("text: %d %q", code, b)
		}
	}
	// Chunked: the length is only known while reading.
	chunked := io.MultiReader(strings.NewReader(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"`), strings.NewReader(strings.Repeat("x", 4096)+`"}`))
	if code, b := post(ct(ContentTypeStructured), chunked); code != 413 || b != "body over the limit of 2KiB\n" {
		t.Fatalf("chunked over the limit: %d %q", code, b)
	}
	// Not a route of this source: the mux answers, not the source.
	resp, err := client.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}

	calls, events, rejected := rec.Snapshot()
	if calls != 60 || len(events) != 80 {
		t.Errorf("%d Ingest calls with %d events, want 60 and 80", calls, len(events))
	}
	if rejected["unsupported_media_type"] != 20 || rejected["too_large"] != 1 {
		t.Errorf("rejected %v", rejected)
	}
	if events[1].DataContentType() != "text/plain" || string(events[1].Data()) != "hello" {
		t.Errorf("binary event %v", events[1])
	}
}

// TestCancelledIngest checks that a request whose context ends during Ingest
// is never answered 2xx.
func TestCancelledIngest(t *testing.T) {
	s := build(t, newConfig(), 0)
	rec := &sourcetest.Recorder{Block: func(int) time.Duration { return time.Hour }} // until the request ends
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("POST", "/events", strings.NewReader(structured)).WithContext(ctx)
	req.Header.Set("Content-Type", ContentTypeStructured)
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		s.Handler(rec).ServeHTTP(w, req)
		close(done)
	}()
	plugintest.Eventually(t, 5*time.Second, "the Ingest call", func() bool { return rec.Calls() == 1 })
	cancel()
	<-done
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("status %d Retry-After %q, want 503 and 1", w.Code, w.Header().Get("Retry-After"))
	}
	if _, _, rejected := rec.Snapshot(); rejected["cancelled"] != 1 {
		t.Errorf("rejected %v", rejected)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{name: "ok", mod: func(c *Config) {}},
		{name: "no path", mod: func(c *Config) { c.Path = "" }, want: "path: required: the URL path to serve, such as /events"},
		{name: "relative path", mod: func(c *Config) { c.Path = "events" }, want: `path: must start with "/", got "events"`},
		{name: "query in path", mod: func(c *Config) { c.Path = "/events?x" }, want: `path: must be a plain URL path (no spaces, '?', '#', '{' or '}'), got "/events?x"`},
		{name: "wildcard in path", mod: func(c *Config) { c.Path = "/events/{id}" }, want: `path: must be a plain URL path (no spaces, '?', '#', '{' or '}'), got "/events/{id}"`},
		{name: "negative size", mod: func(c *Config) { c.MaxBodySize = -1 }, want: "maxBodySize: must be positive"},
		{name: "bad origin", mod: func(c *Config) { c.AllowedOrigins = []string{"a.example.com", ""} }, want: `allowedOrigins[1]: must be an origin such as eventemitter.example.com or "*", got ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConfig()
			tt.mod(c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuildBodyLimit(t *testing.T) {
	c := newConfig()
	if got := build(t, c, 5000).MaxBodySize(); got != 5000 {
		t.Errorf("default limit %d, want deps.MaxBodySize 5000", got)
	}
	c.MaxBodySize = 100
	if got := build(t, c, 5000).MaxBodySize(); got != 100 {
		t.Errorf("limit %d, want 100", got)
	}
	c.MaxBodySize = 0
	if got := build(t, c, 0).MaxBodySize(); got != int64(config.DefaultMaxBodySize) {
		t.Errorf("limit %d, want %d", got, config.DefaultMaxBodySize)
	}
}

func TestReadmeEmbedsExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.ReadmeHasExample(t, string(readme), exampleYAML)
}

func TestExampleDecodes(t *testing.T) {
	// Without the test default path: example.yaml must set it.
	noPath := func() *Config { c := newConfig(); c.Path = ""; return c }
	entries := plugintest.DecodeExample(t, exampleYAML, nil, "source", "http", noPath)
	for _, e := range entries {
		if e.Config.Path != "/events" {
			t.Errorf("path %q", e.Config.Path)
		}
	}
	if len(entries) != 1 {
		t.Fatalf("%d http sources in example.yaml, want 1", len(entries))
	}
}

func TestDecodeErrors(t *testing.T) {
	src := "sources:\n  - name: events\n    type: http\n    path: /events\n    maxBodySize: lots\n    origins: [x]\n"
	cfg, err := config.Parse("c.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	c := newConfig()
	err = config.Decode(cfg.Sources[0].Own, c)
	if err == nil {
		t.Fatal("no error")
	}
	want := "config:5:18: maxBodySize: invalid size \"lots\" (use bytes or a unit: 512KiB, 1MiB, 10MB)\nconfig:6:5: unknown key \"origins\""
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got\n%s\nwant prefix\n%s", err, want)
	}
}

// TestBinaryDataSurvivesJournalEncoding checks that binary-mode data comes
// back byte for byte from the JSON format the journal stores, and that data
// claiming to be JSON must be JSON.
func TestBinaryDataSurvivesJournalEncoding(t *testing.T) {
	tests := []struct {
		name, ct string
		body     []byte
		status   int
	}{
		{"json", "application/json", []byte(`{"a":[1,2]}`), 0},
		{"bad json", "application/json", []byte(`{bad`), 400},
		{"bad +json", "application/vnd.x+json", []byte(`nope`), 400},
		{"no content type, json", "", []byte(`[1]`), 0},
		{"no content type, bytes", "", []byte{0xff, 0x00, 'x'}, 0},
		{"text", "text/plain", []byte("héllo\n"), 0},
		{"binary", "application/octet-stream", []byte{0x00, 0xfe, 0xff}, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Id", "1")
		h.Set("Ce-Source", "/s")
		h.Set("Ce-Type", "t")
		if tt.ct != "" {
			h.Set("Content-Type", tt.ct)
		}
		events, rerr := ParseRequest(h, tt.body)
		if tt.status != 0 {
			if rerr == nil || rerr.Status != tt.status {
				t.Errorf("%s: got %v, want status %d", tt.name, rerr, tt.status)
			}
			continue
		}
		if rerr != nil {
			t.Fatalf("%s: %v", tt.name, rerr)
		}
		b, err := events[0].MarshalJSON()
		if err != nil || !json.Valid(b) {
			t.Fatalf("%s: journal encoding %q: %v", tt.name, b, err)
		}
		var back event.Event
		if err := back.UnmarshalJSON(b); err != nil {
			t.Fatalf("%s: decode: %v", tt.name, err)
		}
		if !bytes.Equal(back.Data(), tt.body) {
			t.Errorf("%s: data after the journal = %q, want %q", tt.name, back.Data(), tt.body)
		}
	}
}
