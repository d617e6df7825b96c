package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"

	"github.com/junctionhq/junction/internal/testcerts"
)

// benchCert is the certificate of `junction bench --tls`, for 127.0.0.1 and
// localhost, signed by a CA made for the run, valid for a day.
type benchCert struct {
	pair testcerts.Pair
	pool *x509.CertPool
}

func newBenchCert() (*benchCert, error) {
	ca, err := testcerts.NewCA("junction bench")
	if err != nil {
		return nil, err
	}
	pair, err := ca.Server(2)
	if err != nil {
		return nil, err
	}
	return &benchCert{pair: pair, pool: ca.Pool()}, nil
}

// write puts bench.crt and bench.key in dir (what benchTLSConfig names);
// nothing when c is nil.
func (c *benchCert) write(dir string) error {
	if c == nil {
		return nil
	}
	return c.pair.Write(filepath.Join(dir, "bench.crt"), filepath.Join(dir, "bench.key"))
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
