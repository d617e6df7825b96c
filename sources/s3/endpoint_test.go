package s3source

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

func TestWebhook(t *testing.T) {
	logs := &plugintest.LogBuffer{}
	e := buildEndpoint(t, "path: /s3/minio\nauthToken: s3cret", logs)
	rec := &sourcetest.Recorder{}
	srv := serve(t, e, rec)
	url := srv.URL + "/s3/minio"
	auth := map[string]string{"Authorization": "Bearer s3cret", "Content-Type": "application/json"}

	cases := []struct {
		name   string
		method string
		header map[string]string
		body   string
		status int
		reason string // the body of a refusal
		label  string // counted rejection
	}{
		{"notification", http.MethodPost, auth, minioPut, http.StatusAccepted, "", ""},
		{"MinIO's probe", http.MethodHead, auth, "", http.StatusOK, "", ""},
		{"test event", http.MethodPost, auth, awsTest, http.StatusOK, "", ""},
		{"no token", http.MethodPost, map[string]string{}, minioPut, http.StatusUnauthorized, "missing or wrong Authorization header (the authToken)", sources.ReasonUnauthorized},
		{"wrong token", http.MethodPost, map[string]string{"Authorization": "Bearer s3cret2"}, minioPut, http.StatusUnauthorized, "missing or wrong Authorization header (the authToken)", sources.ReasonUnauthorized},
		{"token without scheme", http.MethodPost, map[string]string{"Authorization": "s3cret"}, minioPut, http.StatusUnauthorized, "missing or wrong Authorization header (the authToken)", sources.ReasonUnauthorized},
		{"probe without token", http.MethodHead, map[string]string{}, "", http.StatusUnauthorized, "", sources.ReasonUnauthorized},
		{"GET", http.MethodGet, auth, "", http.StatusMethodNotAllowed, "method GET not allowed (use POST)", sources.ReasonMethodNotAllowed},
		{"not JSON", http.MethodPost, auth, "hello", http.StatusBadRequest, "not an S3 event notification: invalid JSON at byte 1: invalid character 'h' looking for beginning of value", sources.ReasonMalformed},
		{"no records", http.MethodPost, auth, `{"EventName":"s3:ObjectCreated:Put"}`, http.StatusBadRequest, "not an S3 event notification: no Records", sources.ReasonMalformed},
		{"SNS envelope", http.MethodPost, auth, snsEnvelope(awsPut), http.StatusBadRequest, "an SNS message where an S3 event notification was expected", sources.ReasonMalformed},
		{"too large", http.MethodPost, auth, `{"Records":"` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge, "body over the limit of 1MiB", sources.ReasonTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, rejected := rec.Count(), rec.Rejections(tc.label)
			resp := do(t, tc.method, url, tc.header, tc.body)
			if resp.status != tc.status {
				t.Fatalf("answer %d %q, want %d", resp.status, resp.body, tc.status)
			}
			if tc.reason != "" && resp.body != tc.reason {
				t.Errorf("reason:\n got %s\nwant %s", resp.body, tc.reason)
			}
			if tc.label != "" && rec.Rejections(tc.label) != rejected+1 {
				t.Errorf("rejection %q not counted", tc.label)
			}
			if tc.status == http.StatusAccepted && rec.Count() != before+1 {
				t.Errorf("%d events ingested, want 1", rec.Count()-before)
			}
			if tc.status != http.StatusAccepted && rec.Count() != before {
				t.Errorf("%d events ingested, want none", rec.Count()-before)
			}
		})
	}
	e0 := rec.Events()[0]
	if e0.Type() != "com.amazonaws.s3.ObjectCreated:Put" || e0.Subject() != "incoming/file name.json" || e0.Source() != "minio:s3.uploads" {
		t.Errorf("event: type %q subject %q source %q", e0.Type(), e0.Subject(), e0.Source())
	}
	if !strings.Contains(logs.String(), "s3:TestEvent acknowledged and dropped") {
		t.Error("the test event was not logged")
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Error("the token is in the log")
	}
}

// TestWebhookSchemeToken: a token of the form "<scheme> <token>" is sent by
// MinIO as it is.
func TestWebhookSchemeToken(t *testing.T) {
	e := buildEndpoint(t, "path: /s3\nauthToken: Token abc", nil)
	rec := &sourcetest.Recorder{}
	srv := serve(t, e, rec)
	if r := do(t, http.MethodPost, srv.URL+"/s3", map[string]string{"Authorization": "Token abc"}, minioPut); r.status != http.StatusAccepted {
		t.Errorf("answer %d %q, want 202", r.status, r.body)
	}
	if r := do(t, http.MethodPost, srv.URL+"/s3", map[string]string{"Authorization": "Bearer Token abc"}, minioPut); r.status != http.StatusUnauthorized {
		t.Errorf("answer %d %q, want 401", r.status, r.body)
	}
}

// TestWebhookIngestErrors: 202 only once ingested; the journal's refusals
// become 503 and 413.
func TestWebhookIngestErrors(t *testing.T) {
	e := buildEndpoint(t, "path: /s3\nauthToken: abc", nil)
	cases := []struct {
		err    error
		status int
	}{
		{sources.ErrUnavailable, http.StatusServiceUnavailable},
		{sources.ErrTooLarge, http.StatusRequestEntityTooLarge},
		{context.DeadlineExceeded, http.StatusServiceUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	}
	for _, tc := range cases {
		rec := &sourcetest.Recorder{Fail: func(int, []*event.Event) error { return tc.err }}
		srv := serve(t, e, rec)
		r := do(t, http.MethodPost, srv.URL+"/s3", map[string]string{"Authorization": "Bearer abc"}, minioPut)
		if r.status != tc.status {
			t.Errorf("ingest error %v: answer %d %q, want %d", tc.err, r.status, r.body, tc.status)
		}
		if tc.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
			t.Errorf("ingest error %v: no Retry-After", tc.err)
		}
	}
}

func BenchmarkWebhook(b *testing.B) {
	e := buildEndpoint(b, "path: /s3\nauthToken: abc", nil)
	h := e.Handler(&discard{})
	body := []byte(minioPut)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "/s3", strings.NewReader(minioPut))
		req.Header.Set("Authorization", "Bearer abc")
		w := &nopWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status != http.StatusAccepted {
			b.Fatalf("status %d", w.status)
		}
	}
}

type discard struct{}

func (discard) Ingest(context.Context, []*event.Event) error { return nil }
func (discard) Rejected(string)                              {}

type nopWriter struct {
	h      http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(s int)           { w.status = s }
