package natssource

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/sources"
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

// recorder is an Ingester that records what it is given. fail, when it
// returns an error, refuses the call; block delays it.
type recorder struct {
	mu       sync.Mutex
	fail     func(call int, e *event.Event) error
	block    time.Duration
	calls    int
	events   []*event.Event
	rejected map[string]int
}

func (r *recorder) Ingest(ctx context.Context, events []*event.Event) error {
	r.mu.Lock()
	r.calls++
	call, fail, block := r.calls, r.fail, r.block
	r.mu.Unlock()
	if block > 0 {
		select {
		case <-time.After(block):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(call, events[0]); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, events...)
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

func (r *recorder) snapshot() (calls int, events []*event.Event, rejected map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rej := map[string]int{}
	for k, v := range r.rejected {
		rej[k] = v
	}
	return r.calls, append([]*event.Event(nil), r.events...), rej
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

var _ sources.Ingester = (*recorder)(nil)

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

// run builds c and runs it with in until the test ends; Run must return
// nil.
func run(t testing.TB, c *Config, in sources.Ingester) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	built, err := c.Build(context.Background(), sources.Deps{Name: "natstest", Logger: log})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- built.(*Source).Run(ctx, in) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return within 15s of cancel")
		}
	})
}

// jsConfig is a JetStream source config on stream.
func jsConfig(stream string) *Config {
	c := NewConfig()
	c.URL = brokerURL()
	c.Stream = stream
	c.Durable = "d_" + suffix()
	return c
}

// publish publishes a message with headers kv (name, value, ...) to the
// stream and waits for its PubAck.
func publish(t testing.TB, js jetstream.JetStream, subject, data string, kv ...string) {
	t.Helper()
	m := nats.NewMsg(subject)
	for i := 0; i+1 < len(kv); i += 2 {
		m.Header.Set(kv[i], kv[i+1])
	}
	m.Data = []byte(data)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish: %v", err)
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
