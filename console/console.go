// Package console is Junction's web console: static HTML, CSS and
// JavaScript built into the binary (no CDN, no build step, no external
// request), served on the admin listener. The pages call the operations
// API (/api/v1) with the admin token the user signs in with; the assets
// themselves hold no data, so they are served to anyone who can reach the
// admin listener, and a browser without a working token sees only the
// sign-in form.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Paths the console serves: "/" (the page) and its assets under Prefix.
const Prefix = "/console/"

// securityHeaders keeps the page to its own origin: scripts, styles and
// API calls from the admin listener only, no framing, no sniffing.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// Handler serves the console: GET / is the page, GET /console/NAME an
// asset; anything else under /console/ is 404.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		securityHeaders(w.Header())
		switch {
		case req.URL.Path == "/" || req.URL.Path == "/index.html":
			http.ServeFileFS(w, req, sub, "index.html")
		case strings.HasPrefix(req.URL.Path, Prefix):
			name := path.Clean(strings.TrimPrefix(req.URL.Path, Prefix))
			if name == "index.html" || strings.HasPrefix(name, ".") {
				http.NotFound(w, req)
				return
			}
			r2 := req.Clone(req.Context())
			r2.URL.Path = "/" + name
			files.ServeHTTP(w, r2)
		default:
			http.NotFound(w, req)
		}
	})
}
