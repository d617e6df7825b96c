package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/plugintest"
)

// externalNATS starts a nats-server with JetStream of the pinned version
// (the journal needs 2.12 or later: message schedules, pinned consumers)
// on a free loopback port and returns its URL.
func externalNATS(t *testing.T) string {
	t.Helper()
	bin := natsServerBinary(t)
	_, p, _ := net.SplitHostPort(freePort(t))
	_, m, _ := net.SplitHostPort(freePort(t))
	node := &natsNode{t: t, name: "external", client: "nats://127.0.0.1:" + p, mon: "http://127.0.0.1:" + m,
		args: []string{"-js", "-a", "127.0.0.1", "-p", p, "-m", m, "-sd", t.TempDir()}}
	node.start(bin)
	t.Cleanup(node.kill)
	waitReady(t, "nats-server", 30*time.Second, node.exited, node.out, httpOK(node.mon+"/healthz"))
	return node.client
}

// dropStream deletes a test's stream from the external server.
func dropStream(t *testing.T, url, stream string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js.DeleteStream(ctx, stream)
}

// TestExternalJournalReplicas runs two junction processes on one stream of
// an external JetStream server: both take events, the deliveries are split
// between them, and when one is killed the other delivers what it left.
func TestExternalJournalReplicas(t *testing.T) {
	url := externalNATS(t)
	stream := fmt.Sprintf("E2E_%d", rand.Int64())
	t.Cleanup(func() { dropStream(t, url, stream) })
	hook := newSink(t, ok)
	cfg := strings.Replace(base, `journal: {dir: "{{DATA}}"}`, fmt.Sprintf(`journal: {url: %q, stream: %s}`, url, stream), 1) + fmt.Sprintf(`
sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 4}
routes:
  - name: r
    to: [hook]
    delivery: {timeout: 1s, backoffDelay: 50ms}
`, hook.url)
	a := start(t, cfg)
	b := start(t, cfg)
	const n = 200
	for i := range n {
		target := a
		if i%2 == 1 {
			target = b
		}
		if code := binaryEvent(t, target.ingest+"/events", fmt.Sprintf("x%d", i), "t", `{}`); code != 202 {
			t.Fatalf("event %d: %d", i, code)
		}
	}
	plugintest.Eventually(t, 15*time.Second, "all events delivered", func() bool { return hook.distinct() == n })
	da := a.metric("junction_deliveries_total", `outcome="delivered"`)
	db := b.metric("junction_deliveries_total", `outcome="delivered"`)
	if da+db < n || da == 0 || db == 0 {
		t.Errorf("deliveries by replica: a %v, b %v; want both to share the %d", da, db, n)
	}

	// Kill one replica; the other delivers everything sent afterwards, to
	// either one, including what the dead one had in flight.
	a.kill()
	for i := n; i < 2*n; i++ {
		if code := binaryEvent(t, b.ingest+"/events", fmt.Sprintf("x%d", i), "t", `{}`); code != 202 {
			t.Fatalf("event %d: %d", i, code)
		}
	}
	plugintest.Eventually(t, 30*time.Second, "all events delivered by the survivor", func() bool { return hook.distinct() == 2*n })
}
