package webhooksink

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sinks"
)

const (
	// swSecret is a Standard Webhooks secret (whsec_ and base64).
	swSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rawSecret = "a raw secret"
)

// verifyStandard checks webhook-signature in h against body as the
// Standard Webhooks spec says, written apart from the sink's signer: it
// reports which of the keys has a valid v1 signature.
func verifyStandard(t *testing.T, h http.Header, body []byte, keys ...[]byte) []bool {
	t.Helper()
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		t.Fatalf("webhook-id %q, webhook-timestamp %q", id, ts)
	}
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	ok := make([]bool, len(keys))
	for i, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		for _, s := range sigs {
			ok[i] = ok[i] || s == want
		}
	}
	return ok
}

func swKey(t *testing.T) []byte {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(swSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSign: with sign, each request has webhook-id (the same for every
// attempt of a delivery, another for another route), webhook-timestamp
// (now, in Unix seconds) and one v1 signature per secret over
// id.timestamp.body, in binary and structured mode and for batches; the
// attempt's trace context goes in traceparent and tracestate.
func TestSign(t *testing.T) {
	for _, format := range []string{FormatBinary, FormatStructured} {
		t.Run(format, func(t *testing.T) {
			rec := newRecorder(t, "", nil)
			c := cfgFor(rec.srv.URL)
			c.Format = format
			c.Sign = &Sign{Secrets: []string{swSecret, rawSecret}}
			w := build(t, c)
			e := testEvent(t)
			tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			attempt := func(route string) context.Context {
				return sinks.WithAttempt(context.Background(), &sinks.Attempt{Route: route, Sink: "hook", TraceParent: tp, TraceState: "v=1"})
			}
			before := time.Now().Unix()
			for _, route := range []string{"r1", "r1", "r2"} {
				if err := w.Deliver(attempt(route), e); err != nil {
					t.Fatal(err)
				}
			}
			after := time.Now().Unix()
			rec.mu.Lock()
			reqs := append([]received(nil), rec.reqs...)
			rec.mu.Unlock()
			ids := map[string]int{}
			for _, r := range reqs {
				ok := verifyStandard(t, r.header, r.body, swKey(t), []byte(rawSecret))
				if !ok[0] || !ok[1] {
					t.Errorf("signatures %q: valid per secret %v", r.header.Get("webhook-signature"), ok)
				}
				if n := len(strings.Split(r.header.Get("webhook-signature"), " ")); n != 2 {
					t.Errorf("%d signatures, want one per secret", n)
				}
				ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
				if err != nil || ts < before || ts > after {
					t.Errorf("webhook-timestamp %q, want Unix seconds in [%d, %d]", r.header.Get("webhook-timestamp"), before, after)
				}
				if r.header.Get("traceparent") != tp || r.header.Get("tracestate") != "v=1" {
					t.Errorf("traceparent %q, tracestate %q", r.header.Get("traceparent"), r.header.Get("tracestate"))
				}
				ids[r.header.Get("webhook-id")]++
			}
			if len(ids) != 2 {
				t.Fatalf("webhook-ids %v: want one for both attempts on r1, another for r2", ids)
			}
			for id, n := range ids {
				if !strings.HasPrefix(id, "msg_") || n != 2 && n != 1 {
					t.Errorf("webhook-id %q used %d times", id, n)
				}
			}
			// A tampered body does not verify.
			r := reqs[0]
			if ok := verifyStandard(t, r.header, append([]byte("x"), r.body...), swKey(t)); ok[0] {
				t.Error("a changed body verified")
			}
		})
	}
	t.Run("batch", func(t *testing.T) {
		rec := newRecorder(t, "", nil)
		c := cfgFor(rec.srv.URL)
		c.Sign = &Sign{Secrets: []string{swSecret}}
		w := build(t, c)
		e1, e2 := testEvent(t), testEvent(t)
		e2.SetID("evt-2")
		for _, err := range w.DeliverBatch(context.Background(), []*event.Event{e1, e2}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		r := rec.last(t)
		if ok := verifyStandard(t, r.header, r.body, swKey(t)); !ok[0] {
			t.Errorf("batch signature %q does not verify", r.header.Get("webhook-signature"))
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		rec := newRecorder(t, "", nil)
		w := build(t, cfgFor(rec.srv.URL))
		if err := deliver(t, w, testEvent(t)); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "traceparent"} {
			if v := rec.last(t).header.Get(h); v != "" {
				t.Errorf("without sign or attempt: %s: %q", h, v)
			}
		}
	})
}

// verifyScript verifies requests with the standardwebhooks npm package:
// it reads [{secret, raw, headers, body}] on stdin and prints one line per
// request, "ok" or the error.
const verifyScript = `
const { Webhook } = require("standardwebhooks");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  for (const r of JSON.parse(input)) {
    try {
      const wh = r.raw ? new Webhook(r.secret, { format: "raw" }) : new Webhook(r.secret);
      wh.verify(Buffer.from(r.body, "base64").toString("utf8"), r.headers);
      console.log("ok");
    } catch (e) {
      console.log("error: " + e.message);
    }
  }
});
`

// TestSignVerifiedByStandardWebhooksNPM checks the signatures with the
// reference TypeScript library (npm standardwebhooks), installed into a
// temporary directory; skipped only where npm is absent.
func TestSignVerifiedByStandardWebhooksNPM(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: the check against the standardwebhooks npm package is skipped (CI installs npm)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the check against the standardwebhooks npm package is skipped")
	}
	dir := t.TempDir()
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--silent", "standardwebhooks@1.1.1")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install standardwebhooks: %v\n%s", err, out)
	}
	script := filepath.Join(dir, "verify.js")
	if err := os.WriteFile(script, []byte(verifyScript), 0o644); err != nil {
		t.Fatal(err)
	}

	rec := newRecorder(t, "", nil)
	c := cfgFor(rec.srv.URL)
	c.Sign = &Sign{Secrets: []string{swSecret, rawSecret}}
	w := build(t, c)
	if err := deliver(t, w, testEvent(t)); err != nil {
		t.Fatal(err)
	}
	r := rec.last(t)
	headers := map[string]string{}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		headers[h] = r.header.Get(h)
	}
	type check struct {
		Secret  string            `json:"secret"`
		Raw     bool              `json:"raw"`
		Headers map[string]string `json:"headers"`
		Body    []byte            `json:"body"`
	}
	checks := []check{
		{swSecret, false, headers, r.body},
		{rawSecret, true, headers, r.body},
		{swSecret, false, headers, append(append([]byte(nil), r.body...), ' ')}, // tampered: must fail
	}
	in, _ := json.Marshal(checks)
	cmd := exec.Command(node, script)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node verify.js: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || lines[0] != "ok" || lines[1] != "ok" || !strings.HasPrefix(lines[2], "error") {
		t.Fatalf("standardwebhooks verify: %q, want ok (whsec_ secret), ok (raw secret), an error (tampered body)", lines)
	}
}
