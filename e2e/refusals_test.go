package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
)

// TestRefusalsLogged: a refused ingress request is logged at debug level
// with its reason, status and path (never its body), and repeated
// refusals are rate-limited to one line per reason per 10 s.
func TestRefusalsLogged(t *testing.T) {
	j := start(t, hookConfig(newSink(t, ok).url, ""))
	const marker = "body-marker-7f3a"
	malformed := `{"specversion": "1.0", "id": "` + marker
	if status, _ := post(t, j.ingest+"/events", "application/cloudevents+json", nil, malformed); status != http.StatusBadRequest {
		t.Fatalf("malformed event: %d, want 400", status)
	}
	refused := func(reason string) []string {
		var out []string
		for _, l := range strings.Split(j.stderr.String(), "\n") {
			if strings.Contains(l, `msg="ingress request refused" source=events reason=`+reason+` `) {
				out = append(out, l)
			}
		}
		return out
	}
	plugintest.Eventually(t, 10*time.Second, "the refusal logged", func() bool { return len(refused("malformed")) == 1 })
	l := refused("malformed")[0]
	for _, want := range []string{"level=DEBUG", " status=400 ", " path=/events ", ` detail="malformed JSON`, " count=1"} {
		if !strings.Contains(l, want) {
			t.Errorf("logged %s\nwant %q in it", l, want)
		}
	}

	began := time.Now()
	for range 100 {
		if status, _ := post(t, j.ingest+"/events", "application/cloudevents+json", nil, malformed); status != http.StatusBadRequest {
			t.Fatalf("malformed event: %d, want 400", status)
		}
	}
	// Another reason has a line of its own.
	req, _ := http.NewRequest(http.MethodDelete, j.ingest+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d, want 405", resp.StatusCode)
	}
	plugintest.Eventually(t, 10*time.Second, "the 405 logged", func() bool { return len(refused("method_not_allowed")) == 1 })
	// One line per 10 s at most: the 100 requests took some windows.
	if n, most := len(refused("malformed")), 1+int(time.Since(began)/(10*time.Second))+1; n > most {
		t.Errorf("%d lines for 101 malformed requests in %v, want at most %d", n, time.Since(began), most)
	}
	if strings.Contains(j.stderr.String(), marker) {
		t.Error("the log holds the request body")
	}
}

// TestWebhookRefusalLogged: a webhook request with a bad signature is
// logged by the router (reason unauthorized, 401, its path), without the
// secret or the signature sent.
func TestWebhookRefusalLogged(t *testing.T) {
	j := start(t, configHead+`sources:
  - name: gh
    type: webhook
    path: /hooks/github
    verify: {scheme: hmac-sha256, secret: s3cret-value-9c1}
log: {level: debug}
sinks:
  - {name: hook, type: webhook, url: "`+newSink(t, ok).url+`"}
routes:
  - {name: r, to: [hook]}
`)
	const sig = "sha256=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	status, _ := post(t, j.ingest+"/hooks/github", "application/json", map[string]string{"X-Hub-Signature-256": sig}, `{"zen":"x"}`)
	if status != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d, want 401", status)
	}
	line := func() string {
		for _, l := range strings.Split(j.stderr.String(), "\n") {
			if strings.Contains(l, `msg="ingress request refused" source=gh reason=unauthorized status=401 path=/hooks/github `) {
				return l
			}
		}
		return ""
	}
	plugintest.Eventually(t, 10*time.Second, "the refusal logged", func() bool { return line() != "" })
	for _, secret := range []string{"s3cret-value-9c1", sig[7:]} {
		if strings.Contains(j.stderr.String(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}
