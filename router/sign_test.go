package router

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/junctionhq/junction/sources/webhook" // verifies what the sink signs
)

// TestSignedWebhookVerified: a webhook sink with sign posts, through a
// proxy that answers the first request 503, to Junction's own webhook
// source with verify: standard-webhooks. The source knows only the second
// of the sink's two secrets (a rotation): the event gets through once, on
// the retry, which has the first attempt's webhook-id.
func TestSignedWebhookVerified(t *testing.T) {
	const oldSecret, newSecret = "whsec_c2VjcmV0LW9uZS1zZWNyZXQtb25lLXNlY3JldA==", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var target atomic.Pointer[httputil.ReverseProxy]
	var mu sync.Mutex
	var ids []string
	var calls atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		ids = append(ids, req.Header.Get("webhook-id"))
		mu.Unlock()
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		target.Load().ServeHTTP(w, req)
	}))
	defer proxy.Close()
	p := compile(t, fmt.Sprintf(`
sources:
  - {name: events, type: http, path: /events}
  - name: signed
    type: webhook
    path: /hooks/signed
    verify: {scheme: standard-webhooks, secret: %s}
    attributes: {id: 'headers["ce-id"]', type: 'headers["ce-type"]', source: 'headers["ce-source"]'}
sinks:
  - name: partner
    type: webhook
    url: %s/hooks/signed
    sign:
      secrets: [%s, %s]
  - {name: signed-out, type: test-recorder}
routes:
  - {name: outbound, sources: [events], to: [partner], delivery: {retry: 3, backoffDelay: 10ms, onExhausted: drop}}
  - {name: inbound, sources: [signed], to: [signed-out]}
`, newSecret, proxy.URL, oldSecret, newSecret))
	r := startRouter(t, p)
	u, _ := url.Parse("http://" + r.IngressAddr())
	target.Store(httputil.NewSingleHostReverseProxy(u))
	post(t, r, `{"specversion":"1.0","id":"s1","source":"/shop","type":"order"}`, nil)
	out := recorderNamed("signed-out")
	eventually(t, 10*time.Second, "the verified event", func() bool { return len(out.got()) == 1 })
	if e := out.got()[0]; e.ID() != "s1" || e.Type() != "order" || e.Source() != "/shop" {
		t.Errorf("verified event %v", e)
	}
	if got := value(r.metrics.Rejected.WithLabelValues("signed", "unauthorized")); got != 0 {
		t.Errorf("%v requests refused as unauthorized", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != ids[1] || ids[0] == "" {
		t.Errorf("webhook-ids %q: want the same on both attempts", ids)
	}
}
