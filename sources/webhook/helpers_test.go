package webhooksource

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

// sourceYAML is a config file with one webhook source whose own keys are
// body (indented by four spaces). The source's keys start on line 4.
func sourceYAML(body string) string {
	var b strings.Builder
	b.WriteString("sources:\n  - name: gh\n    type: webhook\n")
	for _, line := range strings.Split(strings.Trim(body, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

// load reads the first source of a config file through the config loader,
// then decodes and validates it as the router does.
func load(t testing.TB, file, text string, env map[string]string) (*Config, error) {
	t.Helper()
	cfg, err := config.Parse(file, []byte(text), func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.Sources) == 0 {
		t.Fatalf("no source in %s", file)
	}
	p := cfg.Sources[0]
	f, ok := sources.Lookup(p.Type)
	if !ok {
		t.Fatalf("source type %q is not registered", p.Type)
	}
	c := f()
	var errs config.Errors
	if err := config.Decode(p.Own, c); err != nil {
		errs.Add(p.Own, p.Where("source"), err)
	} else if err := c.Validate(); err != nil {
		errs.Add(p.Own, p.Where("source"), err)
	}
	errs.SetFile(file)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return c.(*Config), nil
}

// build loads the source config body and builds it.
func build(t testing.TB, body string) *Webhook {
	t.Helper()
	c, err := load(t, "test.yaml", sourceYAML(body), nil)
	if err != nil {
		t.Fatalf("load config:\n%v", err)
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "gh", MaxBodySize: 1 << 20})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	w, ok := s.(*Webhook)
	if !ok {
		t.Fatalf("Build returned %T, want *Webhook", s)
	}
	return w
}

// serve starts a real HTTP server with the source mounted at its path, as
// the router does.
func serve(t testing.TB, w *Webhook, in sources.Ingester) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(w.Path(), w.Handler(in))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type request struct {
	method  string
	path    string // with query
	headers map[string]string
	body    string
}

type response struct {
	status  int
	body    string
	headers http.Header
}

func send(t testing.TB, srv *httptest.Server, rq request) response {
	t.Helper()
	method := rq.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, srv.URL+rq.path, strings.NewReader(rq.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range rq.headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rq.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(b), headers: resp.Header}
}

// attrs lists the attributes of e as strings (extensions included), for
// comparisons.
func attrs(e *event.Event) map[string]string {
	m := map[string]string{
		"id":     e.ID(),
		"source": e.Source(),
		"type":   e.Type(),
	}
	if s := e.Subject(); s != "" {
		m["subject"] = s
	}
	if s := e.DataContentType(); s != "" {
		m["datacontenttype"] = s
	}
	if s := e.DataSchema(); s != "" {
		m["dataschema"] = s
	}
	if t := e.Time(); !t.IsZero() {
		m["time"] = t.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range e.Extensions() {
		m[k] = toText(v)
	}
	return m
}

func toText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprintf("%T:%v", v, v)
}
