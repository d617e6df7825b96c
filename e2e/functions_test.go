package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/lambdatest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// fnOffline starts serverless-offline in examples/webhook-function on free
// loopback ports for the test and returns its Lambda endpoint, or the one
// in JUNCTION_TEST_LAMBDA_ENDPOINT. Outside CI the test is skipped when it
// cannot be started. It puts test credentials in the environment, which
// the junction processes of the test inherit.
func fnOffline(t *testing.T) string {
	t.Helper()
	if v := lambdatest.Env(t); v != "" {
		return v
	}
	srv, err := lambdatest.Start("..", "../examples/webhook-function")
	if errors.Is(err, lambdatest.ErrCannotRun) {
		lambdatest.Skip(t, err.Error())
	}
	if err != nil {
		t.Fatalf("serverless-offline: %v", err)
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("serverless-offline output:\n%s", srv.Output())
		}
	})
	return srv.Endpoint
}

// fnGitHub posts a GitHub-style webhook delivery signed with secret.
func fnGitHub(t *testing.T, url, secret, kind, delivery, body string) (int, string) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return post(t, url, "application/json", map[string]string{
		"X-GitHub-Event":      kind,
		"X-GitHub-Delivery":   delivery,
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
	}, body)
}

const fnPushBody = `{"ref":"refs/heads/main","forced":false,"repository":{"full_name":"octo/hello"},"commits":[{"id":"c1","message":"fix: the bug"},{"id":"c2","message":"docs"}]}`

func fnHops(e event.Event) int32 {
	v, ok := e.Extensions()["junctionhops"]
	if !ok {
		return 0
	}
	n, _ := types.ToInteger(v)
	return n
}

// TestFunctionsWebhookLambdaReply runs examples/webhook-function: a signed
// GitHub push → the lambda sink (serverless-offline) → its reply, routed
// from the source named after the sink, to a webhook and the console.
func TestFunctionsWebhookLambdaReply(t *testing.T) {
	endpoint := fnOffline(t)
	labels := newSink(t, nil)
	j := startFile(t, "../examples/webhook-function/junction.yaml",
		"LAMBDA_ENDPOINT="+endpoint, "LABELS_URL="+labels.url, "GITHUB_WEBHOOK_SECRET=s3cret")
	hook := j.ingest + "/hooks/github"

	if code, body := fnGitHub(t, hook, "wrong", "push", "d-0", fnPushBody); code != http.StatusUnauthorized {
		t.Errorf("wrong signature: %d %s, want 401", code, body)
	}
	if code, body := fnGitHub(t, hook, "s3cret", "issues", "d-issue", `{"action":"opened"}`); code != http.StatusAccepted {
		t.Fatalf("issues event: %d %s", code, body)
	}
	if code, body := fnGitHub(t, hook, "s3cret", "push", "d-1", fnPushBody); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	plugintest.Eventually(t, 20*time.Second, "the labelled push at the webhook", func() bool { return labels.count() >= 1 })
	r := labels.received()[0]
	if r.ID() != "d-1-labelled" || r.Source() != "/functions/label-push" || r.Type() != "com.example.push.labelled" || r.Subject() != "octo/hello" {
		t.Errorf("reply at the webhook: %s", r)
	}
	if h := fnHops(r); h != 1 {
		t.Errorf("junctionhops = %d, want 1", h)
	}
	var data struct {
		Repository string   `json:"repository"`
		Commits    int      `json:"commits"`
		Labels     []string `json:"labels"`
		Trigger    struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"trigger"`
	}
	if err := json.Unmarshal(r.Data(), &data); err != nil {
		t.Fatalf("reply data %s: %v", r.Data(), err)
	}
	if data.Repository != "octo/hello" || data.Commits != 2 || strings.Join(data.Labels, ",") != "default-branch,bugfix" ||
		data.Trigger.ID != "d-1" || data.Trigger.Type != "com.github.push" {
		t.Errorf("reply data: %+v", data)
	}
	plugintest.Eventually(t, 5*time.Second, "the labelled push on the console", func() bool {
		return consoleLine(j.stdout.String(), "id", "d-1-labelled", "source", "/functions/label-push") != nil
	})
	// Only the push reached the function: one reply in all.
	time.Sleep(300 * time.Millisecond) // let a wrong second reply show up
	if n := labels.count(); n != 1 {
		t.Errorf("the webhook got %d events, want 1", n)
	}
	if n := j.metric("junction_deliveries_total", `sink="label-push"`, `outcome="delivered"`); n != 1 {
		t.Errorf("deliveries to label-push = %v, want 1", n)
	}
}

// TestFunctionsLambdaFailureDeadLetters runs the example with a function
// that throws: the push is retried, then dead-lettered on stderr with the
// handler's error.
func TestFunctionsLambdaFailureDeadLetters(t *testing.T) {
	endpoint := fnOffline(t)
	labels := newSink(t, nil)
	j := startFile(t, "../examples/webhook-function/junction.yaml",
		"LAMBDA_ENDPOINT="+endpoint, "LABELS_URL="+labels.url, "GITHUB_WEBHOOK_SECRET=s3cret",
		"LAMBDA_FUNCTION=webhook-function-dev-boom")
	if code, body := fnGitHub(t, j.ingest+"/hooks/github", "s3cret", "push", "d-boom", fnPushBody); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	var dl map[string]any
	plugintest.Eventually(t, 30*time.Second, "the dead letter on stderr", func() bool {
		dl = consoleLine(j.stderr.String(), "id", "d-boom")
		return dl != nil
	})
	if dl["junctionsink"] != "label-push" || fmt.Sprint(dl["junctionattempts"]) != "4" ||
		!strings.Contains(fmt.Sprint(dl["junctionerror"]), "function error Unhandled: Error: boom: the handler failed") {
		t.Errorf("dead letter: %v", dl)
	}
	if n := labels.count(); n != 0 {
		t.Errorf("the webhook got %d events, want none", n)
	}
}

// fnEnricher is an HTTP function: it answers each event with a binary-mode
// CloudEvent of type reply (or 202 without one when reply is empty).
type fnEnricher struct {
	srv   *httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	got   []*event.Event
}

func newFnEnricher(t *testing.T, reply string) *fnEnricher {
	f := &fnEnricher{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := f.calls.Add(1)
		f.mu.Lock()
		f.got = append(f.got, e)
		f.mu.Unlock()
		if reply == "" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		h := w.Header()
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Id", fmt.Sprintf("%s-r%d", e.ID(), n))
		h.Set("Ce-Source", "/functions/enrich")
		h.Set("Ce-Type", reply)
		h.Set("Ce-Subject", "order%20o-1")
		h.Set("Content-Type", "application/json")
		io.WriteString(w, `{"orderId":"o-1","total":250,"tier":"gold"}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// TestFunctionsHTTPChain: an event → the function sink → its reply, routed
// from the source named after the sink, to a webhook.
func TestFunctionsHTTPChain(t *testing.T) {
	fn := newFnEnricher(t, "com.example.order.enriched")
	billing := newSink(t, nil)
	j := start(t, httpSource+fmt.Sprintf(`sinks:
  - name: enrich
    type: function
    url: %s/fn
  - name: billing
    type: webhook
    url: %s
routes:
  - name: orders
    sources: [events]
    filter: type == "com.example.order.created"
    to: [enrich]
  - name: enriched
    sources: [enrich]
    filter: type == "com.example.order.enriched"
    to: [billing]
`, fn.srv.URL, billing.url))
	if code := binaryEvent(t, j.ingest+"/events", "o-1", "com.example.order.created", `{"orderId":"o-1","amount":250}`); code != http.StatusAccepted {
		t.Fatalf("POST: %d", code)
	}
	plugintest.Eventually(t, 10*time.Second, "the enriched order at billing", func() bool { return billing.count() == 1 })
	r := billing.received()[0]
	if r.ID() != "o-1-r1" || r.Source() != "/functions/enrich" || r.Type() != "com.example.order.enriched" ||
		r.Subject() != "order o-1" || string(r.Data()) != `{"orderId":"o-1","total":250,"tier":"gold"}` || fnHops(r) != 1 {
		t.Errorf("billing got %s", r)
	}
	if n := fn.calls.Load(); n != 1 {
		t.Errorf("the function was called %d times, want 1", n)
	}
}

// TestFunctionsHopLimit: a function whose replies are routed back to it
// stops at the sink's maxHops; the reply past the limit is dead-lettered.
func TestFunctionsHopLimit(t *testing.T) {
	fn := newFnEnricher(t, "com.example.loop")
	dead := newSink(t, nil)
	j := start(t, httpSource+fmt.Sprintf(`sinks:
  - name: loop
    type: function
    url: %s/fn
    maxHops: 3
    delivery:
      deadLetter: dead
  - name: dead
    type: webhook
    url: %s
routes:
  - name: start
    sources: [events]
    to: [loop]
  - name: again
    sources: [loop]
    to: [loop]
`, fn.srv.URL, dead.url))
	if code := binaryEvent(t, j.ingest+"/events", "l-1", "com.example.start", `{}`); code != http.StatusAccepted {
		t.Fatalf("POST: %d", code)
	}
	plugintest.Eventually(t, 10*time.Second, "the dead-lettered reply", func() bool { return dead.count() == 1 })
	dl := dead.received()[0]
	if fnHops(dl) != 4 || dl.Type() != "com.example.loop" || !strings.Contains(fmt.Sprint(dl.Extensions()["junctionerror"]), "hop limit of 3 reached") {
		t.Errorf("dead letter: %s", dl)
	}
	time.Sleep(300 * time.Millisecond) // let a call past the limit show up
	if n := fn.calls.Load(); n != 4 {
		t.Errorf("the function was called %d times, want 4 (the event and 3 replies)", n)
	}
}
