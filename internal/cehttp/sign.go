package cehttp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/junctionhq/junction/config"
)

// Sign configures Standard Webhooks signatures on outgoing requests (the
// key "sign" of the webhook and function sinks).
type Sign struct {
	// Secrets sign each request: one signature per secret, so that a
	// receiver can move to a new secret while the old one still verifies.
	// A secret is "whsec_" followed by base64 (the Standard Webhooks form;
	// the key is the decoded bytes), or else used as it is (raw bytes).
	Secrets []string `yaml:"secrets"`
}

// Standard Webhooks header names, as http.Header keys.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// secretPrefix marks a base64 secret in the Standard Webhooks form.
const secretPrefix = "whsec_"

// ValidateSign checks the key "sign" (nil: no signing). Secrets are never
// echoed.
func ValidateSign(s *Sign) []error {
	if s == nil {
		return nil
	}
	if len(s.Secrets) == 0 {
		return []error{config.FieldErrorf("sign.secrets", "at least one secret is required")}
	}
	var errs []error
	for i, sec := range s.Secrets {
		if _, err := signingKey(sec); err != nil {
			errs = append(errs, config.FieldErrorf(fmt.Sprintf("sign.secrets[%d]", i), "%v", err))
		}
	}
	return errs
}

// signingKey is the HMAC key of a configured secret.
func signingKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, fmt.Errorf("empty secret (is its environment variable set?)")
	}
	b64, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("a secret starting with %s must continue in base64", secretPrefix)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("empty secret after %s", secretPrefix)
	}
	return key, nil
}

// Signer adds Standard Webhooks headers (https://www.standardwebhooks.com)
// to requests: webhook-id, webhook-timestamp (Unix seconds) and
// webhook-signature, "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per
// secret, separated by spaces. It is safe for concurrent use.
type Signer struct {
	macs []sync.Pool
}

// NewSigner makes the Signer of s (validated by ValidateSign).
func NewSigner(s *Sign) (*Signer, error) {
	sg := &Signer{macs: make([]sync.Pool, len(s.Secrets))}
	for i, sec := range s.Secrets {
		key, err := signingKey(sec)
		if err != nil {
			return nil, fmt.Errorf("sign.secrets[%d]: %w", i, err)
		}
		sg.macs[i].New = func() any { return hmac.New(sha256.New, key) }
	}
	return sg, nil
}

// SetHeaders signs body as the message id sent at t, into h.
func (sg *Signer) SetHeaders(h http.Header, id string, t time.Time, body []byte) {
	ts := strconv.FormatInt(t.Unix(), 10)
	sig := make([]byte, 0, len(sg.macs)*48)
	var sum [sha256.Size]byte
	for i := range sg.macs {
		mac := sg.macs[i].Get().(hash.Hash)
		mac.Reset()
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			sig = append(sig, ' ')
		}
		sig = append(sig, "v1,"...)
		sig = base64.StdEncoding.AppendEncode(sig, mac.Sum(sum[:0]))
		sg.macs[i].Put(mac)
	}
	h[HeaderWebhookID] = []string{id}
	h[HeaderWebhookTimestamp] = []string{ts}
	h[HeaderWebhookSignature] = []string{string(sig)}
}
