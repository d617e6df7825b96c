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
