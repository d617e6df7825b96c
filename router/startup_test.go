package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sinks"
)

// closerSink is a sink type for these tests that records whether it was
// closed; with broken: true its Build fails.
type closerSink struct {
	Broken bool `yaml:"broken"`
}

var (
	closedMu sync.Mutex
	closed   = map[string]bool{}
)

func (c *closerSink) Validate() error { return nil }
func (c *closerSink) Build(_ context.Context, deps sinks.Deps) (sinks.Sink, error) {
	if c.Broken {
		return nil, errors.New("broken on purpose")
	}
	closedMu.Lock()
	defer closedMu.Unlock()
	closed[deps.Name] = false
	return closing(deps.Name), nil
}

type closing string

func (closing) Deliver(context.Context, *event.Event) error { return nil }
func (c closing) Close() error {
	closedMu.Lock()
	defer closedMu.Unlock()
	closed[string(c)] = true
	return nil
}

func wasClosed(name string) (built, isClosed bool) {
	closedMu.Lock()
	defer closedMu.Unlock()
	isClosed, built = closed[name]
	return built, isClosed
}

func init() {
	sinks.Register("test-closer", func() sinks.Config { return &closerSink{} })
}

// TestNewFailsCleanly: a failing New returns its error (it used to panic in
// its cleanup) and closes what it had built.
func TestNewFailsCleanly(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		yaml   string
		memory bool
		err    string
		closed string // a sink built before the failure
	}{
		{name: "journal dir under a file", yaml: fmt.Sprintf("journal: {dir: %q}\n", filepath.Join(file, "data")),
			err: fmt.Sprintf("open journal: mkdir %s: not a directory", file)},
		{name: "sink build fails", memory: true, yaml: `
sinks:
  - {name: first, type: test-closer}
  - {name: second, type: test-closer, broken: true}
routes:
  - {name: r, to: [first, second]}
`, err: `build sink "second": broken on purpose`, closed: "first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, tt.yaml)
			r, err := New(context.Background(), p, Options{Memory: tt.memory})
			if err == nil || err.Error() != tt.err || r != nil {
				t.Fatalf("New = %v, %v; want nil and %q", r, err, tt.err)
			}
			if tt.closed != "" {
				if built, isClosed := wasClosed(tt.closed); !built || !isClosed {
					t.Errorf("sink %q: built %v, closed %v; want it built and closed", tt.closed, built, isClosed)
				}
			}
		})
	}
}

// TestListenFailureCloses: when a port is taken, Listen says which and
// releases what New built.
func TestListenFailureCloses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	tests := []struct {
		name, http, admin, err string
	}{
		{name: "ingress", http: addr, admin: "127.0.0.1:0", err: "http listener: listen tcp " + addr + ": bind: address already in use"},
		{name: "admin", http: "127.0.0.1:0", admin: addr, err: "admin listener: listen tcp " + addr + ": bind: address already in use"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := fmt.Sprintf("listen%d", i)
			p := compile(t, fmt.Sprintf("sinks: [{name: %s, type: test-closer}]\nroutes: [{name: r, to: [%s]}]\n", sink, sink))
			p.Config.HTTP.Listen, p.Config.Admin.Listen = tt.http, tt.admin
			r, err := New(context.Background(), p, Options{Memory: true})
			if err != nil {
				t.Fatal(err)
			}
			err = r.Listen()
			if err == nil || err.Error() != tt.err {
				t.Fatalf("Listen = %v, want %q", err, tt.err)
			}
			if _, isClosed := wasClosed(sink); !isClosed || r.journal != nil || r.ingressLn != nil || r.adminLn != nil {
				t.Errorf("after a failed Listen: sink closed %v, journal open %v, ingress open %v, admin open %v; want all closed",
					isClosed, r.journal != nil, r.ingressLn != nil, r.adminLn != nil)
			}
		})
	}
}
