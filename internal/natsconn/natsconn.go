// Package natsconn holds the connection settings shared by the nats source
// and sink: servers, credentials, TLS, reconnection.
package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/backoff"
)

// DefaultURL is the server the nats source and sink connect to when url is not set.
const DefaultURL = nats.DefaultURL

// Conn holds the keys that say where the NATS servers are and how to log in.
type Conn struct {
	// URL is one server URL or a comma-separated list of them (nats://,
	// tls://, ws://, wss://). Default nats://127.0.0.1:4222.
	URL string `yaml:"url"`
	// Credentials is a NATS credentials file (JWT and NKey seed).
	Credentials string `yaml:"credentials"`
	// User and Password log in with a user name and password.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// Token logs in with a token.
	Token string `yaml:"token"`
	// TLS configures TLS to the servers.
	TLS *TLS `yaml:"tls"`
}

// TLS configures the client side of TLS connections to NATS.
type TLS struct {
	// CAFile is a PEM file of the CA certificates the server's certificate
	// must chain to, instead of the system's.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that verify clients. Both or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// validate checks the keys without I/O. Secrets are never echoed.
func (c *Conn) Validate() []error {
	var errs []error
	if _, err := ParseURLs(c.URL); err != nil {
		errs = append(errs, config.FieldErrorf("url", "%v", err))
	}
	var set []string
	if c.Credentials != "" {
		set = append(set, "credentials")
	}
	if c.User != "" {
		set = append(set, "user")
	}
	if c.Token != "" {
		set = append(set, "token")
	}
	if len(set) > 1 {
		errs = append(errs, config.FieldErrorf(set[1], "use one of credentials, user/password or token, not %s", strings.Join(set, " and ")))
	}
	if c.Password != "" && c.User == "" {
		errs = append(errs, config.FieldErrorf("password", "requires user"))
	}
	if c.TLS != nil {
		if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
			errs = append(errs, config.FieldErrorf("tls.keyFile", "required with tls.certFile"))
		}
		if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
			errs = append(errs, config.FieldErrorf("tls.certFile", "required with tls.keyFile"))
		}
	}
	return errs
}

// ParseURLs splits and checks a comma-separated server list and returns the
// servers as errors and logs may show them: without user info.
func ParseURLs(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("required")
	}
	var out []string
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		where := ""
		if strings.Contains(s, ",") {
			where = fmt.Sprintf(" (server %d)", i+1)
		}
		if part == "" {
			return nil, fmt.Errorf("empty server URL%s", where)
		}
		u, err := url.Parse(part)
		if err != nil {
			// url's error repeats the URL, which may hold a password.
			return nil, fmt.Errorf("invalid server URL%s: use nats://host:port", where)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("server URL%s: scheme must be nats, tls, ws or wss, not %q", where, u.Scheme)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("server URL%s: missing host", where)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}

// options makes the connection options: the files are read now, so that a
// missing one stops the start with an error naming the key.
func (c *Conn) Options(name string, log *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(name),
		// Keep trying forever, the first connection included: a broker that
		// is down at start or goes away later is waited for.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		// One line per failed attempt; reconnectDelay spaces the attempts.
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn("connect to NATS failed; retrying", "error", err)
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				return // counted and logged by the caller
			}
			log.Warn("NATS error", "error", err)
		}),
	}
	switch {
	case c.Credentials != "":
		if _, err := os.Stat(c.Credentials); err != nil {
			return nil, fmt.Errorf("read credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(c.Credentials))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLS != nil {
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read tls.caFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("read tls.caFile %s: no PEM certificate found", c.TLS.CAFile)
			}
			conf.RootCAs = pool
		}
		if c.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("load tls.certFile and tls.keyFile: %w", err)
			}
			conf.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(conf))
	}
	return opts, nil
}

// reconnectDelay is the wait before reconnect attempt n (counted over the
// whole server list): 100ms doubling up to 5s, with jitter.
func reconnectDelay(attempts int) time.Duration {
	return backoff.Delay(attempts, 100*time.Millisecond, 5*time.Second)
}

// Retry is the jittered exponential delay before retry n (from 1) between
// base and max, for callers that back off themselves.
func Retry(n int, base, max time.Duration) time.Duration { return backoff.Delay(n, base, max) }
