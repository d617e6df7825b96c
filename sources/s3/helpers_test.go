package s3source

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/s3event/s3eventtest"
	"github.com/junctionhq/junction/sources"
)

// Notifications as the services write them (see s3eventtest).
const (
	awsPut   = s3eventtest.AWSPut
	minioPut = s3eventtest.MinIOPut
	awsTest  = s3eventtest.AWSTest
)

// snsEnvelope wraps body as SNS writes it to SQS without raw message
// delivery.
var snsEnvelope = s3eventtest.SNSEnvelope

// recorder is an Ingester that records events; fail decides per call
// whether Ingest fails.
type recorder struct {
	mu       sync.Mutex
	events   []*event.Event
	calls    int
	rejected map[string]int
	fail     func(call int, events []*event.Event) error
}

var _ sources.Ingester = (*recorder)(nil)

func (r *recorder) Ingest(_ context.Context, events []*event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(r.calls, events); err != nil {
			return err
		}
	}
	r.events = append(r.events, events...)
	return nil
}

func (r *recorder) Rejected(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rejected == nil {
		r.rejected = map[string]int{}
	}
	r.rejected[reason]++
}

func (r *recorder) got() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) rejects(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected[reason]
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls ok until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// check decodes a source's own keys like the loader does and returns every
// problem as FILE:LINE:COL lines.
func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	node := doc.Content[0]
	c := NewConfig()
	var errs config.Errors
	if err := config.Decode(node, c); err != nil {
		errs.Add(node, `source "uploads"`, err)
	} else {
		errs.Add(node, `source "uploads"`, c.Validate())
	}
	if err := errs.Err(); err != nil {
		return c, err.Error()
	}
	return c, ""
}

// buildEndpoint builds an HTTP transport from YAML keys.
func buildEndpoint(t testing.TB, src string, logs *logBuffer) *Endpoint {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatalf("config:\n%s", errs)
	}
	if logs == nil {
		logs = &logBuffer{}
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "uploads", Logger: logs.logger(), MaxBodySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := s.(*Endpoint)
	if !ok {
		t.Fatalf("Build returned %T, want *Endpoint", s)
	}
	return e
}

// serve mounts the source on a real HTTP server, as the router does.
func serve(t testing.TB, e *Endpoint, in sources.Ingester) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(e.Path(), e.Handler(in))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	body   string
	header http.Header
}

func do(t testing.TB, method, url string, header map[string]string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: strings.TrimSpace(string(b)), header: resp.Header}
}
