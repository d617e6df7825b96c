package webhooksource

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// discard is an Ingester that keeps nothing.
type discard struct{}

func (discard) Ingest(context.Context, []*event.Event) error { return nil }
func (discard) Rejected(string)                              {}

// nullWriter is a ResponseWriter that remembers only the status.
type nullWriter struct {
	h      http.Header
	status int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(s int)           { w.status = s }

// githubBody is a push payload of about 1.5 KiB.
var githubBody = `{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",` +
	`"repository":{"id":1296269,"full_name":"octo/hello","private":false,"owner":{"login":"octo","id":1},"html_url":"https://github.com/octo/hello",` +
	`"description":"` + strings.Repeat("x", 600) + `"},"pusher":{"name":"octo","email":"octo@example.com"},` +
	`"commits":[{"id":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","message":"Update README","timestamp":"2024-05-01T10:00:00Z","author":{"name":"octo"}}],` +
	`"head_commit":{"id":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","timestamp":"2024-05-01T10:00:00Z"}}`

func BenchmarkWebhook(b *testing.B) {
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(githubBody))
	githubSig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	swSig := signStandard(b, swSecret, "msg_1", ts, githubBody)

	for _, bc := range []struct {
		name    string
		cfg     string
		headers map[string]string
	}{
		{"defaults", "path: /h", map[string]string{"Content-Type": "application/json"}},
		{"github", `path: /h
verify:
  scheme: hmac-sha256
  secret: s3cret
attributes:
  type: '"com.github." + headers["x-github-event"]'
  subject: body.repository.full_name
  id: headers["x-github-delivery"]`, map[string]string{
			"Content-Type": "application/json", "X-GitHub-Event": "push",
			"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-Hub-Signature-256": githubSig,
			"User-Agent": "GitHub-Hookshot/abc", "Accept": "*/*",
		}},
		// The same message every time: after the first, the replays.
		{"standard-webhooks replay", "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: " + swSecret, map[string]string{
			"Content-Type": "application/json", "webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": swSig,
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := build(b, bc.cfg)
			h := w.Handler(discard{})
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/h", nil)
			for k, v := range bc.headers {
				req.Header.Set(k, v)
			}
			body := strings.NewReader(githubBody)
			rw := &nullWriter{h: http.Header{}}
			b.SetBytes(int64(len(githubBody)))
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(githubBody)
				req.Body = io.NopCloser(body)
				req.ContentLength = int64(len(githubBody))
				rw.status = 0
				h.ServeHTTP(rw, req)
				if rw.status != http.StatusAccepted {
					b.Fatalf("status %d", rw.status)
				}
			}
		})
	}

	// Standard Webhooks: each message a first delivery (distinct ids, so
	// the replay guard records each), and the same message replayed.
	b.Run("standard-webhooks ids", func(b *testing.B) {
		w := build(b, "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: "+swSecret)
		h := w.Handler(discard{})
		const pool = 4096 // ids signed ahead; the guard restarts after each round
		sigs := make([][2]string, pool)
		for i := range sigs {
			id := "msg_" + strconv.Itoa(i)
			sigs[i] = [2]string{id, signStandard(b, swSecret, id, ts, githubBody)}
		}
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/h", nil)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Webhook-Timestamp", ts)
		body := strings.NewReader(githubBody)
		rw := &nullWriter{h: http.Header{}}
		b.SetBytes(int64(len(githubBody)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == pool {
				i = 0
				w.replay = newReplayGuard(w.replay.tolerance, MaxReplayIDs, nil)
			}
			req.Header["Webhook-Id"] = []string{sigs[i][0]}
			req.Header["Webhook-Signature"] = []string{sigs[i][1]}
			i++
			body.Reset(githubBody)
			req.Body = io.NopCloser(body)
			req.ContentLength = int64(len(githubBody))
			rw.status = 0
			h.ServeHTTP(rw, req)
			if rw.status != http.StatusAccepted {
				b.Fatalf("status %d", rw.status)
			}
		}
	})

	// The same through a real HTTP server and client, keep-alive.
	b.Run("http", func(b *testing.B) {
		w := build(b, "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: s3cret\nattributes:\n  type: '\"com.github.\" + headers[\"x-github-event\"]'\n  subject: body.repository.full_name")
		srv := serve(b, w, discard{})
		client := srv.Client()
		b.SetBytes(int64(len(githubBody)))
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/h", strings.NewReader(githubBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-Hub-Signature-256", githubSig)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkAttributes evaluates the github attribute expressions of
// BenchmarkWebhook on a request already parsed: the expressions alone.
func BenchmarkAttributes(b *testing.B) {
	w := build(b, `path: /h
attributes:
  type: '"com.github." + headers["x-github-event"]'
  subject: body.repository.full_name
  id: headers["x-github-delivery"]`)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/h", nil)
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	env, _ := w.compiled.env(req, []byte(githubBody), "application/json")
	b.ReportAllocs()
	for b.Loop() {
		for i := range w.compiled.attrs {
			if _, err := w.compiled.attrs[i].prog.Run(env); err != nil {
				b.Fatal(err)
			}
		}
	}
}
