package s3source

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/junctionhq/junction/internal/s3event"
	"github.com/junctionhq/junction/sources"
)

// SNS message types (the Type member and the x-amz-sns-message-type
// header).
const (
	snsNotification = "Notification"
	snsSubscribe    = "SubscriptionConfirmation"
	snsUnsubscribe  = "UnsubscribeConfirmation"
	snsTypeHeader   = "X-Amz-Sns-Message-Type"
)

// snsMessage is an SNS message as POSTed to an HTTP(S) subscription.
type snsMessage struct {
	Type             string `json:"Type"`
	MessageID        string `json:"MessageId"`
	Token            string `json:"Token"`
	TopicArn         string `json:"TopicArn"`
	Subject          string `json:"Subject"`
	Message          string `json:"Message"`
	SubscribeURL     string `json:"SubscribeURL"`
	Timestamp        string `json:"Timestamp"`
	SignatureVersion string `json:"SignatureVersion"`
	Signature        string `json:"Signature"`
	SigningCertURL   string `json:"SigningCertURL"`
}

// snsHandler serves an SNS HTTP(S) subscription.
type snsHandler struct {
	e  *Endpoint
	in sources.Ingester
}

func (h *snsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := h.e
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.refuse(w, r, h.in, http.StatusMethodNotAllowed, sources.ReasonMethodNotAllowed, "method "+r.Method+" not allowed (use POST)")
		return
	}
	body, ok := e.readBody(w, r, h.in)
	if !ok {
		return
	}
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		e.refuse(w, r, h.in, http.StatusBadRequest, sources.ReasonMalformed, "not an SNS message: "+s3event.JSONReason(err))
		return
	}
	if ht := r.Header.Get(snsTypeHeader); ht != "" && ht != m.Type {
		e.refuse(w, r, h.in, http.StatusBadRequest, sources.ReasonMalformed, fmt.Sprintf("the %s header %q does not match the message's Type %q", snsTypeHeader, ht, m.Type))
		return
	}
	if m.TopicArn == "" {
		e.refuse(w, r, h.in, http.StatusBadRequest, sources.ReasonMalformed, "not an SNS message: no TopicArn")
		return
	}
	if !e.topics[m.TopicArn] {
		e.refuse(w, r, h.in, http.StatusForbidden, sources.ReasonUnauthorized, fmt.Sprintf("topic %q is not in this source's topics", m.TopicArn))
		return
	}
	region := topicRegion(m.TopicArn)
	if e.verify {
		if err := e.verifySignature(r.Context(), &m, region); err != nil {
			e.refuse(w, r, h.in, http.StatusUnauthorized, sources.ReasonUnauthorized, "SNS signature: "+err.Error())
			return
		}
	}
	switch m.Type {
	case snsNotification:
		e.ingest(w, r, h.in, []byte(m.Message))
	case snsSubscribe:
		if err := e.confirm(r.Context(), m.SubscribeURL, region); err != nil {
			e.subscriptionLog(&m).Warn("SNS subscription not confirmed", "err", err)
			http.Error(w, sources.OneLine("subscription not confirmed: "+err.Error()), http.StatusBadGateway)
			return
		}
		e.subscriptionLog(&m).Info("SNS subscription confirmed")
		w.WriteHeader(http.StatusOK)
	case snsUnsubscribe:
		e.subscriptionLog(&m).Info("SNS subscription ended (UnsubscribeConfirmation)")
		w.WriteHeader(http.StatusOK)
	default:
		e.refuse(w, r, h.in, http.StatusBadRequest, sources.ReasonMalformed, fmt.Sprintf("unknown SNS message Type %q", m.Type))
	}
}

// subscriptionLog is the log of a subscription message, with its topic
// and message id; it is made only for the messages that log, not for each
// notification.
func (e *Endpoint) subscriptionLog(m *snsMessage) *slog.Logger {
	return e.log.With("topic", m.TopicArn, "sns_message_id", sources.OneLine(m.MessageID))
}

// confirm confirms a subscription by GETting its SubscribeURL, which must
// be trusted (https on sns.<region>.amazonaws.com).
func (e *Endpoint) confirm(ctx context.Context, subscribeURL, region string) error {
	u, err := url.Parse(subscribeURL)
	if err != nil || subscribeURL == "" || !e.trustURL(u, region) {
		return fmt.Errorf("SubscribeURL %q is not an https URL on sns.%s.amazonaws.com", sources.OneLine(subscribeURL), region)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("GET SubscribeURL: %w", err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET SubscribeURL: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET SubscribeURL: %s", resp.Status)
	}
	return nil
}

// snsHostRE matches the hosts SNS serves SubscribeURLs and signing
// certificates from, capturing the region.
var snsHostRE = regexp.MustCompile(`^sns\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

// trustAWSURL reports whether u is https on sns.<region>.amazonaws.com (or
// .com.cn), region being the topic's.
func trustAWSURL(u *url.URL, region string) bool {
	if u.Scheme != "https" || u.User != nil || u.Port() != "" {
		return false
	}
	m := snsHostRE.FindStringSubmatch(u.Hostname())
	return m != nil && m[1] == region
}

// topicRegion is the region of a topic ARN
// (arn:aws:sns:<region>:<account>:<name>).
func topicRegion(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[3]
}

// stringToSign is what SNS signs: the message's members as "Name\nvalue\n"
// pairs in a fixed order, per message type.
func (m *snsMessage) stringToSign() (string, error) {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k); b.WriteByte('\n'); b.WriteString(v); b.WriteByte('\n') }
	switch m.Type {
	case snsNotification:
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		if m.Subject != "" {
			add("Subject", m.Subject)
		}
		add("Timestamp", m.Timestamp)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	case snsSubscribe, snsUnsubscribe:
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		add("SubscribeURL", m.SubscribeURL)
		add("Timestamp", m.Timestamp)
		add("Token", m.Token)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	default:
		return "", fmt.Errorf("unknown SNS message Type %q", m.Type)
	}
	return b.String(), nil
}

// verifySignature checks m's signature (SignatureVersion 1: SHA1withRSA,
// 2: SHA256withRSA) against the certificate at its SigningCertURL, which
// must be trusted.
func (e *Endpoint) verifySignature(ctx context.Context, m *snsMessage, region string) error {
	var (
		h crypto.Hash
		d []byte
	)
	text, err := m.stringToSign()
	if err != nil {
		return err
	}
	switch m.SignatureVersion {
	case "1":
		s := sha1.Sum([]byte(text))
		h, d = crypto.SHA1, s[:]
	case "2":
		s := sha256.Sum256([]byte(text))
		h, d = crypto.SHA256, s[:]
	default:
		return fmt.Errorf("unsupported SignatureVersion %q (want 1 or 2)", sources.OneLine(m.SignatureVersion))
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) == 0 {
		return errors.New("Signature is not base64")
	}
	u, err := url.Parse(m.SigningCertURL)
	if err != nil || m.SigningCertURL == "" || !e.trustURL(u, region) {
		return fmt.Errorf("SigningCertURL %q is not an https URL on sns.%s.amazonaws.com", sources.OneLine(m.SigningCertURL), region)
	}
	cert, err := e.certs.get(ctx, e.client, u.String(), e.now())
	if err != nil {
		return err
	}
	if err := rsa.VerifyPKCS1v15(cert, h, d, sig); err != nil {
		return errors.New("invalid signature")
	}
	return nil
}

// maxCerts bounds the certificate cache; SNS uses few certificates.
const maxCerts = 16

// certCache keeps the public keys of SNS signing certificates by URL.
type certCache struct {
	mu    sync.Mutex
	certs map[string]cachedCert
}

type cachedCert struct {
	key      *rsa.PublicKey
	notAfter time.Time
}

func newCertCache() *certCache { return &certCache{certs: map[string]cachedCert{}} }

// get returns the RSA public key of the certificate at u, fetching it
// when it is not cached or has expired.
func (c *certCache) get(ctx context.Context, client *http.Client, u string, now time.Time) (*rsa.PublicKey, error) {
	c.mu.Lock()
	cc, ok := c.certs[u]
	c.mu.Unlock()
	if ok && now.Before(cc.notAfter) {
		return cc.key, nil
	}
	cert, err := fetchCert(ctx, client, u)
	if err != nil {
		return nil, err
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, errors.New("the signing certificate is not valid now")
	}
	key, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the signing certificate has no RSA key")
	}
	c.mu.Lock()
	if len(c.certs) >= maxCerts {
		clear(c.certs)
	}
	c.certs[u] = cachedCert{key: key, notAfter: cert.NotAfter}
	c.mu.Unlock()
	return key, nil
}

// fetchCert GETs a PEM certificate (at most 64 KiB).
func fetchCert(ctx context.Context, client *http.Client, u string) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("get signing certificate: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get signing certificate: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get signing certificate: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("get signing certificate: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("the signing certificate is not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse signing certificate: %w", err)
	}
	return cert, nil
}
