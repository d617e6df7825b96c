package router

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesHandlers checks the OpenAPI document against the real
// admin handlers: every route registered under /api/ is documented with
// its method, and every documented operation answers (not 404 or 405, and
// for a GET without parameters, 200).
func TestOpenAPIMatchesHandlers(t *testing.T) {
	p := compile(t, `
journal: {archive: {maxAge: 1h}}
sinks:
  - {name: one, type: test-recorder}
routes:
  - {name: all, to: [one]}
`)
	r := startRouter(t, p)
	mux := r.adminMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("GET /api/v1/openapi.json: %d %v %q", resp.StatusCode, err, doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, pat := range mux.patterns {
		method, path, _ := strings.Cut(pat, " ")
		if !strings.HasPrefix(path, "/api/") {
			continue
		}
		registered[pat] = true
		if !documented[method+" "+path] {
			t.Errorf("%s is registered but not in openapi.json", pat)
		}
	}
	var ops []string
	for op := range documented {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		if !registered[op] {
			t.Errorf("%s is in openapi.json but not registered", op)
			continue
		}
		method, path, _ := strings.Cut(op, " ")
		url := srv.URL + strings.NewReplacer("{id}", "unknown-id").Replace(path)
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{}`)
		}
		req, _ := http.NewRequest(method, url, body)
		if path == "/api/v1/tail" {
			continue // a stream: TestLiveTail reads it
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound && !strings.Contains(path, "{") || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s answers %d", op, resp.StatusCode)
		}
		if method == http.MethodGet && !strings.Contains(path, "{") && resp.StatusCode != http.StatusOK {
			t.Errorf("%s answers %d, want 200", op, resp.StatusCode)
		}
		if _, ok := doc.Paths[path][strings.ToLower(method)]; ok {
			var o struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			json.Unmarshal(doc.Paths[path][strings.ToLower(method)], &o)
			if _, ok := o.Responses[itoa(int64(resp.StatusCode))]; !ok {
				t.Errorf("%s answered %d, which openapi.json does not list", op, resp.StatusCode)
			}
		}
	}
}
