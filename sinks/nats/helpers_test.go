package natssink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/sinks"
)

// brokerURL is the NATS server (with JetStream) the tests use.
func brokerURL() string {
	if u := os.Getenv("JUNCTION_TEST_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// connect connects to the test broker, skipping the test when it is not
// reachable outside CI.
func connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(brokerURL(), nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS server %s unreachable (CI=true): %v", brokerURL(), err)
		}
		t.Skipf("NATS server %s unreachable (set JUNCTION_TEST_NATS_URL, or run nats-server -js): %v", brokerURL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func suffix() string {
	b := make([]byte, 5)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newStream makes a stream with a unique name on a unique subject space
// and deletes it when the test ends. It returns the name and the subject
// prefix ("t<suffix>").
func newStream(t testing.TB, js jetstream.JetStream) (name, prefix string) {
	t.Helper()
	sfx := suffix()
	name, prefix = "JT_"+sfx, "t"+sfx
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: name, Subjects: []string{prefix + ".>"}, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	return name, prefix
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

// embedded is a NATS server with JetStream run by the test, which it can
// stop and start again on the same port and store: a broker outage.
type embedded struct {
	t    testing.TB
	port int
	dir  string
	srv  *server.Server
}

func startEmbedded(t testing.TB) *embedded {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	e := &embedded{t: t, port: port, dir: t.TempDir()}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *embedded) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", e.port) }

func (e *embedded) start() {
	e.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: e.port, JetStream: true, StoreDir: e.dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.t.Fatal("embedded NATS server not ready")
	}
	e.srv = srv
}

func (e *embedded) stop() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
}

// newEvent is a CloudEvent with every attribute set.
func newEvent(id string) *event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/shop")
	e.SetType("com.example.order.created")
	e.SetSubject("order 42 ✓")
	e.SetTime(time.Date(2024, 5, 1, 10, 0, 0, 500, time.UTC))
	e.SetDataSchema("https://example.com/order.json")
	e.SetExtension("tenant", "acme")
	e.SetExtension("priority", 3)
	_ = e.SetData("application/json", map[string]any{"amount": 120, "customer": "c-1"})
	return &e
}

// build validates and builds a sink from YAML.
func build(t testing.TB, src string) *Sink {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatal(errs)
	}
	s, err := c.Build(context.Background(), sinks.Deps{Name: "natstest"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Sink)
}
