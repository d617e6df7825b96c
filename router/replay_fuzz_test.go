package router

import (
	"strings"
	"testing"
)

// FuzzParseReplayRequest: any body of POST /api/v1/replays is either a
// request with from before to and known routes, or a one-line error; it
// never panics.
func FuzzParseReplayRequest(f *testing.F) {
	f.Add([]byte(`{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "routes": ["a"], "filter": "type == \"x\""}`))
	f.Add([]byte(`{"from": "2026-01-01T00:00:00.5+02:00", "to": "2026-01-02T00:00:00Z"}`))
	f.Add([]byte(`{"from": "x"}`))
	f.Add([]byte(`{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "filter": "data.n +"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseReplayRequest(body, func(name string) bool { return name == "a" })
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error on several lines: %q", err)
			}
			return
		}
		if !req.from.Before(req.to) {
			t.Errorf("from %v not before to %v", req.from, req.to)
		}
		for _, r := range req.routes {
			if r != "a" {
				t.Errorf("unknown route %q accepted", r)
			}
		}
		if (req.filter != "") != (req.match != nil) {
			t.Errorf("filter %q compiled to %v", req.filter, req.match)
		}
	})
}
