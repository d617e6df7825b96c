package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sources"
)

const dedupConfig = `
journal: {writeTimeout: 1s}
sources:
  - {name: src, type: test-idle, dedup: 1m}
  - {name: plain, type: test-idle}
sinks:
  - {name: %[1]s, type: test-recorder}
routes:
  - {name: r, to: [%[1]s]}
`

func ingestOK(t *testing.T, in sources.Ingester, events ...*event.Event) {
	t.Helper()
	if err := in.Ingest(context.Background(), events); err != nil {
		t.Fatalf("ingest: %v", err)
	}
}

func ids(evs []event.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Source()+"/"+e.ID())
	}
	return strings.Join(s, " ")
}

func TestDedupDuplicateNotRouted(t *testing.T) {
	r := startRouter(t, compile(t, fmt.Sprintf(dedupConfig, "dd1")))
	rec := recorderNamed("dd1")
	in := r.Ingester("src")
	e1, e2 := newEvent("1", "t", nil), newEvent("2", "t", nil)
	ingestOK(t, in, e1)
	ingestOK(t, in, e1)              // a duplicate: accepted, not routed
	ingestOK(t, in, e2, e2, e1)      // e2 twice in one batch, e1 again
	other := newEvent("1", "t", nil) // same id, another CloudEvents source
	other.SetSource("/other")
	ingestOK(t, in, other)
	// A source without dedup routes every copy.
	ingestOK(t, r.Ingester("plain"), e1, e1)
	eventually(t, 5*time.Second, "5 deliveries", func() bool { return len(rec.got()) >= 5 })
	time.Sleep(100 * time.Millisecond)
	// In any order: the sink takes several deliveries at once.
	got := strings.Fields(ids(rec.got()))
	sort.Strings(got)
	if s := strings.Join(got, " "); s != "/other/1 /test/1 /test/1 /test/1 /test/2" {
		t.Errorf("delivered %s", s)
	}
	if n := value(r.metrics.Duplicates.WithLabelValues("src")); n != 3 {
		t.Errorf("junction_events_duplicate_total{source=src} = %v, want 3", n)
	}
	if n := value(r.metrics.Received.WithLabelValues("src")); n != 3 {
		t.Errorf("junction_events_received_total{source=src} = %v, want 3 (duplicates are not received again)", n)
	}
}

// TestDedupFailedAppendReleases: an event refused by the journal is not
// remembered: the producer's retry is routed.
func TestDedupFailedAppendReleases(t *testing.T) {
	r := startRouter(t, compile(t, fmt.Sprintf(dedupConfig, "dd2")))
	rec := recorderNamed("dd2")
	in := r.Ingester("src")
	huge := newEvent("big", "t", map[string]string{"x": strings.Repeat("x", 9<<20)})
	if err := in.Ingest(context.Background(), []*event.Event{huge}); !errors.Is(err, sources.ErrTooLarge) {
		t.Fatalf("huge event: %v, want ErrTooLarge", err)
	}
	ingestOK(t, in, newEvent("big", "t", map[string]string{"x": "small now"}))
	eventually(t, 5*time.Second, "the retry delivered", func() bool { return len(rec.got()) == 1 })
}

// TestDedupTakeover: a mark left pending by a holder that died (claimed,
// never confirmed) makes a copy wait, then refused as unavailable, and is
// taken over after twice the write timeout: the copy is then routed.
func TestDedupTakeover(t *testing.T) {
	r := startRouter(t, compile(t, fmt.Sprintf(dedupConfig, "dd3")))
	rec := recorderNamed("dd3")
	in := r.Ingester("src")
	e := newEvent("crash", "t", nil)
	m, err := r.journal.ClaimLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Claim(context.Background(), []string{dedupKey("src", e)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = in.Ingest(context.Background(), []*event.Event{e})
	if !errors.Is(err, sources.ErrUnavailable) {
		t.Fatalf("copy while the mark is pending: %v, want ErrUnavailable", err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond || waited > 3*time.Second {
		t.Errorf("waited %v for the pending mark, want about the write timeout (1s)", waited)
	}
	eventually(t, 5*time.Second, "the copy routed after takeover", func() bool {
		return in.Ingest(context.Background(), []*event.Event{e}) == nil
	})
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("taken over after %v, before 2 x writeTimeout", took)
	}
	eventually(t, 5*time.Second, "delivered", func() bool { return len(rec.got()) == 1 })
	ingestOK(t, in, e)
	time.Sleep(100 * time.Millisecond)
	if n := len(rec.got()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// TestDedupConcurrent: copies of the same events ingested at the same time
// by many producers are routed once each.
func TestDedupConcurrent(t *testing.T) {
	r := startRouter(t, compile(t, fmt.Sprintf(dedupConfig, "dd4")))
	rec := recorderNamed("dd4")
	in := r.Ingester("src")
	const events, copies = 100, 4
	var wg sync.WaitGroup
	for c := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events {
				e := newEvent(fmt.Sprint((i+c*7)%events), "t", nil)
				if err := in.Ingest(context.Background(), []*event.Event{e}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, 5*time.Second, "all delivered", func() bool { return len(rec.got()) >= events })
	time.Sleep(100 * time.Millisecond)
	seen := map[string]int{}
	for _, e := range rec.got() {
		seen[e.ID()]++
	}
	if len(seen) != events || len(rec.got()) != events {
		t.Errorf("%d deliveries of %d events, want %d", len(rec.got()), len(seen), events)
	}
	if n := value(r.metrics.Duplicates.WithLabelValues("src")); n != events*(copies-1) {
		t.Errorf("duplicates %v, want %d", n, events*(copies-1))
	}
}

// benchParallelism is how many producers per core BenchmarkIngestDedup
// runs (JUNCTION_BENCH_PARALLELISM, default 8).
var benchParallelism = func() int {
	if n, err := strconv.Atoi(os.Getenv("JUNCTION_BENCH_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 8
}()

// BenchmarkIngestDedup measures ingest throughput (Ingest calls of one
// event, 8 x GOMAXPROCS producers, journal on disk, 10 routes) with a dedup
// window on the source and without, in the same run.
func BenchmarkIngestDedup(b *testing.B) {
	benchIngestDedup(b, func(b *testing.B) string { return fmt.Sprintf("{dir: %q}", b.TempDir()) })
}

// BenchmarkIngestDedupShared is BenchmarkIngestDedup with the journal on a
// nats-server on loopback (journal.url, as replicas share it): there the
// claim log is read back before the append.
func BenchmarkIngestDedupShared(b *testing.B) {
	benchIngestDedup(b, func(b *testing.B) string { return fmt.Sprintf("{url: %q}", natsServer(b)) })
}

func benchIngestDedup(b *testing.B, journalYAML func(*testing.B) string) {
	for _, batch := range []int{1, 10} {
		for _, dedup := range []string{"off", "10m"} {
			b.Run(fmt.Sprintf("batch=%d/dedup=%s", batch, dedup), func(b *testing.B) {
				var y strings.Builder
				fmt.Fprintf(&y, "journal: %s\nsources:\n  - {name: src, type: test-idle", journalYAML(b))
				if dedup != "off" {
					fmt.Fprintf(&y, ", dedup: %s", dedup)
				}
				y.WriteString("}\nsinks:\n  - {name: out, type: test-discard, concurrency: 32}\nroutes:\n")
				for i := 1; i < 10; i++ {
					fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"other.%d\"', to: [out]}\n", i, i)
				}
				y.WriteString("  - {name: hit, filter: 'type == \"bench\"', to: [out]}\n")
				in := benchRouter(b, y.String())
				data := map[string]any{"n": 1, "payload": strings.Repeat("x", 1000)}
				var next atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				b.SetParallelism(benchParallelism)
				b.RunParallel(func(pb *testing.PB) {
					evs := make([]*event.Event, batch)
					for pb.Next() {
						for i := range evs {
							evs[i] = newEvent(strconv.FormatInt(next.Add(1), 10), "bench", data)
						}
						if err := in.Ingest(context.Background(), evs); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// natsServer starts a nats-server (go.mod's version) with JetStream on a
// loopback port until the test ends and returns its URL: routers whose
// journal.url names it are replicas of one journal.
func natsServer(t testing.TB) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// TestDedupReplicasRace: two routers, replicas of one journal on one
// server, receive copies of the same events at the same time, several
// producers each: every event is delivered once, and each copy but one is
// counted as a duplicate by the replica that received it.
func TestDedupReplicasRace(t *testing.T) {
	url := natsServer(t)
	yml := fmt.Sprintf("journal: {url: %q, writeTimeout: 2s}\n", url) + strings.SplitN(fmt.Sprintf(dedupConfig, "dd5"), "\n", 3)[2]
	var routers []*Router
	var recs []*recorder
	for range 2 {
		routers = append(routers, startRouter(t, compile(t, yml)))
		recs = append(recs, recorderNamed("dd5"))
	}
	const events, producers = 100, 3
	var wg sync.WaitGroup
	for _, r := range routers {
		in := r.Ingester("src")
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range events {
					e := newEvent(fmt.Sprint((i+p*31)%events), "t", nil)
					for {
						err := in.Ingest(context.Background(), []*event.Event{e})
						if err == nil {
							break
						}
						if !errors.Is(err, sources.ErrUnavailable) {
							t.Error(err)
							return
						}
						// Busy past the wait: the producer tries again.
					}
				}
			}()
		}
	}
	wg.Wait()
	delivered := func() []event.Event { return append(recs[0].got(), recs[1].got()...) }
	eventually(t, 10*time.Second, "all delivered", func() bool { return len(delivered()) >= events })
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	for _, e := range delivered() {
		seen[e.ID()]++
	}
	if len(seen) != events || len(delivered()) != events {
		t.Errorf("%d deliveries of %d events, want %d", len(delivered()), len(seen), events)
	}
	dupes := value(routers[0].metrics.Duplicates.WithLabelValues("src")) + value(routers[1].metrics.Duplicates.WithLabelValues("src"))
	if dupes != events*(2*producers-1) {
		t.Errorf("duplicates %v, want %d", dupes, events*(2*producers-1))
	}
}

// TestDedupAcrossRestartInProcess: a router that starts again on the same
// journal directory keeps the window: an event accepted before is a
// duplicate after.
func TestDedupAcrossRestartInProcess(t *testing.T) {
	dir := t.TempDir()
	yml := fmt.Sprintf("journal: {dir: %q, writeTimeout: 1s}\n", dir) + strings.SplitN(fmt.Sprintf(dedupConfig, "dd6"), "\n", 3)[2]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := compile(t, yml)
	p.Config.HTTP.Listen, p.Config.Admin.Listen = "127.0.0.1:0", "off"
	r, err := New(ctx, p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, 5*time.Second, "ready", r.Ready)
	ingestOK(t, r.Ingester("src"), newEvent("1", "t", nil), newEvent("2", "t", nil))
	eventually(t, 5*time.Second, "delivered", func() bool { return len(recorderNamed("dd6").got()) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	r = runRouter(t, compile(t, yml), Options{})
	eventually(t, 5*time.Second, "ready", r.Ready)
	rec := recorderNamed("dd6")
	ingestOK(t, r.Ingester("src"), newEvent("1", "t", nil), newEvent("3", "t", nil), newEvent("2", "t", nil))
	eventually(t, 5*time.Second, "3 delivered", func() bool { return len(rec.got()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := ids(rec.got()); got != "/test/3" {
		t.Errorf("delivered after the restart: %s, want /test/3", got)
	}
	if n := value(r.metrics.Duplicates.WithLabelValues("src")); n != 2 {
		t.Errorf("duplicates after the restart: %v, want 2", n)
	}
}

// TestDedupReadsOldMarks: a journal whose dedup window an earlier version
// kept (marks in the bucket <Stream>_DEDUP) keeps it: an event it accepted
// is a duplicate, one it was accepting (pending) waits for the takeover.
func TestDedupReadsOldMarks(t *testing.T) {
	dir := t.TempDir()
	accepted, accepting := newEvent("old", "t", nil), newEvent("crashed", "t", nil)
	j, err := journal.Open(context.Background(), journal.Options{Dir: dir, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := j.Marks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// What the earlier version wrote: claim, append, confirm.
	got, err := m.Claim(context.Background(), []string{dedupKey("src", accepted), dedupKey("src", accepting)}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Confirm(context.Background(), got[:1]); err != nil {
		t.Fatal(err)
	}
	j.Close()

	// The pending mark is taken over 2 x writeTimeout after it was made:
	// 3 s leaves the router's start under load (it took over 2 s in a CI
	// run) well inside it.
	yml := fmt.Sprintf("journal: {dir: %q, writeTimeout: 3s}\n", dir) + strings.SplitN(fmt.Sprintf(dedupConfig, "dd7"), "\n", 3)[2]
	r := runRouter(t, compile(t, yml), Options{})
	eventually(t, 5*time.Second, "ready", r.Ready)
	rec := recorderNamed("dd7")
	in := r.Ingester("src")
	ingestOK(t, in, accepted, newEvent("new", "t", nil))
	if err := in.Ingest(context.Background(), []*event.Event{accepting}); !errors.Is(err, sources.ErrUnavailable) {
		t.Errorf("an event pending in the old bucket: %v, want ErrUnavailable until the takeover", err)
	}
	eventually(t, 15*time.Second, "taken over", func() bool { return in.Ingest(context.Background(), []*event.Event{accepting}) == nil })
	eventually(t, 5*time.Second, "delivered", func() bool { return len(rec.got()) == 2 })
	time.Sleep(100 * time.Millisecond)
	if got := ids(rec.got()); got != "/test/new /test/crashed" {
		t.Errorf("delivered %s, want /test/new /test/crashed", got)
	}
}

// TestDedupKeyUnchanged: the key of an event is the one earlier versions
// used (their marks are read when the claim log opens).
func TestDedupKeyUnchanged(t *testing.T) {
	e := newEvent("order-1", "t", nil)
	h := sha256.New()
	h.Write([]byte(e.Source()))
	h.Write([]byte{0})
	h.Write([]byte(e.ID()))
	if want := "d.orders." + hex.EncodeToString(h.Sum(nil)[:16]); dedupKey("orders", e) != want {
		t.Errorf("key %s, want %s (as earlier versions)", dedupKey("orders", e), want)
	}
}
