// Package natstest holds helpers for tests against NATS: the test server's
// URL with the CI rule, unique JetStream streams, and an embedded server
// that a test can stop and start again to play a broker outage. Only tests
// import it.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultURL is the server the tests use when JUNCTION_TEST_NATS_URL is not
// set: the local nats-server.
const DefaultURL = "nats://127.0.0.1:4222"

// URL is the NATS server (with JetStream) the tests use:
// JUNCTION_TEST_NATS_URL, default DefaultURL.
func URL() string {
	if u := os.Getenv("JUNCTION_TEST_NATS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Connect connects to the test server; the connection closes when the test
// ends. When the server cannot be reached the test is skipped, or fails
// when CI=true.
func Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(URL(), nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS server %s unreachable (CI=true): %v", URL(), err)
		}
		t.Skipf("NATS server %s unreachable (set JUNCTION_TEST_NATS_URL, or run nats-server -js): %v", URL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Suffix returns 10 random hex digits, to make names no other test uses.
func Suffix() string {
	b := make([]byte, 5)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewStream makes an in-memory stream named "JT_<suffix>" capturing
// "t<suffix>.>" and deletes it when the test ends. It returns the name and
// the subject prefix ("t<suffix>").
func NewStream(t testing.TB, js jetstream.JetStream) (name, prefix string) {
	t.Helper()
	return Stream(t, js, "JT_", "t", jetstream.MemoryStorage)
}

// Stream makes a stream named name+suffix capturing "<subject+suffix>.>"
// with storage, and deletes it when the test ends. It returns the name and
// the subject prefix (subject+suffix), with the same random suffix.
func Stream(t testing.TB, js jetstream.JetStream, name, subject string, storage jetstream.StorageType) (string, string) {
	t.Helper()
	sfx := Suffix()
	name, prefix := name+sfx, subject+sfx
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: name, Subjects: []string{prefix + ".>"}, Storage: storage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	return name, prefix
}

// Server is a NATS server with JetStream run by the test, which it can
// stop and start again on the same port and store: a broker outage.
type Server struct {
	t    testing.TB
	port int
	dir  string
	srv  *server.Server
}

// StartServer starts a server on a free loopback port with its store in a
// temporary directory; it stops when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{t: t, port: port, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Start starts the server again, on the same port and store, and waits
// until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: s.port, JetStream: true, StoreDir: s.dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("embedded NATS server not ready")
	}
	s.srv = srv
}

// Stop shuts the server down and waits until it is down; a stopped server
// stays stopped.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}
