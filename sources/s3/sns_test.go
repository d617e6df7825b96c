package s3source

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources/sourcetest"
)

const (
	testTopic  = "arn:aws:sns:us-east-1:123456789012:uploads"
	otherTopic = "arn:aws:sns:us-east-1:123456789012:other"
)

// fakeSNS is a TLS server standing in for sns.<region>.amazonaws.com: it
// serves a self-made signing certificate and records the GETs of
// SubscribeURLs.
type fakeSNS struct {
	srv  *httptest.Server
	key  *rsa.PrivateKey
	mu   sync.Mutex
	gets []string // request URIs of /confirm
	// certGets counts the fetches of the certificate.
	certGets int
	// confirmStatus is the answer to a confirmation GET.
	confirmStatus int
}

func newFakeSNS(t *testing.T) *fakeSNS {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sns.us-east-1.amazonaws.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	f := &fakeSNS{key: key, confirmStatus: http.StatusOK}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.URL.Path {
		case "/cert.pem":
			f.certGets++
			w.Write(certPEM)
		case "/confirm":
			f.gets = append(f.gets, r.URL.RequestURI())
			w.WriteHeader(f.confirmStatus)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSNS) confirmations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.gets...)
}

// trust lets e fetch from the fake SNS server instead of amazonaws.com.
func (f *fakeSNS) trust(e *Endpoint) {
	host := f.srv.Listener.Addr().String()
	e.client = f.srv.Client()
	e.trustURL = func(u *url.URL, region string) bool {
		return u.Scheme == "https" && u.Host == host && region == "us-east-1"
	}
}

// message makes an SNS message of type typ, signed with version (1 or 2;
// "" leaves it unsigned).
func (f *fakeSNS) message(t *testing.T, typ, topic, msg, version string) *snsMessage {
	t.Helper()
	m := &snsMessage{
		Type:           typ,
		MessageID:      "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
		TopicArn:       topic,
		Message:        msg,
		Timestamp:      "2024-05-01T12:34:57.001Z",
		SigningCertURL: f.srv.URL + "/cert.pem",
	}
	if typ != snsNotification {
		m.Token = "2336412f37fb687f5d51e6e2425f004aed"
		m.SubscribeURL = f.srv.URL + "/confirm?Action=ConfirmSubscription&Token=" + m.Token
	} else {
		m.Subject = "Amazon S3 Notification"
	}
	if version != "" {
		f.sign(t, m, version)
	}
	return m
}

func (f *fakeSNS) sign(t *testing.T, m *snsMessage, version string) {
	t.Helper()
	m.SignatureVersion = version
	text, err := m.stringToSign()
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	if version == "1" {
		d := sha1.Sum([]byte(text))
		sig, err = rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256([]byte(text))
		sig, err = rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
}

func post(t *testing.T, srv *httptest.Server, path string, m *snsMessage) response {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, http.MethodPost, srv.URL+path, map[string]string{
		"Content-Type":           "text/plain; charset=UTF-8",
		"X-Amz-Sns-Message-Type": m.Type,
		"X-Amz-Sns-Topic-Arn":    m.TopicArn,
	}, string(b))
}

func TestSNS(t *testing.T) {
	f := newFakeSNS(t)
	logs := &plugintest.LogBuffer{}
	e := buildEndpoint(t, "path: /s3/sns\ntopics: ["+testTopic+"]", logs)
	f.trust(e)
	rec := &sourcetest.Recorder{}
	srv := serve(t, e, rec)

	// A subscription of an allowed topic is confirmed by GETting its
	// SubscribeURL.
	if r := post(t, srv, "/s3/sns", f.message(t, snsSubscribe, testTopic, "You have chosen to subscribe ...", "1")); r.status != http.StatusOK {
		t.Fatalf("confirmation: answer %d %q, want 200", r.status, r.body)
	}
	if got := f.confirmations(); len(got) != 1 || got[0] != "/confirm?Action=ConfirmSubscription&Token=2336412f37fb687f5d51e6e2425f004aed" {
		t.Fatalf("confirmation GETs: %q", got)
	}
	if !strings.Contains(logs.String(), "SNS subscription confirmed") {
		t.Error("the confirmation was not logged")
	}

	// A subscription of another topic is never confirmed.
	if r := post(t, srv, "/s3/sns", f.message(t, snsSubscribe, otherTopic, "x", "1")); r.status != http.StatusForbidden ||
		r.body != `topic "arn:aws:sns:us-east-1:123456789012:other" is not in this source's topics` {
		t.Errorf("other topic: answer %d %q, want 403", r.status, r.body)
	}
	if n := len(f.confirmations()); n != 1 {
		t.Errorf("%d confirmation GETs, want still 1", n)
	}

	// Notifications carry the S3 notification in Message.
	for _, v := range []string{"1", "2"} {
		if r := post(t, srv, "/s3/sns", f.message(t, snsNotification, testTopic, awsPut, v)); r.status != http.StatusAccepted {
			t.Fatalf("notification (SignatureVersion %s): answer %d %q, want 202", v, r.status, r.body)
		}
	}
	if rec.Count() != 2 {
		t.Fatalf("%d events, want 2", rec.Count())
	}
	got := rec.Events()[0]
	if got.Type() != "com.amazonaws.s3.ObjectCreated:Put" || got.Subject() != "incoming/file name.json" || got.Source() != "aws:s3.us-west-2.uploads" {
		t.Errorf("event: type %q subject %q source %q", got.Type(), got.Subject(), got.Source())
	}
	f.mu.Lock()
	certGets := f.certGets
	f.mu.Unlock()
	if certGets != 1 {
		t.Errorf("the certificate was fetched %d times, want once (cached)", certGets)
	}

	// The test event and unsubscribe confirmations are answered 200 and
	// not ingested.
	if r := post(t, srv, "/s3/sns", f.message(t, snsNotification, testTopic, awsTest, "2")); r.status != http.StatusOK {
		t.Errorf("test event: answer %d %q, want 200", r.status, r.body)
	}
	if r := post(t, srv, "/s3/sns", f.message(t, snsUnsubscribe, testTopic, "You have chosen to deactivate ...", "2")); r.status != http.StatusOK {
		t.Errorf("unsubscribe: answer %d %q, want 200", r.status, r.body)
	}
	if rec.Count() != 2 || len(f.confirmations()) != 1 {
		t.Errorf("%d events, %d confirmations: want 2 and 1", rec.Count(), len(f.confirmations()))
	}
}

func TestSNSRefused(t *testing.T) {
	f := newFakeSNS(t)
	e := buildEndpoint(t, "path: /s3/sns\ntopics: ["+testTopic+"]", nil)
	f.trust(e)
	rec := &sourcetest.Recorder{}
	srv := serve(t, e, rec)

	tampered := f.message(t, snsNotification, testTopic, awsPut, "2")
	tampered.Message = strings.Replace(tampered.Message, "incoming/", "outgoing/", 1)
	badVersion := f.message(t, snsNotification, testTopic, awsPut, "2")
	badVersion.SignatureVersion = "3"
	otherHost := f.message(t, snsNotification, testTopic, awsPut, "")
	otherHost.SigningCertURL = "https://evil.example.com/cert.pem"
	f.sign(t, otherHost, "2")
	notBase64 := f.message(t, snsNotification, testTopic, awsPut, "2")
	notBase64.Signature = "%%%"
	unsigned := f.message(t, snsNotification, testTopic, awsPut, "")
	notS3 := f.message(t, snsNotification, testTopic, `{"hello":"world"}`, "2")
	unknown := f.message(t, "Surprise", testTopic, "x", "")
	noTopic := f.message(t, snsNotification, "", awsPut, "")

	cases := []struct {
		name   string
		m      *snsMessage
		header string // X-Amz-Sns-Message-Type, when not m.Type
		status int
		reason string
	}{
		{"tampered", tampered, "", http.StatusUnauthorized, "SNS signature: invalid signature"},
		{"SignatureVersion 3", badVersion, "", http.StatusUnauthorized, `SNS signature: unsupported SignatureVersion "3" (want 1 or 2)`},
		{"certificate elsewhere", otherHost, "", http.StatusUnauthorized, `SNS signature: SigningCertURL "https://evil.example.com/cert.pem" is not an https URL on sns.us-east-1.amazonaws.com`},
		{"signature not base64", notBase64, "", http.StatusUnauthorized, "SNS signature: Signature is not base64"},
		{"unsigned", unsigned, "", http.StatusUnauthorized, `SNS signature: unsupported SignatureVersion "" (want 1 or 2)`},
		{"not an S3 notification", notS3, "", http.StatusBadRequest, "not an S3 event notification: no Records"},
		{"unknown type", unknown, "", http.StatusUnauthorized, `SNS signature: unknown SNS message Type "Surprise"`},
		{"no topic", noTopic, "", http.StatusBadRequest, "not an SNS message: no TopicArn"},
		{"header mismatch", f.message(t, snsNotification, testTopic, awsPut, "2"), snsSubscribe, http.StatusBadRequest,
			`the X-Amz-Sns-Message-Type header "SubscriptionConfirmation" does not match the message's Type "Notification"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(tc.m)
			h := tc.header
			if h == "" {
				h = tc.m.Type
			}
			r := do(t, http.MethodPost, srv.URL+"/s3/sns", map[string]string{"X-Amz-Sns-Message-Type": h}, string(b))
			if r.status != tc.status || r.body != tc.reason {
				t.Errorf("answer %d %q\nwant %d %q", r.status, r.body, tc.status, tc.reason)
			}
		})
	}
	if r := do(t, http.MethodPost, srv.URL+"/s3/sns", nil, "{"); r.status != http.StatusBadRequest ||
		r.body != "not an SNS message: invalid JSON at byte 1: unexpected end of JSON input" {
		t.Errorf("not JSON: answer %d %q", r.status, r.body)
	}
	if r := do(t, http.MethodGet, srv.URL+"/s3/sns", nil, ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: answer %d %q, want 405", r.status, r.body)
	}
	if rec.Count() != 0 {
		t.Errorf("%d events ingested, want none", rec.Count())
	}

	// A SubscribeURL that fails is answered 502.
	f.mu.Lock()
	f.confirmStatus = http.StatusInternalServerError
	f.mu.Unlock()
	if r := post(t, srv, "/s3/sns", f.message(t, snsSubscribe, testTopic, "x", "1")); r.status != http.StatusBadGateway ||
		r.body != "subscription not confirmed: GET SubscribeURL: 500 Internal Server Error" {
		t.Errorf("failed confirmation: answer %d %q, want 502", r.status, r.body)
	}
}

// TestSNSUnverified: with verifySignatures off, unsigned messages are taken,
// but a SubscribeURL must still be on sns.<region>.amazonaws.com.
func TestSNSUnverified(t *testing.T) {
	f := newFakeSNS(t)
	logs := &plugintest.LogBuffer{}
	e := buildEndpoint(t, "path: /s3/sns\ntopics: ["+testTopic+"]\nverifySignatures: false", logs)
	e.client = f.srv.Client() // but the default trustURL
	rec := &sourcetest.Recorder{}
	srv := serve(t, e, rec)
	if !strings.Contains(logs.String(), "SNS signature verification is off") {
		t.Error("no warning about verification being off")
	}
	if r := post(t, srv, "/s3/sns", f.message(t, snsNotification, testTopic, awsPut, "")); r.status != http.StatusAccepted {
		t.Errorf("unsigned notification: answer %d %q, want 202", r.status, r.body)
	}
	r := post(t, srv, "/s3/sns", f.message(t, snsSubscribe, testTopic, "x", ""))
	want := `subscription not confirmed: SubscribeURL "` + f.srv.URL + `/confirm?Action=ConfirmSubscription&Token=2336412f37fb687f5d51e6e2425f004aed" is not an https URL on sns.us-east-1.amazonaws.com`
	if r.status != http.StatusBadGateway || r.body != want {
		t.Errorf("confirmation elsewhere: answer %d %q\nwant 502 %q", r.status, r.body, want)
	}
	if n := len(f.confirmations()); n != 0 {
		t.Errorf("%d GETs of a SubscribeURL not on amazonaws.com", n)
	}
}

func TestTrustAWSURL(t *testing.T) {
	cases := []struct {
		url    string
		region string
		want   bool
	}{
		{"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x", "us-east-1", true},
		{"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem", "cn-north-1", true},
		{"https://sns.us-east-1.amazonaws.com/x", "eu-west-1", false},
		{"http://sns.us-east-1.amazonaws.com/x", "us-east-1", false},
		{"https://sns.us-east-1.amazonaws.com:8443/x", "us-east-1", false},
		{"https://user@sns.us-east-1.amazonaws.com/x", "us-east-1", false},
		{"https://sns.us-east-1.amazonaws.com.evil.com/x", "us-east-1", false},
		{"https://evilsns.us-east-1.amazonaws.com/x", "us-east-1", false},
		{"https://127.0.0.1/x", "us-east-1", false},
	}
	for _, tc := range cases {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := trustAWSURL(u, tc.region); got != tc.want {
			t.Errorf("trustAWSURL(%s, %s) = %v, want %v", tc.url, tc.region, got, tc.want)
		}
	}
}
