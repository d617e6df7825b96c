// Package amqptest holds helpers for tests against a real RabbitMQ: the
// broker URL with the CI rule, unique names, an admin connection to set up
// and inspect the broker, and a loopback TCP proxy to it that cuts
// connections (plugintest.Proxy).
// Only tests import it.
package amqptest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junctionhq/junction/internal/plugintest"
)

// DefaultURL is the broker the tests use when JUNCTION_TEST_AMQP_URL is not
// set: the local RabbitMQ.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// URL returns the test broker's URL (JUNCTION_TEST_AMQP_URL, default
// DefaultURL). When it cannot be reached the test is skipped, or fails when
// CI=true.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("JUNCTION_TEST_AMQP_URL")
	if u == "" {
		u = DefaultURL
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

// Unique returns prefix followed by "-" and 12 random hex digits: a queue
// or exchange name no other test uses.
func Unique(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Admin is a plain amqp091 connection with a confirm-mode channel, for
// setting up and inspecting the broker in tests. Its methods fail the test
// on an error.
type Admin struct {
	t    testing.TB
	Conn *amqp.Connection
	Ch   *amqp.Channel
}

// NewAdmin connects to u; the connection closes when the test ends.
func NewAdmin(t testing.TB, u string) *Admin {
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
	a := &Admin{t: t, Conn: conn, Ch: ch}
	t.Cleanup(func() { conn.Close() })
	return a
}

// Queue declares a durable queue with args and deletes it when the test
// ends.
func (a *Admin) Queue(name string, args amqp.Table) string {
	a.t.Helper()
	if _, err := a.Ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { a.DeleteQueue(name) })
	return name
}

// DeleteQueue deletes a queue, ignoring errors.
func (a *Admin) DeleteQueue(name string) {
	// A fresh channel: the test's may be closed.
	ch, err := a.Conn.Channel()
	if err == nil {
		ch.QueueDelete(name, false, false, false)
		ch.Close()
	}
}

// Exchange declares a durable exchange of kind and deletes it when the test
// ends.
func (a *Admin) Exchange(name, kind string) string {
	a.t.Helper()
	if err := a.Ch.ExchangeDeclare(name, kind, true, false, false, false, nil); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() {
		if ch, err := a.Conn.Channel(); err == nil {
			ch.ExchangeDelete(name, false, false)
			ch.Close()
		}
	})
	return name
}

// Publish sends p to the default exchange with routing key queue and waits
// for the broker's confirm.
func (a *Admin) Publish(queue string, p amqp.Publishing) {
	a.t.Helper()
	dc, err := a.Ch.PublishWithDeferredConfirm("", queue, true, false, p)
	if err != nil {
		a.t.Fatal(err)
	}
	if !dc.Wait() {
		a.t.Fatal("publish nacked")
	}
}

// Count returns the number of ready messages in queue.
func (a *Admin) Count(queue string) int {
	a.t.Helper()
	q, err := a.Ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	return q.Messages
}

// Get takes one message from queue, acking it; false when it is empty.
func (a *Admin) Get(queue string) (amqp.Delivery, bool) {
	a.t.Helper()
	d, ok, err := a.Ch.Get(queue, true)
	if err != nil {
		a.t.Fatal(err)
	}
	return d, ok
}

// NewProxy starts a proxy to the broker of brokerURL on a free loopback
// port; it stops when the test ends.
func NewProxy(t testing.TB, brokerURL string) *plugintest.Proxy {
	t.Helper()
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	return plugintest.NewTCPProxy(t, net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)))
}
