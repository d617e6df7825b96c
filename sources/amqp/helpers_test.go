package amqpsource

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"
)

// brokerURL returns the test broker's URL (JUNCTION_TEST_AMQP_URL, default
// the local RabbitMQ). When it cannot be reached the test is skipped, or
// fails when CI=true.
func brokerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("JUNCTION_TEST_AMQP_URL")
	if u == "" {
		u = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ unreachable (CI=true): %v", err)
		}
		t.Skipf("RabbitMQ unreachable (set JUNCTION_TEST_AMQP_URL or start rabbitmq-server): %v", err)
	}
	conn.Close()
	return u
}

// admin is a plain amqp091 connection for setting up and inspecting the
// broker in tests.
type admin struct {
	t    testing.TB
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newAdmin(t testing.TB, u string) *admin {
	t.Helper()
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	a := &admin{t: t, conn: conn, ch: ch}
	t.Cleanup(func() { conn.Close() })
	return a
}

func unique(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// queue declares a queue with args and deletes it when the test ends.
func (a *admin) queue(name string, args amqp.Table) string {
	a.t.Helper()
	if _, err := a.ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { a.deleteQueue(name) })
	return name
}

func (a *admin) deleteQueue(name string) {
	// A fresh channel: the test's may be closed.
	ch, err := a.conn.Channel()
	if err == nil {
		ch.QueueDelete(name, false, false, false)
		ch.Close()
	}
}

// exchange declares an exchange of kind and deletes it when the test ends.
func (a *admin) exchange(name, kind string) string {
	a.t.Helper()
	if err := a.ch.ExchangeDeclare(name, kind, true, false, false, false, nil); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() {
		if ch, err := a.conn.Channel(); err == nil {
			ch.ExchangeDelete(name, false, false)
			ch.Close()
		}
	})
	return name
}

// publish sends p to the default exchange with routing key queue and waits
// for the confirm.
func (a *admin) publish(queue string, p amqp.Publishing) {
	a.t.Helper()
	dc, err := a.ch.PublishWithDeferredConfirm("", queue, true, false, p)
	if err != nil {
		a.t.Fatal(err)
	}
	if !dc.Wait() {
		a.t.Fatal("publish nacked")
	}
}

// count returns the number of ready messages in queue.
func (a *admin) count(queue string) int {
	a.t.Helper()
	q, err := a.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	return q.Messages
}

// get takes one message from queue, acking it.
func (a *admin) get(queue string) (amqp.Delivery, bool) {
	a.t.Helper()
	d, ok, err := a.ch.Get(queue, true)
	if err != nil {
		a.t.Fatal(err)
	}
	return d, ok
}

// recorder is an Ingester that records events; fail, when set, decides
// whether a call fails.
type recorder struct {
	mu       sync.Mutex
	events   []event.Event
	calls    int
	rejected map[string]int
	fail     func(call int, events []*event.Event) error
}

func (r *recorder) Ingest(ctx context.Context, events []*event.Event) error {
	r.mu.Lock()
	r.calls++
	call := r.calls
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(call, events); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		r.events = append(r.events, *e)
	}
	return nil
}

func (r *recorder) Rejected(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rejected == nil {
		r.rejected = map[string]int{}
	}
	r.rejected[reason]++
}

func (r *recorder) got() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) rejections(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected[reason]
}

// ids returns how many times each event id was ingested.
func (r *recorder) ids() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, e := range r.events {
		m[e.ID()]++
	}
	return m
}

// eventually polls ok until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedBuffer collects log output.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// build makes a source from YAML-like settings.
func build(t testing.TB, c *Config, logs io.Writer) *Source {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	s, err := c.Build(context.Background(), sourcesDeps("q", logs))
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Source)
}

// run runs s in the background until the test ends and checks that Run
// returned nil.
func run(t testing.TB, s *Source, in *recorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, in) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// proxy is a loopback TCP proxy that forwards real AMQP bytes to the
// broker; cut closes every proxied connection, as a broker restart or a
// network failure would.
type proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	addr   string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	up     bool
}

func newProxy(t testing.TB, brokerURL string) *proxy {
	t.Helper()
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)), conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

// url is brokerURL with the host replaced by the proxy's address.
func (p *proxy) url(brokerURL string) string {
	u, err := url.Parse(brokerURL)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.addr
	return u.String()
}

func (p *proxy) serve(ln net.Listener) {
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

// cut closes every open connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// stop closes the listener and every connection: the broker is
// unreachable through the proxy until start.
func (p *proxy) stop() {
	p.mu.Lock()
	if p.up {
		p.ln.Close()
		p.up = false
	}
	p.mu.Unlock()
	p.cut()
}

// start listens again on the same address.
func (p *proxy) start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
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

var errBoom = errors.New("journal unavailable (test)")

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
