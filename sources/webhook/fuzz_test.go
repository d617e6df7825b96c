package webhooksource

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

func FuzzMatchV1(f *testing.F) {
	f.Add(swSignature)
	f.Add("v1,AAAA v1a,xyz " + swSignature)
	f.Add("v1,")
	f.Add("  v1,,, v1")
	f.Add("v1," + strings.Repeat("A", 100))
	want := make([]byte, sha256.Size)
	good := "v1," + base64.StdEncoding.EncodeToString(want)
	f.Fuzz(func(t *testing.T, header string) {
		found, ok := matchV1(header, want)
		if ok && !found {
			t.Fatalf("matchV1(%q): matched without a v1 signature", header)
		}
		if _, ok := matchV1(header+" "+good, want); !ok {
			t.Fatalf("matchV1(%q + good): the good signature was missed", header)
		}
	})
}

func FuzzParseHexSignature(f *testing.F) {
	f.Add(githubSignature, DefaultSignaturePrefix)
	f.Add("sha256=", DefaultSignaturePrefix)
	f.Add(githubSignature[7:], "")
	f.Add("sha256=zz", "sha256=")
	f.Fuzz(func(t *testing.T, value, prefix string) {
		sig, err := parseHexSignature(value, prefix)
		if err == nil && len(sig) != sha256.Size {
			t.Fatalf("parseHexSignature(%q, %q) gave %d bytes", value, prefix, len(sig))
		}
	})
}

// FuzzRequest drives arbitrary requests through the handler: it never
// panics, answers one of the documented statuses, and every accepted event
// is valid and survives structured JSON.
func FuzzRequest(f *testing.F) {
	exprs := build(f, `path: /h
methods: [POST, PUT]
maxBodySize: 4KiB
attributes:
  type: '"com.github." + (headers["x-github-event"] ?? "unknown")'
  subject: body.repository.full_name
  tenant: query.tenant
  time: body.head_commit.timestamp ?? body.pushed_at
  count: len(body.commits ?? [])
  first: body.commits[0].id`)
	withData := build(f, `path: /h
attributes:
  id: headers["webhook-id"] ?? "none"
  datacontenttype: headers["x-type"]
data: body.payload`)
	signed := build(f, "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: "+swSecret)
	signed.now = func() time.Time { return time.Unix(1614265330, 0) }
	hmacd := build(f, "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: \""+githubSecret+"\"")

	f.Add("POST", "tenant=acme", "application/json", "push", swSignature, githubPush)
	f.Add("PUT", "", "text/plain", "", "", "plain")
	f.Add("GET", "a=%zz", "", "", "", "")
	f.Add("POST", "", "application/json", "", swSignature, swPayload)
	f.Add("POST", "", "application/octet-stream", "x", githubSignature, githubPayload)
	f.Add("POST", "", "application/json", "", "", `{"payload": {"a": [1, "x", null]}, "commits": "no"}`)
	f.Add("POST", "", "", "", "", "\xff\xfe")
	f.Fuzz(func(t *testing.T, method, query, contentType, event, sig, body string) {
		for _, w := range []*Webhook{exprs, withData, signed, hmacd} {
			rec := &sourcetest.Recorder{}
			req := &http.Request{
				Method:        method,
				URL:           &url.URL{Path: "/h", RawQuery: query},
				Header:        http.Header{},
				Body:          io.NopCloser(strings.NewReader(body)),
				ContentLength: int64(len(body)),
				RemoteAddr:    "127.0.0.1:1",
			}
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("X-GitHub-Event", event)
			req.Header.Set("X-Type", event)
			req.Header.Set("X-Hub-Signature-256", sig)
			req.Header.Set("Webhook-Id", swID)
			req.Header.Set("Webhook-Timestamp", swTimestamp)
			req.Header.Set("Webhook-Signature", sig)
			rw := httptest.NewRecorder()
			w.Handler(rec).ServeHTTP(rw, req)
			switch rw.Code {
			case http.StatusAccepted:
				e := rec.Last()
				if e == nil {
					// A replay of a signed message already ingested.
					if w != signed || rec.Rejections(ReasonDuplicate) != 1 {
						t.Fatal("202 without an event")
					}
					continue
				}
				if err := e.Validate(); err != nil {
					t.Fatalf("accepted an invalid event: %v", err)
				}
				b, err := json.Marshal(e)
				if err != nil || !json.Valid(b) {
					t.Fatalf("structured JSON of an accepted event: %v\n%s", err, b)
				}
			case http.StatusBadRequest, http.StatusUnauthorized, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
				if reason := rw.Body.String(); strings.Count(reason, "\n") != 1 || len(reason) > sources.MaxReason+1 {
					t.Fatalf("reason is not one bounded line: %q", reason)
				}
				if rec.Last() != nil {
					t.Fatal("an event ingested from a refused request")
				}
			default:
				t.Fatalf("status %d: %s", rw.Code, rw.Body)
			}
		}
	})
}
