package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandlerServesPageAndAssets(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	resp, body := get(t, srv, "/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="/console/app.js"`) {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("Content-Security-Policy: %q", csp)
	}
	for path, ctype := range map[string]string{"/console/app.js": "text/javascript", "/console/app.css": "text/css", "/console/favicon.svg": "image/svg+xml"} {
		resp, body := get(t, srv, path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || body == "" {
			t.Errorf("GET %s: %d %s (%d bytes)", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/console/nope.js", "/console/../console.go", "/other", "/console/index.html"} {
		if resp, _ := get(t, srv, path); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// The console works offline: no asset names another origin.
func TestAssetsStayOnTheirOrigin(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range external.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" { // the SVG namespace, not a request
				t.Errorf("%s names another origin: %s", path, m)
			}
		}
		if strings.Contains(string(b), "innerHTML") {
			t.Errorf("%s uses innerHTML: event data must be set as text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
