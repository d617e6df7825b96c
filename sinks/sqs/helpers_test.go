package sqssink

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/junctionhq/junction/internal/sqstest"
	"github.com/junctionhq/junction/sinks"
)

// The test server's helpers (see sqstest).
var (
	endpoint = sqstest.Endpoint
	broker   = sqstest.Client
	suffix   = sqstest.Suffix
)

// queue creates a queue with a unique name (name may end in .fifo) and
// deletes it when the test ends.
func queue(t testing.TB, c *sqs.Client, name string) string {
	t.Helper()
	return sqstest.Queue(t, c, name, nil)
}

// receive reads up to n messages from q, waiting up to 10s in all.
func receive(t testing.TB, c *sqs.Client, q string, n int) []types.Message {
	t.Helper()
	return sqstest.Receive(t, c, q, n, 10*time.Second, "All")
}

// build makes a sink on queue q with the config tweaked by set.
func build(t testing.TB, q string, set func(*Config)) *Sink {
	t.Helper()
	c := NewConfig()
	c.QueueURL = q
	c.Endpoint = endpoint()
	c.Region = "us-east-1"
	if set != nil {
		set(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := New(context.Background(), c, sinks.Deps{Name: "queue", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// proxy is a TCP proxy on loopback in front of the SQS server that can be
// stopped (connections refused) and started again on the same address, to
// take the broker away honestly. With stall set it accepts connections and
// never answers.
type proxy struct {
	t      testing.TB
	addr   string
	target string
	stall  bool
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t testing.TB, stall bool) *proxy {
	u, _ := url.Parse(endpoint())
	p := &proxy{t: t, target: u.Host, stall: stall}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) url() string { return "http://" + p.addr }

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if p.stall {
				continue
			}
			go func() {
				up, err := net.Dial("tcp", p.target)
				if err != nil {
					c.Close()
					return
				}
				p.mu.Lock()
				p.conns = append(p.conns, up)
				p.mu.Unlock()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
				c.Close()
			}()
		}
	}()
}

// stop closes the listener and every connection: the broker is gone.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// start listens again on the same address.
func (p *proxy) start() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func deliverCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
