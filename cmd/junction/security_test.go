package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAdminURLWithTLS: with admin.tls the CLI's clients speak HTTPS and
// trust the configured certificate (a self-signed one works).
func TestAdminURLWithTLS(t *testing.T) {
	cert, _ := filepath.Abs("../../config/testdata/tls/cert.pem")
	key, _ := filepath.Abs("../../config/testdata/tls/key.pem")
	path := filepath.Join(t.TempDir(), "junction.yaml")
	text := "admin:\n  listen: 127.0.0.1:9443\n  tls: {certFile: " + cert + ", keyFile: " + key + "}\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := adminURL(path); err != nil || got != "https://127.0.0.1:9443" {
		t.Errorf("adminURL = %q, %v; want https://127.0.0.1:9443", got, err)
	}
	b, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := adminRoots(path)
	want := adminRoots("")
	if !want.AppendCertsFromPEM(b) || !pool.Equal(want) {
		t.Error("adminRoots does not hold the system's CAs and admin.tls.certFile")
	}
}

// TestSourceAuthWhereItFits: auth and rateLimit are taken by the sources on
// the HTTP ingress (http, webhook, s3 over SNS or MinIO's webhook) and
// refused on the others (s3 over SQS), at their positions.
func TestSourceAuthWhereItFits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junction.yaml")
	text := `sources:
  - {name: h, type: http, path: /h, auth: {bearer: [t0ken]}, rateLimit: 10/s}
  - {name: w, type: webhook, path: /w, auth: {basic: {ci: pw}}}
  - {name: sns, type: s3, transport: sns, path: /sns, topics: ["arn:aws:sns:us-east-1:123456789012:t"], auth: {basic: {sns: pw}}}
  - {name: minio, type: s3, transport: webhook, path: /minio, authToken: x, rateLimit: 5/s}
  - name: queue
    type: s3
    transport: sqs
    queueUrl: https://sqs.us-east-1.amazonaws.com/123456789012/q
    auth: {bearer: [t0ken]}
    rateLimit: 10/s
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI("validate", path)
	want := path + `:10:11: source "queue": auth: applies to sources served on the HTTP ingress (with a path), and this s3 source has none
` + path + `:11:16: source "queue": rateLimit: applies to sources served on the HTTP ingress (with a path), and this s3 source has none
`
	if code != 1 || stderr != want {
		t.Errorf("validate: exit %d\n%s\nwant exit 1 and\n%s", code, stderr, want)
	}
}
