package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// benchCert is the self-signed certificate of `junction bench --tls`, for
// 127.0.0.1, valid for a day.
type benchCert struct {
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}

func newBenchCert() (*benchCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "junction bench"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &benchCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		pool:    x509.NewCertPool(),
	}
	c.pool.AddCert(cert)
	return c, nil
}

// write puts bench.crt and bench.key in dir (what benchTLSConfig names);
// nothing when c is nil.
func (c *benchCert) write(dir string) error {
	if c == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.crt"), c.certPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "bench.key"), c.keyPEM, 0o600)
}

// clientConfig trusts c; nil (the defaults) when c is nil.
func (c *benchCert) clientConfig() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{RootCAs: c.pool}
}

// benchTLSConfig is the tls key of the bench config's http block (indented
// under it), "" without --tls.
func benchTLSConfig(o benchOpts, dir string) string {
	if !o.tls {
		return ""
	}
	return fmt.Sprintf("  tls: {certFile: %q, keyFile: %q}\n", filepath.Join(dir, "bench.crt"), filepath.Join(dir, "bench.key"))
}
