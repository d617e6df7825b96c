package webhooksource

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/sources/sourcetest"
)

// jsonItems is {"items": ["y", "y", ...]} with n items.
func jsonItems(n int) string {
	var b strings.Builder
	b.Grow(n*4 + 16)
	b.WriteString(`{"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"y"`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestBudget: attribute and data expressions have the cost budget of
// filters (filters.DefaultBudget). Each expression below runs for tens of
// milliseconds to seconds on its hostile request without a budget; with it,
// the request is refused quickly with a 400 that says the budget was
// exceeded (counted as malformed, the payload not echoed), and an ordinary
// request on the same source is accepted.
func TestBudget(t *testing.T) {
	bigText := strings.Repeat("ab", 2<<20) // 4 MiB
	for _, tc := range []struct {
		name     string
		attrs    string // the attributes mapping, one "name: expr" a line
		data     string
		hostile  request
		ordinary request
		reason   string
	}{
		{
			name:     "filter over 600,000 items",
			attrs:    `id: string(len(filter(body.items, {# == "x"})))`,
			hostile:  request{headers: map[string]string{"Content-Type": "application/json"}, body: jsonItems(600_000)},
			ordinary: request{headers: map[string]string{"Content-Type": "application/json"}, body: `{"items":["x","y","x"]}`},
			reason:   "attribute id: expression cost budget exceeded (500000 units)",
		},
		{
			name:     "nested loops",
			attrs:    `id: string(count(body.items, {any(body.items, {# == "z"})}))`,
			hostile:  request{headers: map[string]string{"Content-Type": "application/json"}, body: jsonItems(3_000)},
			ordinary: request{headers: map[string]string{"Content-Type": "application/json"}, body: jsonItems(100)},
			reason:   "attribute id: expression cost budget exceeded (500000 units)",
		},
		{
			name:     "regular expression over a 4 MiB body",
			attrs:    `subject: 'rawBody matches "^(a|b)*c" ? "c" : "plain"'`,
			hostile:  request{body: bigText},
			ordinary: request{body: "abab"},
			reason:   "attribute subject: expression cost budget exceeded (500000 units)",
		},
		{
			name:     "regular expression over a 700 KB header",
			attrs:    `subject: 'headers["x-big"] matches "^(a|b)*c" ? "c" : "plain"'`,
			hostile:  request{headers: map[string]string{"X-Big": bigText[:700_000]}, body: "x"},
			ordinary: request{headers: map[string]string{"X-Big": "abab"}, body: "x"},
			reason:   "attribute subject: expression cost budget exceeded (500000 units)",
		},
		{
			name:     "data expression",
			data:     `map(body.items, {# + #})`,
			hostile:  request{headers: map[string]string{"Content-Type": "application/json"}, body: jsonItems(600_000)},
			ordinary: request{headers: map[string]string{"Content-Type": "application/json"}, body: jsonItems(10)},
			reason:   "data: expression cost budget exceeded (500000 units)",
		},
		{
			name:     "memory budget",
			attrs:    `id: string(len(1..(body.n ?? 1)))`,
			hostile:  request{headers: map[string]string{"Content-Type": "application/json"}, body: `{"n":2000000}`},
			ordinary: request{headers: map[string]string{"Content-Type": "application/json"}, body: `{"n":10}`},
			reason:   "attribute id: expression cost budget exceeded (500000 units of memory)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "path: /h\nmaxBodySize: 16MiB"
			if tc.attrs != "" {
				cfg += "\nattributes:\n  " + strings.ReplaceAll(tc.attrs, "\n", "\n  ")
			}
			if tc.data != "" {
				cfg += "\ndata: '" + tc.data + "'"
			}
			w := build(t, cfg)
			rec := &sourcetest.Recorder{}
			srv := serve(t, w, rec)

			tc.hostile.path, tc.ordinary.path = "/h", "/h"
			start := time.Now()
			resp := send(t, srv, tc.hostile)
			took := time.Since(start)
			if resp.status != http.StatusBadRequest || resp.body != tc.reason+"\n" {
				t.Fatalf("hostile request: answer %d %q after %v, want 400 %q", resp.status, resp.body, took, tc.reason)
			}
			if rec.Rejections("malformed") != 1 || rec.Count() != 0 {
				t.Errorf("rejected %v with %d events, want one malformed and no event", rec.Reasons(), rec.Count())
			}
			// The budget's error is the proof that evaluation stopped (it
			// would otherwise succeed, after seconds); how long it took is
			// measured by the benchmarks, not asserted here.
			t.Logf("hostile request refused in %v", took)

			if resp := send(t, srv, tc.ordinary); resp.status != http.StatusAccepted {
				t.Fatalf("ordinary request: answer %d %q, want 202", resp.status, resp.body)
			}
			if rec.Count() != 1 {
				t.Errorf("%d events, want 1", rec.Count())
			}
		})
	}
}

// TestBudgetEvaluation times the evaluation alone (the body already parsed):
// the hostile attribute expression fails within milliseconds.
func TestBudgetEvaluation(t *testing.T) {
	w := build(t, "path: /h\nmaxBodySize: 16MiB\nattributes:\n  id: 'string(count(body.items, {any(body.items, {# == \"z\"})}))'")
	body := []byte(jsonItems(20_000)) // 400,000,000 comparisons without a budget
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/h", nil)
	req.Header.Set("Content-Type", "application/json")
	env, _ := w.compiled.env(req, body, "application/json")
	start := time.Now()
	_, err := w.compiled.attrs[0].prog.Run(env)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "expression cost budget exceeded") {
		t.Fatalf("Run = %v after %v, want the budget error", err, took)
	}
	// About 500,000 comparisons (30 ms; 27 s without the budget, which
	// would then succeed): the error is the proof, the time only logged.
	t.Logf("evaluation stopped after %v", took)
}
