package schedulesource_test

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/router"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/schedule"
)

// These tests run schedule sources against a real router and its journal
// (in memory): the router's Ingester offers sources.Claims on the journal's
// marks. Several sources of one name on one router stand for replicas
// sharing a journal.

// journalRouter runs a router without sources or routes (what the
// schedule emits is counted unrouted), journal.writeTimeout 1s.
func journalRouter(t *testing.T) *router.Router {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte("journal: {writeTimeout: 1s}\n"), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Listen, cfg.Admin.Listen = "127.0.0.1:0", "off"
	p, err := router.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(context.Background(), p, router.Options{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	plugintest.Eventually(t, 5*time.Second, "router ready", r.Ready)
	return r
}

// emitted records the events that replicas got into the journal.
type emitted struct {
	mu     sync.Mutex
	events []*event.Event
}

// replica is the router's Ingester of a source, recording what it accepts.
type replica struct {
	sources.Ingester
	sources.Claims
	out *emitted
}

func (r *replica) Ingest(ctx context.Context, events []*event.Event) error {
	if err := r.Ingester.Ingest(ctx, events); err != nil {
		return err
	}
	r.out.mu.Lock()
	r.out.events = append(r.out.events, events...)
	r.out.mu.Unlock()
	return nil
}

func (e *emitted) ticks() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int64
	for _, ev := range e.events {
		i := strings.LastIndexByte(ev.ID(), '-')
		n, _ := strconv.ParseInt(ev.ID()[i+1:], 10, 64)
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// run starts a schedule source named name from its own keys, on in, until
// the test ends.
func run(t *testing.T, name, yaml string, r *router.Router, out *emitted) {
	t.Helper()
	c, errs := plugintest.Decode(t, yaml, "source "+name, schedulesource.NewConfig)
	if errs != "" {
		t.Fatal(errs)
	}
	built, err := c.Build(context.Background(), sources.Deps{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	in := r.Ingester(name)
	rep := &replica{Ingester: in, Claims: in.(sources.Claims), out: out}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := built.(sources.Source).Run(ctx, rep); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestReplicasEmitEachTickOnce(t *testing.T) {
	r := journalRouter(t)
	out := &emitted{}
	for range 3 {
		run(t, "beat", "every: 1s\nevent: {type: t, source: /beat}", r, out)
	}
	plugintest.Eventually(t, 10*time.Second, "4 ticks", func() bool { return len(out.ticks()) >= 4 })
	got := out.ticks()
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("ticks %v: each second once, in a row", got)
		}
	}
}

func TestCatchUp(t *testing.T) {
	r := journalRouter(t)
	in := r.Ingester("nightly").(sources.Claims)
	start := time.Now()
	// The last tick emitted was 10 periods of 2s ago.
	last := start.Unix() - start.Unix()%2 - 20
	if err := in.SetState(context.Background(), "last", []byte(strconv.FormatInt(last, 10))); err != nil {
		t.Fatal(err)
	}
	out := &emitted{}
	for range 2 { // two replicas starting at the same time
		run(t, "nightly", "every: 2s\ncatchUp: true\nevent: {type: t, source: /n}", r, out)
	}
	want := start.Unix() - start.Unix()%2 // the last tick before start
	// Wait for the tick after the catch-up: then the catch-up must have
	// emitted the missed tick once, and only it.
	plugintest.Eventually(t, 10*time.Second, "the catch-up and the next tick", func() bool { return len(out.ticks()) >= 2 })
	if got := out.ticks(); got[0] != want || got[1] != want+2 {
		t.Fatalf("ticks %v, want [%d %d ...]: the last missed tick once, then the next (ticks %d..%d were missed)", got, want, want+2, last+2, want)
	}
	// The state moves on with the ticks (it is written once the tick is
	// emitted, so it may trail the emitted tick by a moment).
	plugintest.Eventually(t, 10*time.Second, "state last at the next tick", func() bool {
		v, err := in.State(context.Background(), "last")
		return err == nil && string(v) >= strconv.FormatInt(want+2, 10)
	})
}

func TestNoCatchUpByDefault(t *testing.T) {
	r := journalRouter(t)
	in := r.Ingester("quiet").(sources.Claims)
	start := time.Now()
	if err := in.SetState(context.Background(), "last", []byte(strconv.FormatInt(start.Unix()-100, 10))); err != nil {
		t.Fatal(err)
	}
	out := &emitted{}
	run(t, "quiet", "every: 1s\nevent: {type: t, source: /q}", r, out)
	// The first tick emitted is the first after the start; a catch-up
	// would have emitted the start's own second first.
	plugintest.Eventually(t, 10*time.Second, "the first tick", func() bool { return len(out.ticks()) > 0 })
	if got := out.ticks(); got[0] <= start.Unix() {
		t.Fatalf("emitted %v, a tick before the start", got)
	}
}

// TestTakeover: a replica that claimed a tick and died before emitting it
// (its claim never confirmed) does not lose the tick: another emits it once
// the claim is overdue (2 x journal.writeTimeout).
func TestTakeover(t *testing.T) {
	r := journalRouter(t)
	in := r.Ingester("beat").(sources.Claims)
	tick := time.Now().Unix() + 1
	if _, state, err := in.Claim(context.Background(), "tick."+strconv.FormatInt(tick, 10), time.Hour); err != nil || state != sources.ClaimHeld {
		t.Fatalf("claim: %v %v", state, err)
	}
	out := &emitted{}
	run(t, "beat", "every: 1s\nevent: {type: t, source: /beat}", r, out)
	run(t, "beat", "every: 1s\nevent: {type: t, source: /beat}", r, out)
	plugintest.Eventually(t, 6*time.Second, "the tick of the dead replica", func() bool {
		got := out.ticks()
		return len(got) > 0 && got[0] == tick
	})
	if at := time.Since(time.Unix(tick, 0)); at < time.Second {
		t.Errorf("taken over %v after the tick, before the claim was overdue", at)
	}
	plugintest.Eventually(t, 3*time.Second, "the ticks after it", func() bool { return len(out.ticks()) >= 3 })
	got := out.ticks()
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("ticks %v: each second once, in a row", got)
		}
	}
}
