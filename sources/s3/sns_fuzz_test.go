package s3source

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// offline is a transport that refuses every request: fuzzed messages may
// name SubscribeURLs and SigningCertURLs on amazonaws.com, which must not
// be fetched.
type offline struct{}

func (offline) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("offline")
}

// FuzzSNS posts arbitrary bodies to an SNS subscription endpoint, with
// signature verification on and off. It never panics or reaches the
// network; a refusal is one bounded line; what is ingested validates; and
// with verification on nothing is ingested or confirmed, since no message
// can carry a signature it trusts.
func FuzzSNS(f *testing.F) {
	for _, typ := range []string{snsNotification, snsSubscribe, snsUnsubscribe, "Other"} {
		m := snsMessage{
			Type: typ, MessageID: "1", TopicArn: testTopic, Message: awsPut, Timestamp: "2024-05-01T12:34:57.001Z",
			SignatureVersion: "2", Signature: "AAAA", SigningCertURL: "https://sns.us-east-1.amazonaws.com/cert.pem",
			SubscribeURL: "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x", Token: "x",
		}
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, typ, false)
		f.Add(b, typ, true)
	}
	f.Add([]byte(`{"Type":"Notification","TopicArn":"`+testTopic+`","Message":"{\"Records\":[{}]}"}`), "", true)
	f.Add([]byte(`{"Type":1}`), "", true)
	f.Add([]byte("\xff"), "Notification", false)

	verified := buildEndpoint(f, "path: /s3/sns\ntopics: ["+testTopic+"]", nil)
	unverified := buildEndpoint(f, "path: /s3/sns\ntopics: ["+testTopic+"]\nverifySignatures: false", nil)
	for _, e := range []*Endpoint{verified, unverified} {
		e.client = &http.Client{Transport: offline{}}
	}
	f.Fuzz(func(t *testing.T, body []byte, typeHeader string, verify bool) {
		e := unverified
		if verify {
			e = verified
		}
		rec := &sourcetest.Recorder{}
		r := httptest.NewRequest(http.MethodPost, "/s3/sns", bytes.NewReader(body))
		if typeHeader != "" {
			r.Header[snsTypeHeader] = []string{typeHeader}
		}
		w := httptest.NewRecorder()
		e.Handler(rec).ServeHTTP(w, r)

		switch w.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadGateway:
			if verify {
				t.Fatalf("verified endpoint answered %d %q to an unverifiable message", w.Code, w.Body.String())
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("answer %d %q", w.Code, w.Body.String())
		}
		if w.Code >= 400 {
			if reason := strings.TrimSuffix(w.Body.String(), "\n"); len(reason) > sources.MaxReason || strings.ContainsAny(reason, "\r\n") {
				t.Fatalf("reason not one bounded line: %q", reason)
			}
		}
		events := rec.Events()
		if verify && len(events) > 0 {
			t.Fatalf("verified endpoint ingested %d events from an unverifiable message", len(events))
		}
		if len(events) > 0 && w.Code != http.StatusAccepted {
			t.Fatalf("ingested %d events but answered %d", len(events), w.Code)
		}
		for _, ev := range events {
			if err := ev.Validate(); err != nil {
				t.Fatalf("ingested an invalid event: %v", err)
			}
		}
	})
}

// FuzzTrustAWSURL: a URL trusted for a topic is https on
// sns.<the topic's region>.amazonaws.com, without credentials or a port,
// whatever the URL and ARN.
func FuzzTrustAWSURL(f *testing.F) {
	f.Add("https://sns.us-east-1.amazonaws.com/cert.pem", testTopic)
	f.Add("https://sns.cn-north-1.amazonaws.com.cn/x", "arn:aws-cn:sns:cn-north-1:1:t")
	f.Add("https://sns.us-east-1.amazonaws.com.evil.com/", testTopic)
	f.Add("https://user@sns.us-east-1.amazonaws.com:443/", testTopic)
	f.Add("https://sns..amazonaws.com/", "arn:aws:sns::1:t")
	f.Fuzz(func(t *testing.T, raw, arn string) {
		region := topicRegion(arn)
		if region != "" && region != strings.SplitN(arn, ":", 6)[3] {
			t.Fatalf("topicRegion(%q) = %q", arn, region)
		}
		u, err := url.Parse(raw)
		if err != nil || !trustAWSURL(u, region) {
			return
		}
		host := u.Hostname()
		if u.Scheme != "https" || u.User != nil || u.Port() != "" || region == "" ||
			!(host == "sns."+region+".amazonaws.com" || host == "sns."+region+".amazonaws.com.cn") {
			t.Fatalf("trustAWSURL(%q, %q) = true", raw, region)
		}
	})
}
