package webhooksource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/plugintest"
)

// suiteConfig takes every attribute of the event from an X-Attr-NAME
// header and checks GitHub-style signatures.
const suiteConfig = `path: /hooks/suite
verify:
  scheme: hmac-sha256
  secret: suite-secret
attributes:
  id: headers["x-attr-id"]
  source: headers["x-attr-source"]
  type: headers["x-attr-type"]
  subject: headers["x-attr-subject"]
  time: headers["x-attr-time"]
  dataschema: headers["x-attr-dataschema"]
  tenant: headers["x-attr-tenant"]
  attempt: headers["x-attr-attempt"]
  urgent: headers["x-attr-urgent"]
`

// sign is the X-Hub-Signature-256 value of body.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// postWebhook posts e's data as a plain webhook, its attributes in
// headers, signed with secret.
func postWebhook(t testing.TB, url, secret string, e *event.Event) error {
	h := http.Header{}
	h.Set("Content-Type", e.DataContentType())
	h.Set("X-Attr-Id", e.ID())
	h.Set("X-Attr-Source", e.Source())
	h.Set("X-Attr-Type", e.Type())
	h.Set("X-Attr-Subject", e.Subject())
	h.Set("X-Attr-Time", e.Time().Format(time.RFC3339Nano))
	h.Set("X-Attr-Dataschema", e.DataSchema())
	for _, name := range []string{"tenant", "attempt", "urgent"} {
		v, _ := cetypes.Format(e.Extensions()[name])
		h.Set("X-Attr-"+name, v)
	}
	h.Set("X-Hub-Signature-256", sign(secret, e.Data()))
	return plugintest.Post(t, url, h, e.Data())
}

// TestSuite runs the source conformance suite against the source's
// handler on a real HTTP server; a badly signed request is the malformed
// input.
func TestSuite(t *testing.T) {
	plugintest.RunSourceSuite(t, plugintest.SourceHarness{
		Type: "webhook",
		New: func(t testing.TB) plugintest.SourceTarget {
			return plugintest.SourceTarget{
				Config: suiteConfig,
				Send: func(t testing.TB, url string, e *event.Event) error {
					return postWebhook(t, url, "suite-secret", e)
				},
				SendMalformed: func(t testing.TB, url string) error {
					return postWebhook(t, url, "another-secret", plugintest.SuiteEvent("json"))
				},
			}
		},
	})
}
