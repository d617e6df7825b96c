package router

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// get sends a GET on conn and reads the answer's status.
func get(conn net.Conn, rd *bufio.Reader) (int, error) {
	conn.SetDeadline(time.Now().Add(5 * time.Second)) // bounds a broken test
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// client is a keep-alive connection to a server.
type client struct {
	net.Conn
	rd *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{Conn: conn, rd: bufio.NewReader(conn)}
}

func (c *client) get() (int, error) { return get(c.Conn, c.rd) }

// refused dials addr and checks that the server closes the connection
// without an answer, at once: the dial is reset, or the first read ends
// (EOF or a reset) without waiting for a timeout.
func refused(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return // reset before connect returned
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection over the cap: read %d bytes, %v; want it closed by the server", n, err)
	}
}

// TestLimitListener: with a cap of 2, a third connection is closed at
// once while the first two are served; closing one frees its slot.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"})
	rejected := prometheus.NewCounter(prometheus.CounterOpts{Name: "rejected"})
	ln := newLimitListener(inner, 2, open, rejected)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := inner.Addr().String()

	c1, c2 := dial(t, addr), dial(t, addr)
	for _, c := range []*client{c1, c2} {
		if status, err := c.get(); err != nil || status != 200 {
			t.Fatalf("connection under the cap: %d, %v", status, err)
		}
	}
	refused(t, addr)
	for _, c := range []*client{c1, c2} {
		if status, err := c.get(); err != nil || status != 200 {
			t.Fatalf("after the refusal, a connection under the cap: %d, %v", status, err)
		}
	}
	if got := value(rejected); got != 1 {
		t.Errorf("rejected %v, want 1", got)
	}
	if got := value(open); got != 2 {
		t.Errorf("open %v, want 2", got)
	}

	// Closing c1 frees its slot once the server has seen it go.
	c1.Close()
	eventually(t, 5*time.Second, "the slot of the closed connection", func() bool { return ln.Open() == 1 })
	c4 := dial(t, addr)
	if status, err := c4.get(); err != nil || status != 200 {
		t.Fatalf("connection after one closed: %d, %v", status, err)
	}
	if status, err := c2.get(); err != nil || status != 200 {
		t.Fatalf("second connection: %d, %v", status, err)
	}
	refused(t, addr)
	if got := value(rejected); got != 2 {
		t.Errorf("rejected %v, want 2", got)
	}
	if got := value(open); got != 2 {
		t.Errorf("open %v, want 2", got)
	}
}

// pipeListener accepts the server ends of net.Pipes.
type pipeListener struct{ conns chan net.Conn }

func (l *pipeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *pipeListener) Close() error   { return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestLimitListenerCloseOnce: a connection closed twice frees one slot,
// not two; a cap of 0 is no cap.
func TestLimitListenerCloseOnce(t *testing.T) {
	inner := &pipeListener{conns: make(chan net.Conn, 10)}
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"})
	ln := newLimitListener(inner, 2, open, nil)
	accept := func() net.Conn {
		t.Helper()
		server, client := net.Pipe()
		t.Cleanup(func() { client.Close() })
		inner.conns <- server
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := accept(), accept()
	a.Close()
	a.Close()
	if ln.Open() != 1 || value(open) != 1 {
		t.Fatalf("after closing one of two connections twice: %d open (gauge %v), want 1", ln.Open(), value(open))
	}
	accept()
	a.Close()
	if ln.Open() != 2 || value(open) != 2 {
		t.Fatalf("a third Close freed a slot: %d open (gauge %v), want 2", ln.Open(), value(open))
	}
	b.Close()

	unlimited := newLimitListener(inner, 0, nil, nil)
	for range 5 {
		server, client := net.Pipe()
		defer client.Close()
		inner.conns <- server
		if _, err := unlimited.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	if unlimited.Open() != 5 {
		t.Errorf("without a cap: %d open, want 5", unlimited.Open())
	}
	close(inner.conns)
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v", err)
	}
}

// TestMaxConnections: the ingress that Run serves holds to
// http.maxConnections and counts its connections.
func TestMaxConnections(t *testing.T) {
	r := startRouter(t, compile(t, `
http:
  maxConnections: 1
sinks:
  - {name: out, type: test-recorder}
`))
	c1 := dial(t, r.IngressAddr())
	if status, err := c1.get(); err != nil || status != http.StatusNotFound {
		t.Fatalf("first connection: %d, %v; want a 404 from the ingress", status, err)
	}
	refused(t, r.IngressAddr())
	if status, err := c1.get(); err != nil || status != http.StatusNotFound {
		t.Fatalf("first connection after the refusal: %d, %v", status, err)
	}
	if got := value(r.metrics.ConnectionsRejected); got != 1 {
		t.Errorf("junction_http_connections_rejected_total %v, want 1", got)
	}
	if got := value(r.metrics.Connections); got != 1 {
		t.Errorf("junction_http_connections %v, want 1", got)
	}
	// Stop only once Run's first count of pending deliveries is done: a
	// stop during it raced with closeAll while Run did not wait for
	// trackPending, which is not what this test is about.
	eventually(t, 5*time.Second, "the first pending count", func() bool { return series(r.metrics.Pending) > 0 })
}

// series counts the series of a collector.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}
