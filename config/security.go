package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// TLS is the tls key of http and admin: the listener serves HTTPS with the
// certificate and key in CertFile and KeyFile (PEM), re-read when the files
// change. With ClientCAFile, clients must present a certificate signed by
// one of its CAs (mutual TLS). Relative paths are from the config file's
// directory (the loader makes them so).
type TLS struct {
	CertFile     string `yaml:"certFile"`
	KeyFile      string `yaml:"keyFile"`
	ClientCAFile string `yaml:"clientCAFile"`
	// ClientAuth is require (the default with ClientCAFile: a handshake
	// without a valid client certificate fails) or verifyIfGiven (a client
	// may present none; one it presents must be valid).
	ClientAuth string `yaml:"clientAuth"`
}

// Values of TLS.ClientAuth.
const (
	ClientAuthRequire       = "require"
	ClientAuthVerifyIfGiven = "verifyIfGiven"
)

// RequiresClientCert reports whether a handshake needs a valid client
// certificate.
func (t *TLS) RequiresClientCert() bool {
	return t != nil && t.ClientCAFile != "" && t.ClientAuth == ClientAuthRequire
}

// AdminAuth is admin.auth: the bearer tokens that open /api/*, the console
// and /metrics (unless OpenMetrics). /healthz and /readyz stay open.
type AdminAuth struct {
	Bearer      []string `yaml:"bearer"`
	OpenMetrics bool     `yaml:"openMetrics"`
}

// Auth is a source's auth key: a request must carry one of the bearer
// tokens (Authorization: Bearer TOKEN) or one user's password (HTTP basic
// authentication).
type Auth struct {
	Bearer []string          `yaml:"bearer"`
	Basic  map[string]string `yaml:"basic"`
}

// DefaultMaxHeaderBytes is the default of http.maxHeaderBytes.
const DefaultMaxHeaderBytes = ByteSize(64 << 10)

// MaxMaxHeaderBytes bounds http.maxHeaderBytes.
const MaxMaxHeaderBytes = ByteSize(1 << 20)

// checkTLS reports the problems of a listener's tls key (key is "http.tls"
// or "admin.tls"): files that cannot be read, a certificate and key that do
// not load as a pair, a CA file without certificates, clientAuth without
// clientCAFile.
func checkTLS(t *TLS, key, dir string, at func(string) Pos, errs *Errors) {
	if t == nil {
		return
	}
	for _, p := range []*string{&t.CertFile, &t.KeyFile, &t.ClientCAFile} {
		if *p != "" && !filepath.IsAbs(*p) && dir != "" && dir != "." {
			*p = filepath.Join(dir, *p)
		}
	}
	switch {
	case t.CertFile == "":
		errs.Addf(at(key), "", "%s: certFile: missing (the server's certificate, PEM)", key)
	case t.KeyFile == "":
		errs.Addf(at(key), "", "%s: keyFile: missing (the certificate's private key, PEM)", key)
	default:
		certOK := checkReadable(t.CertFile, key+".certFile", at, errs)
		keyOK := checkReadable(t.KeyFile, key+".keyFile", at, errs)
		if certOK && keyOK {
			if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
				errs.Addf(at(key+".keyFile"), "", "%s.keyFile: cannot load the pair %s and %s: %v", key, t.CertFile, t.KeyFile, err)
			}
		}
	}
	switch t.ClientAuth {
	case "":
		if t.ClientCAFile != "" {
			t.ClientAuth = ClientAuthRequire
		}
	case ClientAuthRequire, ClientAuthVerifyIfGiven:
		if t.ClientCAFile == "" {
			errs.Addf(at(key+".clientAuth"), "", "%s.clientAuth: %s needs clientCAFile (the CAs that sign client certificates)", key, t.ClientAuth)
		}
	default:
		errs.Addf(at(key+".clientAuth"), "", "%s.clientAuth: must be %s or %s, not %q", key, ClientAuthRequire, ClientAuthVerifyIfGiven, t.ClientAuth)
	}
	if t.ClientCAFile != "" && checkReadable(t.ClientCAFile, key+".clientCAFile", at, errs) {
		if _, err := LoadCAPool(t.ClientCAFile); err != nil {
			errs.Addf(at(key+".clientCAFile"), "", "%s.clientCAFile: %v", key, err)
		}
	}
}

// LoadCAPool reads a PEM file of CA certificates into a pool.
func LoadCAPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}

func checkReadable(file, key string, at func(string) Pos, errs *Errors) bool {
	f, err := os.Open(file)
	if err != nil {
		errs.Addf(at(key), "", "%s: %v", key, err)
		return false
	}
	f.Close()
	return true
}

// checkAdminAuth reports the problems of admin.auth.
func checkAdminAuth(a *AdminAuth, at func(string) Pos, errs *Errors) {
	if a == nil {
		return
	}
	if len(a.Bearer) == 0 {
		errs.Addf(at("admin.auth"), "", "admin.auth.bearer: give at least one token (from the environment: - ${JUNCTION_ADMIN_TOKEN})")
	}
	for i, tok := range a.Bearer {
		if msg := badToken(tok); msg != "" {
			errs.Addf(at(fmt.Sprintf("admin.auth.bearer[%d]", i)), "", "admin.auth.bearer[%d]: %s", i, msg)
		}
	}
}

// badToken says what is wrong with a bearer token, "" when nothing.
func badToken(tok string) string {
	switch {
	case tok == "":
		return "empty token (an environment variable set to nothing?)"
	case strings.TrimSpace(tok) != tok:
		return "the token begins or ends with white space"
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return "the token has a character that an Authorization header cannot carry (use printable ASCII)"
		}
	}
	return ""
}

// decodeAuth reads a source's auth key. Problems go to errs at their
// positions, and the result is then nil.
func decodeAuth(n *yaml.Node, where string, errs *Errors) *Auth {
	var a Auth
	before := len(*errs)
	errs.Add(n, where, Decode(n, &a))
	if len(*errs) > before {
		return nil
	}
	if len(a.Bearer) == 0 && len(a.Basic) == 0 {
		errs.Addf(PosOf(n), where, "auth: give bearer tokens or basic users (without auth, remove the key)")
		return nil
	}
	for i, tok := range a.Bearer {
		if msg := badToken(tok); msg != "" {
			errs.Addf(PosOf(Locate(n, fmt.Sprintf("bearer[%d]", i))), where, "auth.bearer[%d]: %s", i, msg)
		}
	}
	for user, pw := range a.Basic {
		switch {
		case user == "" || strings.ContainsAny(user, ":\r\n"):
			errs.Addf(PosOf(Locate(n, "basic")), where, "auth.basic: invalid user name %q (no ':' and not empty)", user)
		case pw == "":
			errs.Addf(PosOf(Locate(n, "basic."+user)), where, "auth.basic.%s: empty password (an environment variable set to nothing?)", user)
		}
	}
	if len(*errs) > before {
		return nil
	}
	return &a
}

// Loopback reports whether a listen address (host:port) takes connections
// from this host only: a loopback IP, or localhost.
func Loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// CheckExposure returns an error, at admin.listen, when the admin API
// listens beyond loopback with nothing that authenticates its clients
// (admin.auth, or admin.tls that requires client certificates), unless
// admin.insecure is true. serve refuses to run such a config and validate
// reports it.
func (c *Config) CheckExposure() error {
	a := c.Admin
	if a.Listen == "off" || Loopback(a.Listen) || a.Auth != nil || a.TLS.RequiresClientCert() || a.Insecure {
		return nil
	}
	fix := "set admin.auth.bearer (a token from the environment, such as ${JUNCTION_ADMIN_TOKEN}), listen on 127.0.0.1, or say admin.insecure: true"
	if c.File == DefaultName {
		fix = "set JUNCTION_ADMIN_TOKEN (the built-in config's admin token), or JUNCTION_ADMIN_LISTEN=127.0.0.1:9090"
	}
	e := &Error{File: c.File, Pos: c.adminListenPos, Msg: fmt.Sprintf(
		"admin.listen: %s takes connections from other hosts and the admin API has no admin.auth: anyone who reaches it could read events, redrive and replay; %s",
		a.Listen, fix)}
	return Errors{e}
}
