package functionsink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sinks"
)

// TestSign: a function sink with sign signs its requests as the Standard
// Webhooks spec says (checked here with its own HMAC), with the same
// webhook-id for every attempt of a delivery, and passes the attempt's
// trace context in traceparent; the reply is read as without signing.
func TestSign(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, _ := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
	var mu sync.Mutex
	var ids []string
	srv := newFn(t, false, func(w http.ResponseWriter, r *http.Request, e *event.Event) {
		binaryReply(http.StatusOK)(w, r, e)
	})
	// The recorder parsed the event; check the raw request in a wrapper.
	inner := srv.srv.Config.Handler
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "."))
		mac.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if got := r.Header.Get("webhook-signature"); got != want {
			t.Errorf("webhook-signature %q, want %q", got, want)
		}
		if got := r.Header.Get("traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
			t.Errorf("traceparent %q", got)
		}
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	})
	f := build(t, srv.srv.URL, func(c *Config) { c.Sign = &Sign{Secrets: []string{secret}} })
	ctx := sinks.WithAttempt(context.Background(), &sinks.Attempt{Route: "enrich", Sink: "fn",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	for range 2 {
		reply, err := f.DeliverReply(ctx, order(t))
		if err != nil || reply == nil || reply.Type() != "com.example.order.enriched" {
			t.Fatalf("reply %v, %v", reply, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != ids[1] || ids[0] == "" {
		t.Fatalf("webhook-ids %q: want the same id on both attempts", ids)
	}
}
