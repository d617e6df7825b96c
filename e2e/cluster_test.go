package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/internal/plugintest"
)

// The replica tests run two junction replicas on a 3-node NATS JetStream
// cluster on loopback (nats-server v2.15.2, installed by scripts/services.sh
// into .cache/bin) with journal.replicas: 3, under load, and check that no
// accepted event is lost when a replica or the stream's leader node is
// killed, or when the replicas are restarted one after the other.

// natsServerBinary finds nats-server: $JUNCTION_NATS_SERVER, else
// .cache/bin/nats-server. Outside CI the test is skipped without one.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("JUNCTION_NATS_SERVER")
	if path == "" {
		path, _ = filepath.Abs("../.cache/bin/nats-server")
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no nats-server at %s (scripts/services.sh installs v2.15.2 there; or set JUNCTION_NATS_SERVER): %v", path, err)
		}
		t.Skipf("no nats-server at %s: run scripts/services.sh (installs v2.15.2 into .cache/bin) or set JUNCTION_NATS_SERVER", path)
	}
	return path
}

// natsNode is one node of a test cluster.
type natsNode struct {
	t      *testing.T
	name   string
	client string // nats://127.0.0.1:port
	mon    string // http://127.0.0.1:port
	args   []string
	cmd    *exec.Cmd
	out    *plugintest.LogBuffer
	exited <-chan struct{}
}

// startCluster starts a 3-node JetStream cluster on free loopback ports,
// each node with its own store, and waits until it has a meta leader.
func startCluster(t *testing.T) []*natsNode {
	t.Helper()
	bin := natsServerBinary(t)
	port := func() string { _, p, _ := net.SplitHostPort(freePort(t)); return p }
	const n = 3
	routes := make([]string, n)
	nodes := make([]*natsNode, n)
	clusterPorts := make([]string, n)
	for i := range n {
		clusterPorts[i] = port()
		routes[i] = "nats://127.0.0.1:" + clusterPorts[i]
	}
	for i := range n {
		p, m := port(), port()
		var others []string
		for k, r := range routes {
			if k != i {
				others = append(others, r)
			}
		}
		node := &natsNode{t: t, name: fmt.Sprintf("n%d", i), client: "nats://127.0.0.1:" + p, mon: "http://127.0.0.1:" + m}
		node.args = []string{"-js", "-a", "127.0.0.1", "-p", p, "-m", m, "-n", node.name,
			"--cluster", routes[i], "--routes", strings.Join(others, ","), "--cluster_name", "junction-e2e",
			"-sd", t.TempDir()}
		node.start(bin)
		nodes[i] = node
	}
	for _, node := range nodes {
		waitReady(t, "nats-server "+node.name, 30*time.Second, node.exited, node.out, httpOK(node.mon+"/healthz"))
	}
	return nodes
}

func (n *natsNode) start(bin string) {
	n.out = &plugintest.LogBuffer{}
	n.cmd = exec.Command(bin, n.args...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = watchProcess(n.t, "nats-server "+n.name, n.cmd, n.out, 10*time.Second, false)
}

// kill stops the node with SIGKILL.
func (n *natsNode) kill() {
	n.cmd.Process.Kill()
	<-n.exited
}

// urls is the journal.url of the cluster's nodes.
func urls(nodes []*natsNode) string {
	var u []string
	for _, n := range nodes {
		u = append(u, n.client)
	}
	return strings.Join(u, ",")
}

// replicaConfig is the config every replica of a test runs: the cluster's
// nodes, 3 stream replicas, one http source, and a webhook sink.
func replicaConfig(nodes []*natsNode, stream, hook string) string {
	return replicaConfigRoutes(nodes, stream, hook, `
  - name: r
    to: [hook]
    delivery: {timeout: 2s, backoffDelay: 50ms}
`)
}

// replicaConfigRoutes is replicaConfig with routes of its own (YAML list
// items under routes:).
func replicaConfigRoutes(nodes []*natsNode, stream, hook, routes string) string {
	return fmt.Sprintf(`
http: {listen: "{{HTTP}}"}
admin: {listen: "{{ADMIN}}"}
journal: {url: %q, replicas: 3, stream: %s}
sources:
  - {name: events, type: http, path: /events}
sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 4}
routes:`, urls(nodes), stream, hook) + routes
}

// hookArrivals is a webhook sink that answers after delay (a sink with
// some latency, so that a replica always holds deliveries in flight) and
// counts an event as received only when its sender is still there to hear
// the answer (a replica killed during the request has not delivered it). It
// records when the attempt of each id received began.
type hookArrivals struct {
	*sink
	mu    sync.Mutex
	at    map[string][]time.Time
	delay time.Duration
}

func newHookArrivals(t *testing.T, delay time.Duration) *hookArrivals {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &hookArrivals{sink: &sink{ln: ln, url: "http://" + ln.Addr().String() + "/hook"}, at: map[string][]time.Time{}, delay: delay}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		e, err := cehttp.ParseEvent(r.Header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		delay := a.delay
		a.mu.Unlock()
		began := time.Now()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return // the sender is gone: not delivered
		}
		a.mu.Lock()
		a.at[e.ID()] = append(a.at[e.ID()], began)
		a.mu.Unlock()
		a.sink.mu.Lock()
		a.sink.calls++
		a.sink.events = append(a.sink.events, *e)
		a.sink.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})}
	a.sink.srv = srv
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *hookArrivals) setDelay(d time.Duration) {
	a.mu.Lock()
	a.delay = d
	a.mu.Unlock()
}

// lastArrival is when the attempt of the last event of ids (its last copy)
// began.
func (a *hookArrivals) lastArrival(ids []string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var last time.Time
	for _, id := range ids {
		for _, at := range a.at[id] {
			if at.After(last) {
				last = at
			}
		}
	}
	return last
}

// ingestBatch posts n events to urls in turn, as fast as answers come on 8
// connections, and returns once every one has been accepted.
func ingestBatch(t *testing.T, urls []string, prefix string, n int) *ingestLoad {
	s := startLoad(prefix, 8, 0, urls...)
	plugintest.Eventually(t, 60*time.Second, "batch accepted", func() bool { return s.acceptedCount() >= n })
	s.stop()
	return s
}

// deliveryRate ingests n events and returns how many per second the
// replicas delivered (from the start of ingest to the last delivery).
func deliveryRate(t *testing.T, urls []string, hook *hookArrivals, prefix string, n int) float64 {
	began := time.Now()
	s := ingestBatch(t, urls, prefix, n)
	s.waitDelivered(t, hook.sink, 60*time.Second)
	ids := s.acceptedBefore(time.Now())
	return float64(len(ids)) / hook.lastArrival(ids).Sub(began).Seconds()
}

// TestClusterReplicaKill: two replicas on a 3-node cluster under load; one
// is killed with SIGKILL. Nothing accepted is lost, and what the dead one
// held is delivered by the other within 10 s (journal.ackWait 8s). Also
// reports what two replicas and one deliver with a sink of 20 ms latency.
func TestClusterReplicaKill(t *testing.T) {
	nodes := startCluster(t)
	hook := newHookArrivals(t, 20*time.Millisecond)
	cfg := replicaConfig(nodes, fmt.Sprintf("E2E_%d", rand.Int64()), hook.url)
	a, b := start(t, cfg), start(t, cfg)
	both := []string{a.ingest + "/events", b.ingest + "/events"}

	two := deliveryRate(t, both, hook, "two-", 1500)

	// The sink slow now (1 s an answer, 4 at once per replica), so that
	// the replica killed holds deliveries; the load (about 5/s) within
	// what one replica delivers.
	hook.setDelay(time.Second)
	load := startLoad("kill-", 1, 200*time.Millisecond, both...)
	time.Sleep(4 * time.Second)
	heldBy := a.metric("junction_deliveries_total", `outcome="delivered"`)
	killed := time.Now()
	a.kill()
	time.Sleep(2 * time.Second)
	load.stop()
	load.report(t)
	load.waitDelivered(t, hook.sink, 30*time.Second)
	hook.setDelay(20 * time.Millisecond)
	// Every event accepted before the kill arrived (its last copy: the
	// dead replica's deliveries come again from the survivor) within 10 s.
	before := load.acceptedBefore(killed)
	takeover := hook.lastArrival(before).Sub(killed)
	t.Logf("replica a had delivered %v; after its kill every event accepted before it had arrived %v later; %d duplicates at the sink",
		heldBy, takeover.Round(10*time.Millisecond), hook.duplicates())
	if takeover > 10*time.Second {
		t.Errorf("the dead replica's deliveries were taken over %v after its death, want within 10s", takeover)
	}
	if load.acceptedCount() == 0 || heldBy == 0 {
		t.Fatalf("no load: %d accepted, replica a delivered %v", load.acceptedCount(), heldBy)
	}

	one := deliveryRate(t, both[1:], hook, "one-", 1500)
	t.Logf("delivery rate with a sink of 20 ms latency, concurrency 4: two replicas %.0f/s, one replica %.0f/s", two, one)
}

// streamLeader returns the node that leads stream, from a client of node.
func streamLeader(t *testing.T, nodes []*natsNode, stream string) *natsNode {
	t.Helper()
	var leader string
	plugintest.Eventually(t, 20*time.Second, "a stream leader", func() bool {
		for _, n := range nodes {
			nc, err := nats.Connect(n.client, nats.Timeout(time.Second))
			if err != nil {
				continue
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			s, err := js.Stream(c, stream)
			if err != nil {
				continue
			}
			info, err := s.Info(c)
			if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				leader = info.Cluster.Leader
				return true
			}
		}
		return false
	})
	for _, n := range nodes {
		if n.name == leader {
			return n
		}
	}
	t.Fatalf("stream leader %q is not a node of the cluster", leader)
	return nil
}

// readyWatch polls a replica's /readyz every 100 ms and records every
// answer that was not 200.
type readyWatch struct {
	mu      sync.Mutex
	not200  int
	last    int
	stopc   chan struct{}
	stopped chan struct{}
}

func watchReady(admin string) *readyWatch {
	w := &readyWatch{stopc: make(chan struct{}), stopped: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(w.stopped)
		for {
			select {
			case <-w.stopc:
				return
			case <-time.After(100 * time.Millisecond):
			}
			code := 0
			if resp, err := client.Get(admin + "/readyz"); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			w.mu.Lock()
			if code != http.StatusOK {
				w.not200++
			}
			w.last = code
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *readyWatch) stop() (not200, last int) {
	close(w.stopc)
	<-w.stopped
	return w.not200, w.last
}

// TestClusterLeaderLoss: the node that leads the journal's stream is
// killed under load. Nothing accepted is lost, no ingest request waits
// more than 10 s, /readyz is 503 while a replica cannot write and 200
// again after.
func TestClusterLeaderLoss(t *testing.T) {
	nodes := startCluster(t)
	hook := newHookArrivals(t, 0)
	stream := fmt.Sprintf("E2E_%d", rand.Int64())
	cfg := replicaConfig(nodes, stream, hook.url)
	a, b := start(t, cfg), start(t, cfg)
	load := startLoad("leader-", 4, 5*time.Millisecond, a.ingest+"/events", b.ingest+"/events")
	time.Sleep(2 * time.Second)
	leader := streamLeader(t, nodes, stream)
	wa, wb := watchReady(a.admin), watchReady(b.admin)
	killed := time.Now()
	leader.kill()
	t.Logf("killed the stream leader %s", leader.name)
	var rest []*natsNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	// Writes stop until a new leader is elected (4-9 s), then resume.
	next := streamLeader(t, rest, stream)
	newLeader := time.Since(killed)
	t.Logf("new stream leader %s", next.name)
	acceptedThen := load.acceptedCount()
	plugintest.Eventually(t, 30*time.Second, "ingest again", func() bool { return load.acceptedCount() > acceptedThen+50 })
	resumed := time.Since(killed)
	plugintest.Eventually(t, 30*time.Second, "both replicas ready again", func() bool {
		return httpOK(a.admin+"/readyz")() && httpOK(b.admin+"/readyz")()
	})
	load.stop()
	na, lastA := wa.stop()
	nb, lastB := wb.stop()
	load.report(t)
	t.Logf("new leader after %v, ingest resumed after %v; /readyz not 200: replica a %d polls, b %d (100 ms apart); last a %d, b %d",
		newLeader.Round(10*time.Millisecond), resumed.Round(10*time.Millisecond), na, nb, lastA, lastB)
	load.waitDelivered(t, hook.sink, 60*time.Second)
	t.Logf("%d duplicates at the sink of %d accepted", hook.duplicates(), load.acceptedCount())
	codes, slowest := load.summary()
	if slowest > 10*time.Second {
		t.Errorf("an ingest request took %v, want none over 10s", slowest)
	}
	// Ingest was refused while there was no leader: the replicas that
	// could not write said so on /readyz.
	if codes[http.StatusServiceUnavailable] > 0 && na+nb == 0 {
		t.Errorf("ingest answered 503 %d times but /readyz stayed 200 on both replicas", codes[http.StatusServiceUnavailable])
	}
}

// TestClusterRollingRestart: the replicas are restarted one after the
// other (SIGTERM, start again) under load through both; nothing accepted
// is lost.
func TestClusterRollingRestart(t *testing.T) {
	nodes := startCluster(t)
	hook := newHookArrivals(t, 5*time.Millisecond)
	cfg := replicaConfig(nodes, fmt.Sprintf("E2E_%d", rand.Int64()), hook.url)
	a, b := start(t, cfg), start(t, cfg)
	load := startLoad("roll-", 4, 5*time.Millisecond, a.ingest+"/events", b.ingest+"/events")
	for _, r := range []*junction{a, b} {
		time.Sleep(time.Second)
		r.stop()
		r.restart()
	}
	time.Sleep(time.Second)
	load.stop()
	load.report(t)
	load.waitDelivered(t, hook.sink, 60*time.Second)
	t.Logf("%d duplicates at the sink of %d accepted", hook.duplicates(), load.acceptedCount())
	var jsz struct {
		Streams int `json:"streams"`
	}
	getJSON(t, nodes[0].mon+"/jsz", &jsz)
	if jsz.Streams == 0 {
		t.Error("the cluster has no stream")
	}
}

// TestAttemptLongerThanAckWait: a sink that takes three ack waits to
// answer gets each event once: the replica's progress reports keep its
// deliveries (those being attempted and those waiting behind them) from
// being handed out again.
func TestAttemptLongerThanAckWait(t *testing.T) {
	hook := newHookArrivals(t, 3*time.Second)
	j := start(t, strings.Replace(base, `journal: {dir: "{{DATA}}"}`, `journal: {dir: "{{DATA}}", ackWait: 1s}`, 1)+fmt.Sprintf(`
sinks:
  - {name: hook, type: webhook, url: %q, concurrency: 2}
routes:
  - name: r
    to: [hook]
    delivery: {timeout: 10s}
`, hook.url))
	const n = 4
	for i := range n {
		if code := binaryEvent(t, j.ingest+"/events", fmt.Sprintf("slow%d", i), "t", `{}`); code != http.StatusAccepted {
			t.Fatalf("event %d: %d", i, code)
		}
	}
	plugintest.Eventually(t, 20*time.Second, "all delivered", func() bool { return hook.distinct() == n })
	time.Sleep(1500 * time.Millisecond) // a second copy would come within an ack wait
	if c, d := hook.callCount(), hook.duplicates(); c != n || d != 0 {
		t.Errorf("%d attempts, %d duplicates for %d events with attempts of 3 ack waits; want each once", c, d, n)
	}
}

// TestClusterDeadLetters: the dead-letter store lives in the cluster, so a
// dead letter made by one replica is listed and redriven by the other.
func TestClusterDeadLetters(t *testing.T) {
	nodes := startCluster(t)
	var fixed atomic.Bool
	hook := newSink(t, func(int, *event.Event) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusBadRequest // permanent: dead-lettered at once
	})
	cfg := replicaConfig(nodes, fmt.Sprintf("E2E_%d", rand.Int64()), hook.url)
	a, b := start(t, cfg), start(t, cfg)
	binaryEvent(t, a.ingest+"/events", "dl1", "t", `{}`)
	var list struct {
		DeadLetters []struct{ ID, Route, Sink string }
	}
	plugintest.Eventually(t, 20*time.Second, "the dead letter listed by the other replica", func() bool {
		getJSON(t, b.admin+"/api/v1/deadletters", &list)
		return len(list.DeadLetters) == 1
	})
	if dl := list.DeadLetters[0]; dl.Route != "r" || dl.Sink != "hook" {
		t.Fatalf("dead letter = %+v", dl)
	}
	fixed.Store(true)
	if code, body := post(t, b.admin+"/api/v1/deadletters/redrive", "application/json", nil, `{"route": "r", "sink": "hook"}`); code != http.StatusOK || !strings.Contains(body, `"redriven":1`) {
		t.Fatalf("redrive: %d %s", code, body)
	}
	plugintest.Eventually(t, 20*time.Second, "redriven event delivered", func() bool { return hook.ids()["dl1"] == 1 })
	getJSON(t, a.admin+"/api/v1/deadletters", &list)
	if len(list.DeadLetters) != 0 {
		t.Errorf("dead letters after redrive, seen by the first replica: %+v", list.DeadLetters)
	}
}

// TestClusterOrderedFailover: two replicas on the cluster, a route ordered
// by customer and one delayed by 3 s. The replica pinned to the ordered
// lane is killed (-9) mid-flow: the survivor takes the lane over, every
// customer's events arrive in order with increasing junctionseq, and the
// delayed events arrive once, after their delay, from the survivor.
func TestClusterOrderedFailover(t *testing.T) {
	nodes := startCluster(t)
	hook := newSink(t, func(int, *event.Event) int {
		time.Sleep(5 * time.Millisecond)
		return http.StatusOK
	})
	cfg := replicaConfigRoutes(nodes, fmt.Sprintf("E2E_%d", rand.Int64()), hook.url, `
  - name: orders
    filter: type == "com.example.order"
    to: [hook]
    orderBy: data.customer
    delivery: {timeout: 2s, backoffDelay: 50ms}
  - name: later
    filter: type == "later"
    to: [hook]
    delay: 3s
`)
	a, b := start(t, cfg), start(t, cfg)
	const customers, n = 4, 40
	post := func(j *junction, i int) {
		for c := range customers {
			if code := orderEvent(t, j.ingest+"/events", fmt.Sprint("c", c), i); code != http.StatusAccepted {
				t.Fatalf("POST: %d", code)
			}
		}
	}
	for i := range n / 2 {
		post([]*junction{a, b}[i%2], i)
	}
	for i := range 5 {
		if binaryEvent(t, b.ingest+"/events", fmt.Sprint("later-", i), "later", `{}`) != http.StatusAccepted {
			t.Fatal("POST later")
		}
	}
	// The replica that delivers the ordered lane is the one pinned to it.
	waitFor(t, 30*time.Second, "ordered deliveries", func() bool {
		return a.metric("junction_deliveries_total", `route="orders"`, `outcome="delivered"`)+
			b.metric("junction_deliveries_total", `route="orders"`, `outcome="delivered"`) > 0
	})
	pinned, survivor := a, b
	if b.metric("junction_deliveries_total", `route="orders"`, `outcome="delivered"`) > 0 {
		pinned, survivor = b, a
	}
	pinned.kill()
	killed := time.Now()
	for i := n / 2; i < n; i++ {
		post(survivor, i)
	}
	waitFor(t, 60*time.Second, "every ordered event", lastOrders(hook, customers, n))
	t.Logf("the survivor delivered the last ordered events %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	var ordered []event.Event
	later := map[string]int{}
	for _, e := range hook.received() {
		if e.Type() == "later" {
			later[e.ID()]++
		} else {
			ordered = append(ordered, e)
		}
	}
	checkOrder(t, ordered, customers, n)
	waitFor(t, 30*time.Second, "the delayed events", func() bool {
		n := 0
		for _, e := range hook.received() {
			if e.Type() == "later" {
				n++
			}
		}
		return n >= 5
	})
}
