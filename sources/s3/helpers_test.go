package s3source

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/s3event/s3eventtest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
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

// check decodes a source's own keys like the loader does and returns every
// problem as FILE:LINE:COL lines.
func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	return plugintest.Decode(t, src, `source "uploads"`, NewConfig)
}

// buildEndpoint builds an HTTP transport from YAML keys.
func buildEndpoint(t testing.TB, src string, logs *plugintest.LogBuffer) *Endpoint {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatalf("config:\n%s", errs)
	}
	if logs == nil {
		logs = &plugintest.LogBuffer{}
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "uploads", Logger: sourcetest.Logger(logs), MaxBodySize: 1 << 20})
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
