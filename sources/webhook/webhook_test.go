package webhooksource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

func TestDefaults(t *testing.T) {
	w := build(t, "path: /hooks/any")
	rec := &sourcetest.Recorder{}
	srv := serve(t, w, rec)
	body := `{"hello": "world"}`
	resp := send(t, srv, request{path: "/hooks/any", headers: map[string]string{"Content-Type": "application/json"}, body: body})
	if resp.status != http.StatusAccepted || resp.body != "" {
		t.Fatalf("answer %d %q, want 202 and no body", resp.status, resp.body)
	}
	e := rec.Last()
	if e == nil {
		t.Fatal("nothing ingested")
	}
	if _, err := uuid.Parse(e.ID()); err != nil {
		t.Errorf("id %q is not a UUID: %v", e.ID(), err)
	}
	want := map[string]string{"id": e.ID(), "source": "/hooks/any", "type": "dev.junction.webhook", "datacontenttype": "application/json"}
	if got := attrs(e); !maps.Equal(got, want) {
		t.Errorf("attributes %v, want %v", got, want)
	}
	if string(e.Data()) != body || e.DataBase64 {
		t.Errorf("data %q (base64 %v), want %q as is", e.Data(), e.DataBase64, body)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}

	// A second request gets another id.
	first := e.ID()
	send(t, srv, request{path: "/hooks/any", body: "x"})
	if e := rec.Last(); e.ID() == first {
		t.Errorf("two requests got the same id %q", first)
	}
}

func TestBodies(t *testing.T) {
	w := build(t, "path: /h")
	binary := string([]byte{0xff, 0x00, 0xfe, 'a'})
	for _, tc := range []struct {
		name, contentType, body string
		wantCT                  string // "" means no datacontenttype
		wantBase64              bool
		wantStatus              int
		wantReason              string
	}{
		{"no content type", "", "plain text", "application/octet-stream", false, 202, ""},
		{"binary", "application/octet-stream", binary, "application/octet-stream", true, 202, ""},
		{"text", "text/plain; charset=utf-8", "héllo", "text/plain; charset=utf-8", false, 202, ""},
		{"json with parameters", "application/json; charset=utf-8", `[1,2]`, "application/json; charset=utf-8", false, 202, ""},
		{"vendor json", "application/vnd.github+json", `{"a":1}`, "application/vnd.github+json", false, 202, ""},
		{"empty body", "application/json", "", "", false, 202, ""},
		{"invalid json", "application/json", `{"a":`, "", false, 400,
			"body is not valid JSON, but its content type is application/json"},
		{"json with invalid UTF-8", "application/json", "{\"a\":\"\xff\"}", "", false, 400,
			"body is not valid JSON, but its content type is application/json"},
		{"bad content type", "not a type;;", "x", "", false, 400,
			`invalid attribute "datacontenttype": failed to parse RFC 2046 media type mime: expected slash after first token`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &sourcetest.Recorder{}
			srv := serve(t, w, rec)
			h := map[string]string{}
			if tc.contentType != "" {
				h["Content-Type"] = tc.contentType
			}
			resp := send(t, srv, request{path: "/h", headers: h, body: tc.body})
			if resp.status != tc.wantStatus {
				t.Fatalf("status %d (%q), want %d", resp.status, resp.body, tc.wantStatus)
			}
			if tc.wantStatus != 202 {
				if got := strings.TrimSuffix(resp.body, "\n"); got != tc.wantReason {
					t.Errorf("reason %q, want %q", got, tc.wantReason)
				}
				if rec.Rejections("malformed") != 1 || rec.Last() != nil {
					t.Errorf("rejected %v, events %d; want one malformed and none", rec.Reasons(), rec.Count())
				}
				return
			}
			e := rec.Last()
			if got := e.DataContentType(); got != tc.wantCT {
				t.Errorf("datacontenttype %q, want %q", got, tc.wantCT)
			}
			if tc.body == "" {
				if e.DataEncoded != nil {
					t.Errorf("data %q, want none", e.DataEncoded)
				}
			} else if string(e.DataEncoded) != tc.body {
				t.Errorf("data %q, want %q", e.DataEncoded, tc.body)
			}
			if e.DataBase64 != tc.wantBase64 {
				t.Errorf("DataBase64 %v, want %v", e.DataBase64, tc.wantBase64)
			}
			// The event survives structured JSON unchanged.
			b, err := e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			back := e.Clone()
			if err := back.UnmarshalJSON(b); err != nil {
				t.Fatalf("structured JSON %s: %v", b, err)
			}
			if !bytes.Equal(back.Data(), e.Data()) {
				t.Errorf("data after structured JSON %q, want %q", back.Data(), e.Data())
			}
		})
	}
}

const githubPush = `{"ref":"refs/heads/main","repository":{"full_name":"octo/hello","id":1296269,"private":false},` +
	`"commits":[{"id":"a1"},{"id":"b2"}],"pushed_at":1700000000,"head_commit":{"timestamp":"2024-05-01T10:00:00Z"},"size":3,"big":4294967296,"ratio":0.5}`

func TestAttributes(t *testing.T) {
	githubHeaders := map[string]string{
		"Content-Type":      "application/json",
		"X-GitHub-Event":    "push",
		"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
	}
	for _, tc := range []struct {
		name    string
		attrs   string // the attributes mapping, one "name: expr" a line
		data    string // the data key, optional
		path    string // request path and query; default /h
		method  string
		headers map[string]string
		body    string
		want    map[string]string // attributes besides source /h, and the defaults where not given
		reason  string            // a 400 with this reason instead
	}{
		{
			name:    "github",
			attrs:   "type: '\"com.github.\" + headers[\"x-github-event\"]'\nsubject: body.repository.full_name\nid: headers[\"x-github-delivery\"]",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"type": "com.github.push", "subject": "octo/hello", "id": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "datacontenttype": "application/json"},
		},
		{
			name:    "missing field leaves the attribute unset",
			attrs:   "subject: body.repository.full_name",
			headers: map[string]string{"Content-Type": "application/json", "X-GitHub-Event": "ping"},
			body:    `{"zen":"Keep it logically awesome."}`,
			want:    map[string]string{"datacontenttype": "application/json"},
		},
		{
			name:    "missing header in a concatenation",
			attrs:   "type: '\"com.github.\" + headers[\"x-github-event\"]'",
			headers: map[string]string{"Content-Type": "application/json"}, body: `{}`,
			reason: "attribute type: invalid operation: string + <nil>",
		},
		{
			name:   "required attribute nil",
			attrs:  "type: headers[\"x-github-event\"]",
			body:   `{}`,
			reason: "attribute type: the expression gave nil, but type is required",
		},
		{
			name:   "required attribute empty",
			attrs:  "id: query.id",
			path:   "/h?id=",
			reason: "attribute id: the expression gave an empty string, but id is required",
		},
		{
			name:    "nil-safe member access",
			attrs:   "subject: body.a.b[3].c\nx1: body.commits[9].id\nx2: body[0]\nx3: rawBody.foo\nx4: headers.nope.deeper\nx5: body.ref.x\nx6: body.commits.id\nx7: query.q[0]\nx8: body?.repository?.nope\nx9: method.x.y",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"datacontenttype": "application/json"},
		},
		{
			name:  "undefined names are nil",
			attrs: "tenant: foo\nsubject: nothing.x\nx: '\"constant\"'",
			body:  "x",
			want:  map[string]string{"x": "constant", "datacontenttype": "application/octet-stream"},
		},
		{
			name:    "member access on a non-JSON body",
			attrs:   "subject: body.repository.full_name\nbodytext: body",
			headers: map[string]string{"Content-Type": "text/plain"}, body: "just text",
			want: map[string]string{"bodytext": "just text", "datacontenttype": "text/plain"},
		},
		{
			name:  "JSON body without a JSON content type",
			attrs: "subject: body.repository.full_name",
			body:  githubPush,
			want:  map[string]string{"subject": "octo/hello", "datacontenttype": "application/octet-stream"},
		},
		{
			name:    "list access, predicates, negative index and env",
			attrs:   "subject: join(map(body.commits, .id), \",\")\nlast: body.commits[-1].id\nviaenv: $env.body.repository.full_name\ncount: len(body.commits)",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"subject": "a1,b2", "last": "b2", "viaenv": "octo/hello", "count": "int32:2", "datacontenttype": "application/json"},
		},
		{
			name:   "request names",
			attrs:  "subject: method + \" \" + path\ntenant: query.tenant\nraw: rawBody\nagent: headers[\"user-agent\"]",
			method: "PUT", path: "/h?tenant=acme&tenant=other",
			headers: map[string]string{"User-Agent": "tester/1"}, body: "abc",
			want: map[string]string{"subject": "PUT /h", "tenant": "acme", "raw": "abc", "agent": "tester/1", "datacontenttype": "application/octet-stream"},
		},
		{
			name:    "extension types",
			attrs:   "size: body.size\nbig: body.big\nratio: body.ratio\nprivate: body.repository.private\nrepoid: body.repository.id\nlit: 7",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"size": "int32:3", "big": "4294967296", "ratio": "0.5", "private": "bool:false", "repoid": "int32:1296269", "lit": "int32:7", "datacontenttype": "application/json"},
		},
		{
			name:    "object for a string attribute",
			attrs:   "subject: body.repository",
			headers: githubHeaders, body: githubPush,
			reason: "attribute subject: expected a string, number or bool, got a map",
		},
		{
			name:    "list for an extension",
			attrs:   "commits: body.commits",
			headers: githubHeaders, body: githubPush,
			reason: "attribute commits: expected a string, number, bool or time, got a list",
		},
		{
			name:    "numbers as strings",
			attrs:   "id: body.repository.id\nsubject: body.ratio",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"id": "1296269", "subject": "0.5", "datacontenttype": "application/json"},
		},
		{
			name:    "time from a string and from Unix seconds",
			attrs:   "time: body.head_commit.timestamp\npushed: date(body.head_commit.timestamp)",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"time": "2024-05-01T10:00:00Z", "pushed": "types.Timestamp:2024-05-01T10:00:00Z", "datacontenttype": "application/json"},
		},
		{
			name:    "time from Unix seconds",
			attrs:   "time: body.pushed_at",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"time": "2023-11-14T22:13:20Z", "datacontenttype": "application/json"},
		},
		{
			// The conversions are those of transforms (filters.SetAttribute):
			// NaN is refused, not formatted "NaN"; large numbers have no exponent.
			name:    "NaN for a string attribute",
			attrs:   "subject: 0.0 / 0.0",
			headers: githubHeaders, body: githubPush,
			reason: "attribute subject: cannot use NaN as a string",
		},
		{
			name:    "NaN for an extension",
			attrs:   "ratio: body.ratio / 0.0 - body.ratio / 0.0",
			headers: githubHeaders, body: githubPush,
			reason: "attribute ratio: cannot use NaN as a string",
		},
		{
			name:    "NaN for time",
			attrs:   "time: 0.0 / 0.0",
			headers: githubHeaders, body: githubPush,
			reason: "attribute time: NaN is not a Unix time in seconds",
		},
		{
			name:    "large numbers without exponent",
			attrs:   "big: 1e21\nsubject: body.size * 1e21",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"big": "1000000000000000000000", "subject": "3000000000000000000000", "datacontenttype": "application/json"},
		},
		{
			name:    "bad time",
			attrs:   "time: body.ref",
			headers: githubHeaders, body: githubPush,
			reason: `attribute time: "refs/heads/main" is not an RFC 3339 time`,
		},
		{
			name:    "overrides",
			attrs:   "source: '\"https://github.com/\" + body.repository.full_name'\ndatacontenttype: '\"application/vnd.github+json\"'\ndataschema: '\"https://schemas.example.com/push\"'",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"source": "https://github.com/octo/hello", "datacontenttype": "application/vnd.github+json", "dataschema": "https://schemas.example.com/push"},
		},
		{
			name:    "datacontenttype null",
			attrs:   "datacontenttype: null",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{},
		},
		{
			name:   "datacontenttype null with a body that is not JSON",
			attrs:  "datacontenttype: null",
			body:   "text",
			reason: "body is not valid JSON, but its content type is absent (taken as application/json)",
		},
		{
			name:    "body expression on JSON with invalid UTF-8",
			attrs:   "subject: body.ref",
			headers: githubHeaders, body: "{\"ref\":\"\xff\"}",
			reason: "body is not valid JSON, but its content type is application/json",
		},
		{
			name:   "bad datacontenttype",
			attrs:  "datacontenttype: '\"no type\"'",
			body:   "text",
			reason: `attribute datacontenttype: "no type" is not a media type`,
		},
		{
			name:   "bad source",
			attrs:  "source: '\"%zz\"'",
			body:   "x",
			reason: `attribute source: parse "%zz": invalid URL escape "%zz"`,
		},
		{
			name:  "optional attribute null",
			attrs: "subject: null",
			body:  "x",
			want:  map[string]string{"datacontenttype": "application/octet-stream"},
		},
		{
			name:    "data from an expression",
			attrs:   "subject: body.ref",
			data:    "body.repository",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{"subject": "refs/heads/main", "datacontenttype": "application/json", "data": `{"full_name":"octo/hello","id":1296269,"private":false}`},
		},
		{
			name: "data as text",
			data: "upper(rawBody)",
			body: "abc",
			want: map[string]string{"datacontenttype": "text/plain; charset=utf-8", "data": "ABC"},
		},
		{
			name:   "data labelled JSON that is not",
			attrs:  "datacontenttype: '\"application/json\"'",
			data:   "rawBody",
			body:   "abc",
			reason: "data is not valid JSON, but its content type is application/json",
		},
		{
			name:    "data nil",
			data:    "body.nothing",
			headers: githubHeaders, body: githubPush,
			want: map[string]string{},
		},
		{
			name: "data null",
			data: "null",
			body: "abc",
			want: map[string]string{},
		},
		{
			name:   "data run-time error",
			data:   "1 / len(body.nothing) > 0 ? 1 : 2",
			body:   "{}",
			reason: "data: invalid argument for len (type <nil>)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "path: /h\nmethods: [POST, PUT]"
			if tc.attrs != "" {
				cfg += "\nattributes:\n  " + strings.ReplaceAll(tc.attrs, "\n", "\n  ")
			}
			if tc.data != "" {
				cfg += "\ndata: '" + tc.data + "'"
			}
			w := build(t, cfg)
			rec := &sourcetest.Recorder{}
			srv := serve(t, w, rec)
			p := tc.path
			if p == "" {
				p = "/h"
			}
			resp := send(t, srv, request{method: tc.method, path: p, headers: tc.headers, body: tc.body})
			if tc.reason != "" {
				if resp.status != http.StatusBadRequest || resp.body != tc.reason+"\n" {
					t.Fatalf("answer %d %q, want 400 %q", resp.status, resp.body, tc.reason)
				}
				if rec.Rejections("malformed") != 1 || rec.Last() != nil {
					t.Errorf("rejected %v with %d events, want one malformed and no event", rec.Reasons(), rec.Count())
				}
				return
			}
			if resp.status != http.StatusAccepted {
				t.Fatalf("answer %d %q, want 202", resp.status, resp.body)
			}
			e := rec.Last()
			got := attrs(e)
			want := map[string]string{"source": "/h", "type": "dev.junction.webhook", "id": got["id"]}
			maps.Copy(want, tc.want)
			if d, ok := want["data"]; ok {
				delete(want, "data")
				if string(e.Data()) != d {
					t.Errorf("data %s, want %s", e.Data(), d)
				}
			} else if e.DataEncoded != nil && string(e.DataEncoded) != tc.body {
				t.Errorf("data %q, want the body %q", e.DataEncoded, tc.body)
			}
			if !maps.Equal(got, want) {
				t.Errorf("attributes\n got %v\nwant %v", got, want)
			}
			if err := e.Validate(); err != nil {
				t.Errorf("invalid event: %v", err)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	w := build(t, "path: /h\nmethods: [POST, PUT]")
	rec := &sourcetest.Recorder{}
	srv := serve(t, w, rec)
	for _, m := range []string{http.MethodGet, http.MethodDelete, http.MethodPatch} {
		resp := send(t, srv, request{method: m, path: "/h", body: "x"})
		if resp.status != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want 405", m, resp.status)
		}
		if got := resp.headers.Get("Allow"); got != "POST, PUT" {
			t.Errorf("%s: Allow %q, want \"POST, PUT\"", m, got)
		}
	}
	if want := fmt.Sprintf("method %s not allowed (use POST, PUT)\n", http.MethodPatch); send(t, srv, request{method: http.MethodPatch, path: "/h"}).body != want {
		t.Errorf("reason is not %q", want)
	}
	if n := rec.Rejections("method_not_allowed"); n != 4 {
		t.Errorf("rejected method_not_allowed %d times, want 4", n)
	}
	if resp := send(t, srv, request{method: http.MethodPut, path: "/h", body: "x"}); resp.status != http.StatusAccepted {
		t.Errorf("PUT: status %d, want 202", resp.status)
	}
	if rec.Count() != 1 {
		t.Errorf("%d events, want 1", rec.Count())
	}
}

// hiddenLength makes the client send a body of unknown length (chunked).
type hiddenLength struct{ r io.Reader }

func (h hiddenLength) Read(p []byte) (int, error) { return h.r.Read(p) }

func TestTooLarge(t *testing.T) {
	w := build(t, "path: /h\nmaxBodySize: 1KiB")
	rec := &sourcetest.Recorder{}
	srv := serve(t, w, rec)

	if resp := send(t, srv, request{path: "/h", body: strings.Repeat("a", 1024)}); resp.status != http.StatusAccepted {
		t.Errorf("body of exactly the limit: status %d, want 202", resp.status)
	}
	resp := send(t, srv, request{path: "/h", body: strings.Repeat("a", 1025)})
	if resp.status != http.StatusRequestEntityTooLarge || resp.body != "body over the limit of 1KiB\n" {
		t.Errorf("Content-Length over the limit: %d %q, want 413", resp.status, resp.body)
	}
	// Unknown length: the limit is found while reading.
	for _, n := range []int{1024, 1025, 1 << 20} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/h", hiddenLength{strings.NewReader(strings.Repeat("b", n))})
		r, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		want := http.StatusRequestEntityTooLarge
		if n <= 1024 {
			want = http.StatusAccepted
		}
		if r.StatusCode != want {
			t.Errorf("chunked body of %d bytes: status %d, want %d", n, r.StatusCode, want)
		}
	}
	if n := rec.Rejections("too_large"); n != 3 {
		t.Errorf("rejected too_large %d times, want 3", n)
	}
	if rec.Count() != 2 {
		t.Errorf("%d events, want 2", rec.Count())
	}
	if string(rec.Last().Data()) != strings.Repeat("b", 1024) {
		t.Errorf("chunked body not read whole")
	}
}

func TestIngestErrors(t *testing.T) {
	w := build(t, "path: /h")
	for _, tc := range []struct {
		err        error
		status     int
		retryAfter string
		label      string
		body       string
	}{
		{fmt.Errorf("append: %w", sources.ErrUnavailable), 503, "1", "unavailable", "journal unavailable; retry later\n"},
		{fmt.Errorf("append: %w", context.DeadlineExceeded), 503, "1", "unavailable", "journal unavailable; retry later\n"},
		{fmt.Errorf("append: %w", sources.ErrTooLarge), 413, "", "too_large", "event too large for the journal\n"},
		{errors.New("disk on fire"), 500, "", "internal", "internal error: the events were not stored\n"},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			rec := &sourcetest.Recorder{Fail: func(int, []*event.Event) error { return tc.err }}
			srv := serve(t, w, rec)
			resp := send(t, srv, request{path: "/h", body: "x"})
			if resp.status != tc.status || resp.body != tc.body {
				t.Errorf("answer %d %q, want %d %q", resp.status, resp.body, tc.status, tc.body)
			}
			if got := resp.headers.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if rec.Rejections(tc.label) != 1 {
				t.Errorf("rejected %v, want one %s", rec.Reasons(), tc.label)
			}
		})
	}
}

// blocking is an Ingester that waits for its context to end.
type blocking struct {
	sourcetest.Recorder
	started chan struct{}
}

func (b *blocking) Ingest(ctx context.Context, _ []*event.Event) error {
	close(b.started)
	<-ctx.Done()
	return fmt.Errorf("append: %w", ctx.Err())
}

func TestCancelledRequest(t *testing.T) {
	w := build(t, "path: /h")
	in := &blocking{started: make(chan struct{})}
	srv := serve(t, w, in)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/h", strings.NewReader("x"))
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-in.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v, want context.Canceled", err)
	}
	plugintest.Eventually(t, 5*time.Second, "the cancelled request counted", func() bool { return in.Rejections("cancelled") == 1 })
}
