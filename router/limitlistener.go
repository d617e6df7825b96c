package router

import (
	"net"
	"net/netip"
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

	// perClient caps the connections of one client IP address (<= 0: no
	// cap), so that one client cannot take every slot; byClient counts
	// them.
	perClient int64
	mu        sync.Mutex
	byClient  map[netip.Addr]int64
}

// newLimitListener wraps ln so that at most max connections are open at
// once (no cap when max <= 0), counting them in open and the refused ones
// in rejected (either may be nil).
func newLimitListener(ln net.Listener, max int, open prometheus.Gauge, rejected prometheus.Counter) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), gauge: open, rejected: rejected}
}

// limitedListener is newLimitListener with the ingress's series of m and
// a cap of perClient connections per client address (0: none), for the
// ingress server to serve on.
func limitedListener(ln net.Listener, max, perClient int, m *Metrics) net.Listener {
	l := newLimitListener(ln, max, m.Connections, m.ConnectionsRejected)
	l.perClient = int64(perClient)
	return l
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
			l.refuse(c)
			continue
		}
		client, ok := l.admitClient(c)
		if !ok {
			l.open.Add(-1)
			l.refuse(c)
			continue
		}
		if l.gauge != nil {
			l.gauge.Inc()
		}
		return &limitConn{Conn: c, l: l, client: client}, nil
	}
}

// refuse counts c and closes it at once (counted first, so that a client
// that saw the reset also sees the count).
func (l *limitListener) refuse(c net.Conn) {
	if l.rejected != nil {
		l.rejected.Inc()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// A reset, not a FIN: no TIME_WAIT kept for a refusal.
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// admitClient counts c against its client's cap; ok is false when the
// client has perClient connections open already. client is the address
// counted (invalid when there is no per-client cap).
func (l *limitListener) admitClient(c net.Conn) (client netip.Addr, ok bool) {
	if l.perClient <= 0 {
		return netip.Addr{}, true
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, true
	}
	client = ap.Addr().Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byClient[client] >= l.perClient {
		return netip.Addr{}, false
	}
	if l.byClient == nil {
		l.byClient = map[netip.Addr]int64{}
	}
	l.byClient[client]++
	return client, true
}

// Open is the number of connections open.
func (l *limitListener) Open() int { return int(l.open.Load()) }

func (l *limitListener) release(client netip.Addr) {
	l.open.Add(-1)
	if l.gauge != nil {
		l.gauge.Dec()
	}
	if client.IsValid() {
		l.mu.Lock()
		if l.byClient[client]--; l.byClient[client] <= 0 {
			delete(l.byClient, client)
		}
		l.mu.Unlock()
	}
}

// limitConn gives its slot back on its first Close.
type limitConn struct {
	net.Conn
	l      *limitListener
	client netip.Addr // counted against its cap; invalid when none
	once   sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.client) })
	return err
}
