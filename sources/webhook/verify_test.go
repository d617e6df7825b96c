package webhooksource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/sources/sourcetest"
)

// GitHub's documented example
// (docs.github.com, "Validating webhook deliveries").
const (
	githubSecret    = "It's a Secret to Everybody"
	githubPayload   = "Hello, World!"
	githubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestHMACSHA256(t *testing.T) {
	w := build(t, "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: \""+githubSecret+"\"")
	other := build(t, "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: not the secret")
	custom := build(t, "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: \""+githubSecret+"\"\n  header: X-Signature\n  prefix: ''")
	for _, tc := range []struct {
		name    string
		w       *Webhook
		headers map[string]string
		body    string
		reason  string // "" for accepted
	}{
		{"github example", w, map[string]string{"X-Hub-Signature-256": githubSignature}, githubPayload, ""},
		{"upper-case hex", w, map[string]string{"X-Hub-Signature-256": "sha256=" + strings.ToUpper(githubSignature[7:])}, githubPayload, ""},
		{"custom header without prefix", custom, map[string]string{"X-Signature": githubSignature[7:]}, githubPayload, ""},
		{"tampered body", w, map[string]string{"X-Hub-Signature-256": githubSignature}, "Hello, World?", "signature does not match"},
		{"wrong secret", other, map[string]string{"X-Hub-Signature-256": githubSignature}, githubPayload, "signature does not match"},
		{"missing header", w, nil, githubPayload, "missing X-Hub-Signature-256 header"},
		{"sha1 header", w, map[string]string{"X-Hub-Signature-256": "sha1=757107ea0eb2509fc211221cce984b8a37570b6d"}, githubPayload,
			`X-Hub-Signature-256: expected a value starting with "sha256="`},
		{"short", w, map[string]string{"X-Hub-Signature-256": "sha256=757107"}, githubPayload,
			`X-Hub-Signature-256: expected 64 hex digits after "sha256="`},
		{"not hex", w, map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("z", 64)}, githubPayload,
			`X-Hub-Signature-256: expected hex digits after "sha256="`},
		{"custom header missing", custom, map[string]string{"X-Hub-Signature-256": githubSignature}, githubPayload, "missing X-Signature header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkVerify(t, tc.w, tc.headers, tc.body, tc.reason)
		})
	}
}

// The Standard Webhooks example (also in the Svix documentation); the
// signature was checked with openssl:
//
//	printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
//	  openssl dgst -sha256 -mac HMAC -macopt hexkey:$(printf MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256) -binary | base64
const (
	swSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTimestamp = "1614265330"
	swPayload   = `{"test": 2432232314}`
	swSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// signStandard signs with the Standard Webhooks algorithm.
func signStandard(t testing.TB, secret, id, ts, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestStandardWebhooks(t *testing.T) {
	at := func(w *Webhook, unix int64) *Webhook {
		w.now = func() time.Time { return time.Unix(unix, 0) }
		return w
	}
	cfg := "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: " + swSecret
	then, _ := strconv.ParseInt(swTimestamp, 10, 64)
	w := at(build(t, cfg), then)
	raw := at(build(t, "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), then)
	other := at(build(t, "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: whsec_c2VjcmV0"), then)
	tolerant := at(build(t, cfg+"\n  tolerance: 1h"), then+50*60)
	late := at(build(t, cfg), then+5*60+1)
	early := at(build(t, cfg), then-5*60-1)
	edge := at(build(t, cfg), then+5*60)

	headers := func(sig string) map[string]string {
		return map[string]string{"webhook-id": swID, "webhook-timestamp": swTimestamp, "webhook-signature": sig, "Content-Type": "application/json"}
	}
	without := func(key string) map[string]string {
		h := headers(swSignature)
		delete(h, key)
		return h
	}
	if got := signStandard(t, swSecret, swID, swTimestamp, swPayload); got != swSignature {
		t.Fatalf("test signer gives %s, want %s", got, swSignature)
	}
	now := time.Now().Unix()
	fresh := build(t, cfg)
	nowTS := strconv.FormatInt(now, 10)
	freshSig := signStandard(t, swSecret, "msg_2", nowTS, "ping")

	for _, tc := range []struct {
		name    string
		w       *Webhook
		headers map[string]string
		body    string
		reason  string
	}{
		{"spec example", w, headers(swSignature), swPayload, ""},
		{"secret without whsec_", raw, headers(swSignature), swPayload, ""},
		{"several signatures, one good", w, headers("v1,AAAA v1a,xyz v2,abc " + swSignature), swPayload, ""},
		{"within a larger tolerance", tolerant, headers(swSignature), swPayload, ""},
		{"at the tolerance", edge, headers(swSignature), swPayload, ""},
		{"signed now", fresh, map[string]string{"webhook-id": "msg_2", "webhook-timestamp": nowTS, "webhook-signature": freshSig}, "ping", ""},
		{"tampered body", w, headers(swSignature), `{"test": 2432232315}`, "signature does not match"},
		{"tampered id", w, map[string]string{"webhook-id": "msg_other", "webhook-timestamp": swTimestamp, "webhook-signature": swSignature}, swPayload, "signature does not match"},
		{"wrong secret", other, headers(swSignature), swPayload, "signature does not match"},
		{"only bad signatures", w, headers("v1,AAAA v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"), swPayload, "signature does not match"},
		{"old timestamp", late, headers(swSignature), swPayload, "webhook-timestamp: more than 5m0s away from the current time"},
		{"future timestamp", early, headers(swSignature), swPayload, "webhook-timestamp: more than 5m0s away from the current time"},
		{"timestamp not a number", w, map[string]string{"webhook-id": swID, "webhook-timestamp": "2021-02-25", "webhook-signature": swSignature}, swPayload, "webhook-timestamp: expected Unix seconds"},
		{"missing id", w, without("webhook-id"), swPayload, "missing webhook-id header"},
		{"missing timestamp", w, without("webhook-timestamp"), swPayload, "missing webhook-timestamp header"},
		{"missing signature", w, without("webhook-signature"), swPayload, "missing webhook-signature header"},
		{"no v1 signature", w, headers("v1a,abc v2,def"), swPayload, "webhook-signature: no v1 signature"},
		{"signature not base64", w, headers("v1,***"), swPayload, "webhook-signature: no v1 signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.w.replay != nil {
				// Each case is a first delivery (see TestReplay).
				tc.w.replay = newReplayGuard(tc.w.replay.tolerance, MaxReplayIDs, tc.w.log)
			}
			e := checkVerify(t, tc.w, tc.headers, tc.body, tc.reason)
			if e != nil && e.ID() != tc.headers["webhook-id"] {
				t.Errorf("id %q, want the webhook-id %q", e.ID(), tc.headers["webhook-id"])
			}
		})
	}
}

// checkVerify sends one request and checks that it is accepted (reason "")
// or refused with 401 and reason, nothing ingested.
func checkVerify(t *testing.T, w *Webhook, headers map[string]string, body, reason string) (e interface {
	ID() string
}) {
	t.Helper()
	rec := &sourcetest.Recorder{}
	srv := serve(t, w, rec)
	resp := send(t, srv, request{path: "/h", headers: headers, body: body})
	if reason == "" {
		if resp.status != http.StatusAccepted {
			t.Fatalf("answer %d %q, want 202", resp.status, resp.body)
		}
		return rec.Last()
	}
	if resp.status != http.StatusUnauthorized || resp.body != reason+"\n" {
		t.Fatalf("answer %d %q, want 401 %q", resp.status, resp.body, reason)
	}
	if rec.Last() != nil || rec.Rejections("unauthorized") != 1 {
		t.Errorf("events %d, rejected %v; want none and one unauthorized", rec.Count(), rec.Reasons())
	}
	return nil
}

func TestMatchV1(t *testing.T) {
	want := make([]byte, 32)
	for i := range want {
		want[i] = byte(i)
	}
	good := "v1," + base64.StdEncoding.EncodeToString(want)
	for _, tc := range []struct {
		header    string
		found, ok bool
	}{
		{good, true, true},
		{"v1,AAAA " + good, true, true},
		{good + " v1,AAAA", true, true},
		{"  " + good + "  ", true, true},
		{"v1,AAAA", true, false},
		{"", false, false},
		{"v1,", false, false},
		{"v1a," + base64.StdEncoding.EncodeToString(want), false, false},
		{"v1," + strings.Repeat("A", 200), false, false},
		{"v1," + base64.RawStdEncoding.EncodeToString(want), false, false},
	} {
		found, ok := matchV1(tc.header, want)
		if found != tc.found || ok != tc.ok {
			t.Errorf("matchV1(%q) = %v, %v; want %v, %v", tc.header, found, ok, tc.found, tc.ok)
		}
	}
}
