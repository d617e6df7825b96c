package router

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// limitListener caps the connections open at once: Accept closes a
// connection over the cap at once, without a byte read or written, and goes
// on accepting (golang.org/x/net/netutil.LimitListener would instead leave
// it waiting in the backlog, where a flood of idle connections keeps new
// clients out). A connection frees its slot when it is closed, once however
// often Close is called. It wraps the TCP listener, under any TLS one
// (tls.NewListener(newLimitListener(tcp, ...))): http.Server must be given
// the *tls.Conn itself, and a refusal then costs no handshake.
type limitListener struct {
	net.Listener
	max      int64 // <= 0: no cap
	open     atomic.Int64
	gauge    prometheus.Gauge   // connections open; may be nil
	rejected prometheus.Counter // connections closed over the cap; may be nil
}

// newLimitListener wraps ln so that at most max connections are open at
// once (no cap when max <= 0), counting them in open and the refused ones
// in rejected (either may be nil).
func newLimitListener(ln net.Listener, max int, open prometheus.Gauge, rejected prometheus.Counter) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), gauge: open, rejected: rejected}
}

// limitedListener is newLimitListener with the ingress's series of m, for
// the ingress server to serve on.
func limitedListener(ln net.Listener, max int, m *Metrics) net.Listener {
	return newLimitListener(ln, max, m.Connections, m.ConnectionsRejected)
}

// Accept returns the next connection under the cap, closing those over it.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			if tc, ok := c.(*net.TCPConn); ok {
				// A reset, not a FIN: no TIME_WAIT kept for a refusal.
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			if l.rejected != nil {
				l.rejected.Inc()
			}
			continue
		}
		if l.gauge != nil {
			l.gauge.Inc()
		}
		return &limitConn{Conn: c, l: l}, nil
	}
}

// Open is the number of connections open.
func (l *limitListener) Open() int { return int(l.open.Load()) }

func (l *limitListener) release() {
	l.open.Add(-1)
	if l.gauge != nil {
		l.gauge.Dec()
	}
}

// limitConn gives its slot back on its first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}
