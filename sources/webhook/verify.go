package webhooksource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/text"
)

// Verification schemes.
const (
	// SchemeHMACSHA256 is GitHub's scheme: a header holding a prefix and the
	// hex-encoded HMAC-SHA256 of the raw body.
	SchemeHMACSHA256 = "hmac-sha256"
	// SchemeStandardWebhooks is the Standard Webhooks scheme
	// (https://www.standardwebhooks.com): HMAC-SHA256 of
	// "<webhook-id>.<webhook-timestamp>.<body>", base64-encoded in
	// webhook-signature as "v1,<signature>".
	SchemeStandardWebhooks = "standard-webhooks"
)

// Defaults of Verify.
const (
	DefaultSignatureHeader = "X-Hub-Signature-256"
	DefaultSignaturePrefix = "sha256="
	DefaultTolerance       = 5 * time.Minute
)

// Standard Webhooks headers.
const (
	headerWebhookID        = "Webhook-Id"
	headerWebhookTimestamp = "Webhook-Timestamp"
	headerWebhookSignature = "Webhook-Signature"
)

// Verify configures signature verification.
type Verify struct {
	// Scheme is hmac-sha256 or standard-webhooks; required.
	Scheme string `yaml:"scheme"`
	// Secret is the shared secret; required. For standard-webhooks it is
	// base64, optionally prefixed with "whsec_".
	Secret Secret `yaml:"secret"`
	// Header holds the signature (hmac-sha256 only). Default
	// X-Hub-Signature-256.
	Header string `yaml:"header"`
	// Prefix precedes the hex signature (hmac-sha256 only). Default
	// "sha256="; "" for none.
	Prefix *string `yaml:"prefix"`
	// Tolerance is how far webhook-timestamp may be from now
	// (standard-webhooks only). Default 5m.
	Tolerance time.Duration `yaml:"tolerance"`
}

// Secret is a secret string that does not print itself.
type Secret string

// String implements fmt.Stringer without revealing the secret.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing the secret.
func (Secret) GoString() string { return `"[redacted]"` }

// LogValue implements slog.LogValuer without revealing the secret.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

func (v *Verify) validate(path string) error {
	var errs []error
	switch v.Scheme {
	case SchemeHMACSHA256:
		if v.Tolerance != 0 {
			errs = append(errs, config.FieldErrorf(path+".tolerance", "only for scheme %s", SchemeStandardWebhooks))
		}
		if v.Header != "" && !text.IsToken(v.Header) {
			errs = append(errs, config.FieldErrorf(path+".header", "%q is not a valid header name", v.Header))
		}
	case SchemeStandardWebhooks:
		if v.Header != "" {
			errs = append(errs, config.FieldErrorf(path+".header", "only for scheme %s (standard-webhooks uses webhook-signature)", SchemeHMACSHA256))
		}
		if v.Prefix != nil {
			errs = append(errs, config.FieldErrorf(path+".prefix", "only for scheme %s", SchemeHMACSHA256))
		}
		if v.Tolerance < 0 {
			errs = append(errs, config.FieldErrorf(path+".tolerance", "must be positive"))
		}
		if v.Secret != "" {
			if _, err := standardSecret(v.Secret); err != nil {
				errs = append(errs, config.FieldErrorf(path+".secret", "%v", err))
			}
		}
	case "":
		errs = append(errs, config.FieldErrorf(path+".scheme", "required (%s or %s)", SchemeHMACSHA256, SchemeStandardWebhooks))
	default:
		msg := fmt.Sprintf("must be %s or %s, not %q", SchemeHMACSHA256, SchemeStandardWebhooks, v.Scheme)
		if s := config.Suggest(v.Scheme, []string{SchemeHMACSHA256, SchemeStandardWebhooks}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		errs = append(errs, config.FieldErrorf(path+".scheme", "%s", msg))
	}
	if v.Secret == "" {
		errs = append(errs, config.FieldErrorf(path+".secret", "required"))
	}
	return errors.Join(errs...)
}

// standardSecret decodes a Standard Webhooks secret.
func standardSecret(s Secret) ([]byte, error) {
	str := strings.TrimPrefix(string(s), "whsec_")
	b, err := base64.StdEncoding.DecodeString(str)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(str)
	}
	if err != nil || len(b) == 0 {
		return nil, errors.New("must be base64, optionally prefixed with whsec_")
	}
	return b, nil
}

func (v *Verify) build() (verifier, error) {
	if err := v.validate("verify"); err != nil {
		return nil, err
	}
	switch v.Scheme {
	case SchemeHMACSHA256:
		h := &hmacVerifier{secret: []byte(v.Secret), header: v.Header, prefix: DefaultSignaturePrefix}
		if h.header == "" {
			h.header = DefaultSignatureHeader
		}
		h.key = http.CanonicalHeaderKey(h.header)
		if v.Prefix != nil {
			h.prefix = *v.Prefix
		}
		return h, nil
	default:
		key, err := standardSecret(v.Secret)
		if err != nil {
			return nil, err
		}
		s := &standardVerifier{secret: key, tolerance: v.Tolerance}
		if s.tolerance == 0 {
			s.tolerance = DefaultTolerance
		}
		return s, nil
	}
}

// verifier checks the signature of a request. Its errors are one-line
// reasons for the client.
type verifier interface {
	verify(h http.Header, body []byte, now time.Time) (signedMessage, error)
}

// signedMessage is what a verified request says of itself: its Standard
// Webhooks webhook-id and webhook-timestamp (zero for hmac-sha256, which
// has neither).
type signedMessage struct {
	id string
	ts time.Time
}

var errNoMatch = errors.New("signature does not match")

type hmacVerifier struct {
	secret []byte
	header string // as configured, for messages
	key    string // canonical
	prefix string
}

func (v *hmacVerifier) verify(h http.Header, body []byte, _ time.Time) (signedMessage, error) {
	vals := h[v.key]
	if len(vals) == 0 || vals[0] == "" {
		return signedMessage{}, fmt.Errorf("missing %s header", v.header)
	}
	got, err := parseHexSignature(vals[0], v.prefix)
	if err != nil {
		return signedMessage{}, fmt.Errorf("%s: %w", v.header, err)
	}
	mac := hmac.New(sha256.New, v.secret)
	mac.Write(body)
	var sum [sha256.Size]byte
	if !hmac.Equal(mac.Sum(sum[:0]), got[:]) {
		return signedMessage{}, errNoMatch
	}
	return signedMessage{}, nil
}

// parseHexSignature reads "<prefix><64 hex digits>".
func parseHexSignature(s, prefix string) ([sha256.Size]byte, error) {
	var sig [sha256.Size]byte
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, prefix) {
		return sig, fmt.Errorf("expected a value starting with %q", prefix)
	}
	s = s[len(prefix):]
	if len(s) != hex.EncodedLen(sha256.Size) {
		return sig, fmt.Errorf("expected %d hex digits after %q", hex.EncodedLen(sha256.Size), prefix)
	}
	var src [2 * sha256.Size]byte
	copy(src[:], s)
	if _, err := hex.Decode(sig[:], src[:]); err != nil {
		return sig, fmt.Errorf("expected hex digits after %q", prefix)
	}
	return sig, nil
}

type standardVerifier struct {
	secret    []byte
	tolerance time.Duration
}

// verify checks the signature and the timestamp. A replay of a message
// within the tolerance passes: the handler's replayGuard stops it.
func (v *standardVerifier) verify(h http.Header, body []byte, now time.Time) (signedMessage, error) {
	id, ts, sigs := first(h, headerWebhookID), first(h, headerWebhookTimestamp), first(h, headerWebhookSignature)
	switch {
	case id == "":
		return signedMessage{}, errors.New("missing webhook-id header")
	case ts == "":
		return signedMessage{}, errors.New("missing webhook-timestamp header")
	case sigs == "":
		return signedMessage{}, errors.New("missing webhook-signature header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return signedMessage{}, errors.New("webhook-timestamp: expected Unix seconds")
	}
	at := time.Unix(sec, 0)
	if d := now.Sub(at); d > v.tolerance || d < -v.tolerance {
		return signedMessage{}, fmt.Errorf("webhook-timestamp: more than %s away from the current time", v.tolerance)
	}
	mac := hmac.New(sha256.New, v.secret)
	signedContent(mac, id, ts, body)
	var sum [sha256.Size]byte
	want := mac.Sum(sum[:0])
	found, ok := matchV1(sigs, want)
	switch {
	case ok:
		return signedMessage{id: id, ts: at}, nil
	case !found:
		return signedMessage{}, errors.New("webhook-signature: no v1 signature")
	}
	return signedMessage{}, errNoMatch
}

func signedContent(mac hash.Hash, id, ts string, body []byte) {
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
}

func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// matchV1 looks through a webhook-signature value, space-separated
// "v1,<base64>" entries, for one equal to want. found reports whether there
// was any well-formed v1 entry.
func matchV1(header string, want []byte) (found, ok bool) {
	// A SHA-256 signature is 44 base64 characters; allow up to 88 so that
	// longer (other) signatures are still read, without allocating.
	var src [88]byte
	var buf [66]byte
	for header != "" {
		var entry string
		entry, header, _ = strings.Cut(header, " ")
		sig, isV1 := strings.CutPrefix(entry, "v1,")
		if !isV1 || sig == "" || len(sig) > len(src) {
			continue
		}
		m := copy(src[:], sig)
		n, err := base64.StdEncoding.Decode(buf[:], src[:m])
		if err != nil {
			continue
		}
		found = true
		if hmac.Equal(buf[:n], want) {
			ok = true // keep looking at the rest: same work for any position
		}
	}
	return found, ok
}
