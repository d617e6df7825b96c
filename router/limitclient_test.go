package router

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// dialFrom connects to addr from the loopback address from (127.0.0.x):
// another client as the server sees it.
func dialFrom(t *testing.T, from, addr string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s (%v): needs the whole 127.0.0.0/8 on loopback", from, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{Conn: conn, rd: bufio.NewReader(conn)}
}

// TestLimitListenerPerClient: with 2 connections a client, a client's
// third is closed at once while another client still gets in, and a
// closed connection frees its client's slot.
func TestLimitListenerPerClient(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"})
	rejected := prometheus.NewCounter(prometheus.CounterOpts{Name: "rejected"})
	ln := newLimitListener(inner, 10, open, rejected)
	ln.perClient = 2
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := inner.Addr().String()

	a1, a2 := dial(t, addr), dial(t, addr)
	for _, c := range []*client{a1, a2} {
		if status, err := c.get(); err != nil || status != 200 {
			t.Fatalf("client a under its cap: %d, %v", status, err)
		}
	}
	refused(t, addr)
	b := dialFrom(t, "127.0.0.2", addr)
	if status, err := b.get(); err != nil || status != 200 {
		t.Fatalf("client b while a is at its cap: %d, %v", status, err)
	}
	if got := value(rejected); got != 1 {
		t.Errorf("rejected %v, want 1", got)
	}
	a1.Close()
	eventually(t, 5*time.Second, "the slot of a's closed connection", func() bool { return ln.Open() == 2 })
	a3 := dial(t, addr)
	if status, err := a3.get(); err != nil || status != 200 {
		t.Fatalf("client a after one of its connections closed: %d, %v", status, err)
	}
	refused(t, addr)
	if got := value(rejected); got != 2 {
		t.Errorf("rejected %v, want 2", got)
	}
}
