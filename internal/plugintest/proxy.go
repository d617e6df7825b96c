package plugintest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Proxy is a loopback TCP proxy that forwards the real bytes of a
// protocol to its server; Cut closes every proxied connection, as a server
// restart or a network failure would, and Stop makes the server unreachable
// until Start.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	addr   string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	up     bool
}

// NewTCPProxy starts a proxy to the TCP server at target (host:port) on a
// free loopback port; it stops when the test ends.
func NewTCPProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Stop)
	return p
}

// URL is serverURL with the host replaced by the proxy's address.
func (p *Proxy) URL(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.addr
	return u.String()
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln, p.up = ln, true
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = true, true
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close(); c.Close() }()
			go func() { io.Copy(c, b); c.Close(); b.Close() }()
		}
	}()
}

// Cut closes every open connection through the proxy.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Stop closes the listener and every connection: the broker is
// unreachable through the proxy until Start.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.up {
		p.ln.Close()
		p.up = false
	}
	p.mu.Unlock()
	p.Cut()
}

// Start listens again on the same address.
func (p *Proxy) Start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}
