package router

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/junctionhq/junction/config"
)

// tlsCheckEvery is how often a handshake may look whether a listener's
// certificate files changed. New handshakes use a new pair within this
// (plus the time to read the files), however the files were replaced:
// renamed over, written in place, or a symlink swapped as Kubernetes does
// with mounted secrets, since the files' contents are compared.
const tlsCheckEvery = 2 * time.Second

// tlsFiles serves a listener's TLS from its files (config.TLS): the pair
// and the client CAs are read at start, then again by a handshake once
// tlsCheckEvery has passed; when the contents changed and load, new
// handshakes use them. A change that does not load (a key written before
// its certificate, a bad file) is logged and the previous pair kept.
type tlsFiles struct {
	listener string // "http" or "admin", for logs and metrics
	conf     config.TLS
	log      *slog.Logger
	reloads  *prometheus.CounterVec // result: ok | error
	expiry   prometheus.Gauge       // NotAfter of the pair in use, Unix seconds
	every    time.Duration

	cur     atomic.Pointer[tlsState]
	next    atomic.Int64 // UnixNano of the next look at the files
	mu      sync.Mutex   // one look at a time
	failing bool         // the last look found contents that do not load
	badSum  [32]byte     // those contents (zero when a file could not be read)
}

// tlsState is a loaded pair (and client CAs) and the contents they came
// from.
type tlsState struct {
	sum    [32]byte
	config *tls.Config
	serial string
}

// newTLSFiles loads c's files; nil, nil when c is nil.
func newTLSFiles(listener string, c *config.TLS, log *slog.Logger, m *Metrics) (*tlsFiles, error) {
	if c == nil {
		return nil, nil
	}
	f := &tlsFiles{
		listener: listener, conf: *c, log: log.With("listener", listener), every: tlsCheckEvery,
		reloads: m.TLSReloads.MustCurryWith(prometheus.Labels{"listener": listener}),
		expiry:  m.TLSExpiry.WithLabelValues(listener),
	}
	sum, files, err := f.read()
	if err == nil {
		var st *tlsState
		if st, err = f.build(sum, files); err == nil {
			f.use(st)
			f.next.Store(time.Now().Add(f.every).UnixNano())
			return f, nil
		}
	}
	return nil, fmt.Errorf("%s.tls: %w", listener, err)
}

// serverConfig is the tls.Config to serve with: every handshake takes the
// current one (GetConfigForClient), after a look at the files when due.
func (f *tlsFiles) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: f.configForClient}
}

// listen wraps ln with TLS; ln itself when f is nil.
func (f *tlsFiles) listen(ln net.Listener) net.Listener {
	if f == nil {
		return ln
	}
	return tls.NewListener(ln, f.serverConfig())
}

// scheme is "https" with TLS, else "http".
func (f *tlsFiles) scheme() string {
	if f == nil {
		return "http"
	}
	return "https"
}

func (f *tlsFiles) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	f.maybeReload(time.Now())
	return f.cur.Load().config, nil
}

// maybeReload reads the files when a look is due and no other handshake is
// looking, and takes what changed.
func (f *tlsFiles) maybeReload(now time.Time) {
	if now.UnixNano() < f.next.Load() || !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	f.next.Store(now.Add(f.every).UnixNano())
	sum, files, err := f.read()
	if err == nil && sum == f.cur.Load().sum {
		return
	}
	var st *tlsState
	if err == nil {
		st, err = f.build(sum, files)
	}
	if err != nil {
		// Log a failure once per contents (every look while they stay the
		// same would repeat it).
		if !f.failing || sum != f.badSum {
			f.log.Error("certificate files changed but do not load; new handshakes keep the previous certificate", "err", err)
			f.reloads.WithLabelValues("error").Inc()
		}
		f.failing, f.badSum = true, sum
		return
	}
	f.failing = false
	f.use(st)
	f.reloads.WithLabelValues("ok").Inc()
	f.log.Info("certificate reloaded", "serial", st.serial, "cert", f.conf.CertFile)
}

// read returns the contents of the files and their sum.
func (f *tlsFiles) read() ([32]byte, [][]byte, error) {
	names := []string{f.conf.CertFile, f.conf.KeyFile}
	if f.conf.ClientCAFile != "" {
		names = append(names, f.conf.ClientCAFile)
	}
	h := sha256.New()
	files := make([][]byte, len(names))
	for i, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return [32]byte{}, nil, err
		}
		files[i] = b
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, files, nil
}

// build makes the tls.Config of the files read.
func (f *tlsFiles) build(sum [32]byte, files [][]byte) (*tlsState, error) {
	pair, err := tls.X509KeyPair(files[0], files[1])
	if err != nil {
		return nil, fmt.Errorf("load %s and %s: %w", f.conf.CertFile, f.conf.KeyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse %s: %w", f.conf.CertFile, err)
		}
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if len(files) > 2 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(files[2]) {
			return nil, errors.New("no PEM certificate in " + f.conf.ClientCAFile)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
		if f.conf.ClientAuth == config.ClientAuthVerifyIfGiven {
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return &tlsState{sum: sum, config: c, serial: leaf.SerialNumber.String()}, nil
}

func (f *tlsFiles) use(st *tlsState) {
	f.cur.Store(st)
	if leaf, err := x509.ParseCertificate(st.config.Certificates[0].Certificate[0]); err == nil {
		f.expiry.Set(float64(leaf.NotAfter.Unix()))
	}
}

// httpErrorLog is the log of the HTTP servers (TLS handshakes that failed,
// connections reset): at debug level, since any client can cause them.
func (r *Router) httpErrorLog() *log.Logger {
	return slog.NewLogLogger(r.log.Handler(), slog.LevelDebug)
}
