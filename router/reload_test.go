package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sinks"
	_ "github.com/junctionhq/junction/sinks/webhook" // the sink whose URL a reload changes
	"github.com/junctionhq/junction/sources"
	_ "github.com/junctionhq/junction/sources/http" // the HTTP sources a reload adds and moves
)

// gateSink is a sink type for these tests: it counts what it delivers per
// sink name, in a collector that outlives the sink (a reload that rebuilds
// the sink keeps counting in the same one); with block: true every attempt
// waits until it is cut short. tag changes nothing but the config, so that
// a reload rebuilds the sink.
type gateSink struct {
	Block bool   `yaml:"block"`
	Tag   string `yaml:"tag"`
}

type gateSinkRT struct {
	block bool
	c     *collector
}

// collector counts deliveries by event id.
type collector struct {
	mu  sync.Mutex
	ids map[string]int
}

var (
	collectorsMu   sync.Mutex
	gateCollectors = map[string]*collector{}
)

func collectorOf(name string) *collector {
	collectorsMu.Lock()
	defer collectorsMu.Unlock()
	c := gateCollectors[name]
	if c == nil {
		c = &collector{ids: map[string]int{}}
		gateCollectors[name] = c
	}
	return c
}

// resetCollectors empties the collectors of names, so that a test run
// again (-count) starts from nothing.
func resetCollectors(names ...string) {
	collectorsMu.Lock()
	defer collectorsMu.Unlock()
	for _, n := range names {
		delete(gateCollectors, n)
	}
}

// counts returns how many distinct events were delivered and how many
// deliveries were of an event delivered before.
func (c *collector) counts() (distinct, dupes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.ids {
		dupes += n - 1
	}
	return len(c.ids), dupes
}

func (c *collector) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id] > 0
}

func (*gateSink) Validate() error { return nil }
func (g *gateSink) Build(_ context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return &gateSinkRT{block: g.Block, c: collectorOf(deps.Name)}, nil
}

func (g *gateSinkRT) Deliver(ctx context.Context, e *event.Event) error {
	if g.block {
		<-ctx.Done()
		return ctx.Err()
	}
	g.c.mu.Lock()
	g.c.ids[e.ID()]++
	g.c.mu.Unlock()
	return nil
}

func (*gateSinkRT) Close() error { return nil }

func init() {
	sinks.Register("test-gate", func() sinks.Config { return &gateSink{} })
}

// reloadPlan compiles yml as runRouter runs it (ingress on a free port, no
// admin listener).
func reloadPlan(t *testing.T, yml string) *Plan {
	t.Helper()
	p := compile(t, yml)
	p.Config.HTTP.Listen = "127.0.0.1:0"
	p.Config.Admin.Listen = "off"
	return p
}

func reload(t *testing.T, r *Router, yml string) ReloadResult {
	t.Helper()
	res, err := r.Reload(context.Background(), reloadPlan(t, yml))
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	return res
}

func startOpts(t *testing.T, yml string, o Options) *Router {
	t.Helper()
	o.Memory = true
	r := runRouter(t, compile(t, yml), o)
	eventually(t, 5*time.Second, "ready", r.Ready)
	return r
}

func TestReloadAddsAndRemovesRoutes(t *testing.T) {
	resetCollectors("rr-one", "rr-two")
	r := startOpts(t, `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: rr-one, type: test-gate}
  - {name: rr-two, type: test-gate}
routes:
  - {name: to-one, to: [rr-one]}
`, Options{})
	in := r.Ingester("src") // taken before the reload: it follows it
	ingestOK(t, in, newEvent("e1", "t", nil))
	one, two := collectorOf("rr-one"), collectorOf("rr-two")
	eventually(t, 10*time.Second, "e1 at rr-one", func() bool { return one.has("e1") })

	res := reload(t, r, `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: rr-one, type: test-gate}
  - {name: rr-two, type: test-gate}
routes:
  - {name: to-two, to: [rr-two]}
`)
	if got := fmt.Sprint(res.Added, res.Removed, res.Changed); got != `[route "to-two"] [route "to-one"] []` {
		t.Errorf("added, removed, changed = %s", got)
	}
	if res.Summary != "1 source, 2 sinks, 1 route" {
		t.Errorf("summary %q", res.Summary)
	}
	ingestOK(t, in, newEvent("e2", "t", nil))
	eventually(t, 10*time.Second, "e2 at rr-two", func() bool { return two.has("e2") })
	if one.has("e2") {
		t.Error("the removed route still sent e2 to rr-one")
	}
	if two.has("e1") {
		t.Error("the new route applied to e1, accepted before the reload")
	}
	if n := value(r.metrics.Reloads.WithLabelValues("success")); n != 1 {
		t.Errorf("junction_config_reloads_total{result=success} = %v, want 1", n)
	}
}

// idServer records the ids of the events posted to it.
func idServer(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		ids = append(ids, req.Header.Get("ce-id"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
}

func TestReloadChangesSinkURL(t *testing.T) {
	a, gotA := idServer(t)
	b, gotB := idServer(t)
	cfg := `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`
	r := startOpts(t, fmt.Sprintf(cfg, a.URL), Options{})
	in := r.Ingester("src")
	ingestOK(t, in, newEvent("before", "t", nil))
	eventually(t, 10*time.Second, "before at A", func() bool { return len(gotA()) == 1 })

	res := reload(t, r, fmt.Sprintf(cfg, b.URL))
	if fmt.Sprint(res.Changed) != `[sink "hook"]` {
		t.Errorf("changed = %v, want the sink", res.Changed)
	}
	ingestOK(t, in, newEvent("after", "t", nil))
	eventually(t, 10*time.Second, "after at B", func() bool { return len(gotB()) == 1 })
	if got := gotA(); len(got) != 1 {
		t.Errorf("A received %v after the reload", got)
	}
	if got := gotB(); got[0] != "after" {
		t.Errorf("B received %v", got)
	}
}

func TestReloadInvalidKeepsRunning(t *testing.T) {
	resetCollectors("ri-sink")
	good := `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: ri-sink, type: test-gate}
routes:
  - {name: r, to: [ri-sink]}
`
	var next atomic.Value
	load := func() (*Plan, error) {
		cfg, err := config.Parse("test.yaml", []byte(next.Load().(string)), os.LookupEnv)
		if err != nil {
			return nil, err
		}
		p, err := Compile(cfg)
		if err != nil {
			return nil, err
		}
		p.Config.HTTP.Listen, p.Config.Admin.Listen = "127.0.0.1:0", "off"
		return p, nil
	}
	r := startOpts(t, good, Options{Load: load})

	var re *ReloadError
	for _, bad := range []struct{ yml, want string }{
		{`
sinks:
  - {name: ri-sink, type: test-gate}
routes:
  - {name: r, to: [ri-sink]}
  - {name: s, to: [nowhere]}
`, `test.yaml:6:20: route "s": to: unknown sink "nowhere"`},
		{`
sinks:
  - {name: ri-sink, type: test-gate}
routes:
  - {name: r, to: [ri-sink], filter: 'type =='}
`, "test.yaml:5:38: route \"r\": filter: unexpected token EOF (1:7)\n"},
	} {
		next.Store(bad.yml)
		_, err := r.ReloadConfig(context.Background())
		if !errors.As(err, &re) {
			t.Fatalf("reload of an invalid config: %v, want a *ReloadError", err)
		}
		if joined := strings.Join(re.Lines, "\n"); !strings.HasPrefix(joined, bad.want) {
			t.Errorf("errors: %s\nwant %s", joined, bad.want)
		}
	}

	// A key that cannot change live.
	next.Store(good + "journal: {dir: ./elsewhere}\n")
	_, err := r.ReloadConfig(context.Background())
	if !errors.As(err, &re) || len(re.Lines) != 1 || !strings.Contains(re.Lines[0], "test.yaml: journal.dir: cannot change while junction runs (./data, now ./elsewhere); restart junction to apply it") {
		t.Errorf("reload changing journal.dir: %v", err)
	}

	next.Store(good + "journal: {archive: {maxAge: 7d}}\n")
	_, err = r.ReloadConfig(context.Background())
	if !errors.As(err, &re) || len(re.Lines) != 1 || !strings.HasPrefix(re.Lines[0], "test.yaml: journal.archive: cannot change while junction runs (none, now {MaxAge:") {
		t.Errorf("reload adding journal.archive: %v", err)
	}

	// The old config still runs.
	ingestOK(t, r.Ingester("src"), newEvent("still", "t", nil))
	c := collectorOf("ri-sink")
	eventually(t, 10*time.Second, "delivery by the running config", func() bool { return c.has("still") })
	if n := value(r.metrics.Reloads.WithLabelValues("failure")); n != 4 {
		t.Errorf("junction_config_reloads_total{result=failure} = %v, want 4", n)
	}
	if n := value(r.metrics.Reloads.WithLabelValues("success")); n != 0 {
		t.Errorf("junction_config_reloads_total{result=success} = %v, want 0", n)
	}
}

var pendingWarning = regexp.MustCompile(`^sink "rp-gate" removed: (\d+) pending deliveries stay in the journal until a config names it again \(those waiting for a retry or a delay are not counted\)$`)

func TestReloadRemovedSinkPendingStays(t *testing.T) {
	resetCollectors("rp-gate", "other")
	const blocked = `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: rp-gate, type: test-gate, block: true, concurrency: 1}
routes:
  - {name: r, to: [rp-gate], delivery: {backoffDelay: 100ms}}
`
	r := startOpts(t, blocked, Options{DrainTimeout: 200 * time.Millisecond})
	in := r.Ingester("src")
	const n = 6
	for i := range n {
		ingestOK(t, in, newEvent(fmt.Sprint("p", i), "t", nil))
	}
	res := reload(t, r, `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: other, type: test-gate}
routes:
  - {name: r2, to: [other]}
`)
	var pending int
	for _, w := range res.Warnings {
		if m := pendingWarning.FindStringSubmatch(w); m != nil {
			pending, _ = strconv.Atoi(m[1])
		}
	}
	if pending < 1 {
		t.Fatalf("warnings %q: want one saying how many deliveries of rp-gate stay", res.Warnings)
	}
	c := collectorOf("rp-gate")
	if d, _ := c.counts(); d != 0 {
		t.Fatalf("the blocked sink delivered %d events", d)
	}

	// Named again, healthy: every delivery comes back, once.
	reload(t, r, `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: rp-gate, type: test-gate}
routes:
  - {name: r, to: [rp-gate]}
`)
	eventually(t, 30*time.Second, "the pending deliveries", func() bool { d, _ := c.counts(); return d == n })
	if _, dupes := c.counts(); dupes != 0 {
		t.Errorf("%d duplicates", dupes)
	}
}

// TestReloadUnderLoad reloads several times, rebuilding the sink and adding
// and removing a route, while events are ingested: every accepted event is
// delivered exactly once.
func TestReloadUnderLoad(t *testing.T) {
	resetCollectors("ul-main", "ul-side")
	cfgA := `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: ul-main, type: test-gate, tag: a, concurrency: 8}
routes:
  - {name: main, to: [ul-main]}
`
	cfgB := `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: ul-main, type: test-gate, tag: b, concurrency: 4}
  - {name: ul-side, type: test-gate}
routes:
  - {name: main, to: [ul-main]}
  - {name: side, filter: 'type == "side"', to: [ul-side]}
`
	r := startOpts(t, cfgA, Options{})
	in := r.Ingester("src")
	var mu sync.Mutex
	accepted := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				batch := []*event.Event{newEvent(id, "t", map[string]any{"i": i})}
				if in.Ingest(context.Background(), batch) == nil {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	const reloads = 6
	c := collectorOf("ul-main")
	for i := range reloads {
		// Let some events through between reloads.
		mu.Lock()
		before := len(accepted)
		mu.Unlock()
		eventually(t, 10*time.Second, "events accepted", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(accepted) >= before+50
		})
		cfg := cfgB
		if i%2 == 1 {
			cfg = cfgA
		}
		res := reload(t, r, cfg)
		if len(res.Changed) == 0 {
			t.Errorf("reload %d changed nothing: %+v", i, res)
		}
	}
	close(stop)
	wg.Wait()
	n := len(accepted)
	eventually(t, 60*time.Second, fmt.Sprintf("%d deliveries", n), func() bool { d, _ := c.counts(); return d >= n })
	d, dupes := c.counts()
	if d != n || dupes != 0 {
		t.Errorf("accepted %d, delivered %d distinct, %d duplicates", n, d, dupes)
	}
	for id := range accepted {
		if !c.has(id) {
			t.Errorf("accepted event %s never delivered", id)
			break
		}
	}
	if got := value(r.metrics.Reloads.WithLabelValues("success")); got != reloads {
		t.Errorf("junction_config_reloads_total{result=success} = %v, want %d", got, reloads)
	}
	t.Logf("%d events accepted and delivered exactly once across %d reloads", n, reloads)
}

func TestStatusAndReloadAPI(t *testing.T) {
	resetCollectors("st-ok")
	cfg := `
sources: [{name: src, type: test-idle}]
sinks:
  - {name: st-ok, type: test-gate, rateLimit: 200/s}
  - {name: st-bad, type: test-recorder, fail: permanent}
routes:
  - {name: all, to: [st-ok]}
  - {name: bad, sources: [src], to: [st-bad]}
`
	r := startOpts(t, cfg, Options{Version: "v9.9.9", Load: func() (*Plan, error) {
		c, err := config.Parse("test.yaml", []byte(cfg), os.LookupEnv)
		if err != nil {
			return nil, err
		}
		p, err := Compile(c)
		if err != nil {
			return nil, err
		}
		p.Config.HTTP.Listen, p.Config.Admin.Listen = "127.0.0.1:0", "off"
		return p, nil
	}})
	srv := httptest.NewServer(r.adminHandler())
	defer srv.Close()
	ingestOK(t, r.Ingester("src"), newEvent("s1", "t", nil))

	type sinkJSON struct {
		Name, Type, Circuit string
		Pending             *int
		RateLimit           *string
		LastError           *string
		LastErrorAt         *time.Time
	}
	var st struct {
		Ready   bool
		Version string
		Sources []struct {
			Name, Type string
			Ready      bool
		}
		Routes []struct {
			Name        string
			Sources, To []string
		}
		Sinks []sinkJSON
	}
	eventually(t, 10*time.Second, "st-bad's last error in the status", func() bool {
		resp, err := http.Get(srv.URL + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return len(st.Sinks) == 2 && st.Sinks[1].LastError != nil
	})
	if !st.Ready || st.Version != "v9.9.9" {
		t.Errorf("ready %v, version %q", st.Ready, st.Version)
	}
	if fmt.Sprintf("%+v", st.Sources) != "[{Name:src Type:test-idle Ready:true}]" {
		t.Errorf("sources %+v", st.Sources)
	}
	if fmt.Sprintf("%+v", st.Routes) != "[{Name:all Sources:[] To:[st-ok]} {Name:bad Sources:[src] To:[st-bad]}]" {
		t.Errorf("routes %+v", st.Routes)
	}
	ok, bad := st.Sinks[0], st.Sinks[1]
	if ok.Name != "st-ok" || ok.Type != "test-gate" || ok.Circuit != "closed" || ok.RateLimit == nil || *ok.RateLimit != "200/s" || ok.LastError != nil || ok.LastErrorAt != nil || ok.Pending == nil {
		t.Errorf("st-ok %+v", ok)
	}
	if *bad.LastError != "never" || bad.LastErrorAt == nil || bad.LastErrorAt.IsZero() || bad.RateLimit != nil || bad.Circuit != "closed" {
		t.Errorf("st-bad last error %q at %v", *bad.LastError, bad.LastErrorAt)
	}

	resp, err := http.Post(srv.URL+"/api/v1/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var res ReloadResult
	if resp.StatusCode != 200 || json.Unmarshal(body, &res) != nil || res.Summary != "1 source, 2 sinks, 2 routes" || res.Unchanged != 5 {
		t.Errorf("reload: %s %s", resp.Status, body)
	}
}

// runningSource is a source type for these tests that counts, per name,
// how many of its sources run.
type runningSource struct {
	Tag string `yaml:"tag"`
}

type runningSrc struct{ name string }

var (
	runningMu sync.Mutex
	running   = map[string]int{}
)

func runningCount(name string) int {
	runningMu.Lock()
	defer runningMu.Unlock()
	return running[name]
}

func (*runningSource) Validate() error { return nil }
func (*runningSource) Build(_ context.Context, deps sources.Deps) (any, error) {
	return runningSrc{name: deps.Name}, nil
}

func (s runningSrc) Run(ctx context.Context, _ sources.Ingester) error {
	runningMu.Lock()
	running[s.name]++
	runningMu.Unlock()
	<-ctx.Done()
	runningMu.Lock()
	running[s.name]--
	runningMu.Unlock()
	return nil
}

func init() {
	sources.Register("test-running", func() sources.Config { return &runningSource{} })
}

// TestReloadSources: a removed source stops, a new one starts, a changed
// one is replaced; HTTP sources come and go on the ingress, which opens on
// the reload that adds the first one.
func TestReloadSources(t *testing.T) {
	resetCollectors("rs-sink")
	r := startOpts(t, `
sources:
  - {name: rs-keep, type: test-running}
  - {name: rs-gone, type: test-running}
sinks: [{name: rs-sink, type: test-gate}]
routes: [{name: r, to: [rs-sink]}]
`, Options{})
	eventually(t, 5*time.Second, "both sources running", func() bool { return runningCount("rs-keep") == 1 && runningCount("rs-gone") == 1 })
	if r.IngressAddr() != "" {
		t.Fatalf("ingress listening at %s without an HTTP source", r.IngressAddr())
	}
	res := reload(t, r, `
sources:
  - {name: rs-keep, type: test-running}
  - {name: rs-new, type: test-running, tag: x}
  - {name: rs-http, type: http, path: /in}
sinks: [{name: rs-sink, type: test-gate}]
routes: [{name: r, to: [rs-sink]}]
`)
	if got := fmt.Sprint(res.Added, res.Removed); got != `[source "rs-new" source "rs-http"] [source "rs-gone"]` {
		t.Errorf("added, removed = %s", got)
	}
	// Reload returns once the removed source has stopped; a new one starts
	// in its own goroutine.
	if runningCount("rs-gone") != 0 || runningCount("rs-keep") != 1 {
		t.Errorf("running: gone %d, keep %d; want 0, 1", runningCount("rs-gone"), runningCount("rs-keep"))
	}
	eventually(t, 5*time.Second, "the new source running", func() bool { return runningCount("rs-new") == 1 })
	post := func(path, id string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.IngressAddr()+path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-id", id)
		req.Header.Set("ce-source", "/t")
		req.Header.Set("ce-type", "t")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/in", "h1"); code != http.StatusAccepted {
		t.Fatalf("POST /in after the reload: %d", code)
	}
	c := collectorOf("rs-sink")
	eventually(t, 10*time.Second, "h1 delivered", func() bool { return c.has("h1") })

	// The HTTP source moves; the changed source is replaced.
	reload(t, r, `
sources:
  - {name: rs-keep, type: test-running}
  - {name: rs-new, type: test-running, tag: y}
  - {name: rs-http, type: http, path: /moved}
sinks: [{name: rs-sink, type: test-gate}]
routes: [{name: r, to: [rs-sink]}]
`)
	if code := post("/in", "h2"); code != http.StatusNotFound {
		t.Errorf("POST /in after the source moved: %d, want 404", code)
	}
	if code := post("/moved", "h3"); code != http.StatusAccepted {
		t.Errorf("POST /moved: %d, want 202", code)
	}
	// The old instance stopped before the new one started: never two.
	eventually(t, 5*time.Second, "the changed source running", func() bool { return runningCount("rs-new") == 1 })
	if n := runningCount("rs-keep"); n != 1 {
		t.Errorf("%d instances of the unchanged source run, want 1", n)
	}
}

// BenchmarkReload measures a reload that changes routes only (the sink and
// source are kept) among 1,000 routes: build, swap, no stop or start.
func BenchmarkReload(b *testing.B) {
	cfg := func(v int) string {
		var y strings.Builder
		y.WriteString("sources: [{name: src, type: test-idle}]\nsinks:\n  - {name: out, type: test-discard}\nroutes:\n")
		for i := range 1000 {
			fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"t%d.%d\"', to: [out]}\n", i, i, v)
		}
		return y.String()
	}
	plans := make([]*Plan, 2)
	for v := range plans {
		c, err := config.Parse("bench.yaml", []byte(cfg(v)), os.LookupEnv)
		if err != nil {
			b.Fatal(err)
		}
		if plans[v], err = Compile(c); err != nil {
			b.Fatal(err)
		}
		plans[v].Config.HTTP.Listen, plans[v].Config.Admin.Listen = "127.0.0.1:0", "off"
	}
	r := runRouter(b, plans[0], Options{Memory: true})
	eventually(b, 5*time.Second, "ready", r.Ready)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := r.Reload(context.Background(), plans[(i+1)%2]); err != nil {
			b.Fatal(err)
		}
	}
}
