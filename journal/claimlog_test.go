package journal

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsServer starts a nats-server (go.mod's version) with JetStream on a
// loopback port until the test ends, and returns its URL: journals that
// open it share it, as replicas do.
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

func claimLog(t testing.TB, j *Journal) *ClaimLog {
	t.Helper()
	c, err := j.ClaimLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claimOK claims keys and returns the marks, failing the test on error.
func claimOK(t testing.TB, c *ClaimLog, keys ...string) []Mark {
	t.Helper()
	got, err := c.Claim(context.Background(), keys, time.Minute)
	if err != nil {
		t.Fatalf("claim %v: %v", keys, err)
	}
	return got
}

// confirmOK confirms marks, as the router does after an append.
func confirmOK(t testing.TB, c *ClaimLog, marks []Mark) {
	t.Helper()
	c.ConfirmLater(marks)
}

// TestClaimLogStates: in local mode (embedded) and shared mode (an
// external server), claim, busy, confirm (done), release (claimed again).
func TestClaimLogStates(t *testing.T) {
	for _, mode := range []string{"local", "shared"} {
		t.Run(mode, func(t *testing.T) {
			j := open(t, t.TempDir(), func(o *Options) {
				if mode == "shared" {
					o.Dir, o.URL = "", natsServer(t)
				}
			})
			defer j.Close()
			c := claimLog(t, j)
			if c.local != (mode == "local") {
				t.Fatalf("local = %v", c.local)
			}
			got := claimOK(t, c, "a", "b", "c")
			if s := states(got); s != "claimed claimed claimed" {
				t.Fatalf("first claim: %s", s)
			}
			if s := states(claimOK(t, c, "a", "b", "c", "d")); s != "busy busy busy claimed" {
				t.Fatalf("claim while pending: %s", s)
			}
			confirmOK(t, c, got[:1])
			if err := c.Release(context.Background(), got[1:2]); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "a done", func() bool { return states(claimOK(t, c, "a")) == "done" })
			// b released: claimed again (busy until the release is read
			// back, in shared mode).
			eventually(t, 10*time.Second, "b claimed again", func() bool { return states(claimOK(t, c, "b")) == "claimed" })
		})
	}
}

// TestClaimLogReplicasRace: two journals (replicas) on one server claim
// the same keys at the same time, many callers each: every key is claimed
// by exactly one caller (the first claim in stream order wins), and once
// it is confirmed both replicas find it done.
func TestClaimLogReplicasRace(t *testing.T) {
	url := natsServer(t)
	var logs []*ClaimLog
	for range 2 {
		j := open(t, "", func(o *Options) { o.Dir, o.URL = "", url })
		defer j.Close()
		logs = append(logs, claimLog(t, j))
	}
	const keys, callers = 200, 4
	var mu sync.Mutex
	winners := map[string]int{}
	var wg sync.WaitGroup
	for r, c := range logs {
		for n := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range keys {
					k := fmt.Sprintf("k%d", (i+n*13+r*29)%keys)
					for {
						got, err := c.Claim(context.Background(), []string{k}, time.Minute)
						if err != nil {
							t.Error(err)
							return
						}
						if got[0].State == MarkBusy {
							time.Sleep(time.Millisecond)
							continue // wait for the holder
						}
						if got[0].State == MarkClaimed {
							mu.Lock()
							winners[k]++
							mu.Unlock()
							c.ConfirmLater(got)
						}
						break
					}
				}
			}()
		}
	}
	wg.Wait()
	if len(winners) != keys {
		t.Errorf("%d keys claimed, want %d", len(winners), keys)
	}
	for k, n := range winners {
		if n != 1 {
			t.Errorf("%s claimed %d times", k, n)
		}
	}
	for _, c := range logs {
		eventually(t, 10*time.Second, "both keys done", func() bool { return states(claimOK(t, c, "k0", "k199")) == "done done" })
	}
}

// TestClaimLogTakeover: a claim left pending by a replica that died (never
// confirmed) holds its key, then another replica takes it over after the
// takeover time; a late confirmation of the first claim changes nothing.
func TestClaimLogTakeover(t *testing.T) {
	url := natsServer(t)
	var logs []*ClaimLog
	for range 2 {
		j := open(t, "", func(o *Options) { o.Dir, o.URL, o.WriteTimeout = "", url, 200*time.Millisecond })
		defer j.Close()
		logs = append(logs, claimLog(t, j))
	}
	a, b := logs[0], logs[1]
	dead := claimOK(t, a, "k")
	if s := states(dead); s != "claimed" {
		t.Fatalf("first claim: %s", s)
	}
	start := time.Now()
	if s := states(claimOK(t, b, "k")); s != "busy" {
		t.Fatalf("claim while pending: %s", s)
	}
	var took []Mark
	eventually(t, 10*time.Second, "taken over", func() bool { took = claimOK(t, b, "k"); return took[0].State == MarkClaimed })
	if waited := time.Since(start); waited < a.TakeoverAfter()/2 {
		t.Errorf("taken over after %v, takeover time %v", waited, a.TakeoverAfter())
	}
	a.ConfirmLater(dead) // too late: b holds it
	if s := states(claimOK(t, a, "k")); s != "busy" {
		t.Fatalf("after a late confirmation: %s, want busy (b's claim pending)", s)
	}
	confirmOK(t, b, took)
	for _, c := range logs {
		eventually(t, 10*time.Second, "done", func() bool { return states(claimOK(t, c, "k")) == "done" })
	}
}

// flush waits until the records queued so far are stored (they are
// stored in order).
func flush(t testing.TB, c *ClaimLog) {
	t.Helper()
	if _, err := c.publish(context.Background(), claimRecord{op: opRelease, ttl: time.Second}); err != nil {
		t.Fatal(err)
	}
}

// TestClaimLogRestart: a process that opens the journal again reads the
// log: confirmed keys are done, released ones free; a pending claim is
// busy, and taken over after the takeover time (shared mode: it may be
// another replica's), or forgotten (local mode: its request died with the
// process and was never answered).
func TestClaimLogRestart(t *testing.T) {
	for _, mode := range []string{"local", "shared"} {
		t.Run(mode, func(t *testing.T) {
			dir, url := t.TempDir(), ""
			if mode == "shared" {
				dir, url = "", natsServer(t)
			}
			j := open(t, dir, func(o *Options) { o.URL, o.WriteTimeout = url, 500*time.Millisecond })
			c := claimLog(t, j)
			got := claimOK(t, c, "done", "pending", "released")
			confirmOK(t, c, got[:1])
			if err := c.Release(context.Background(), got[2:]); err != nil {
				t.Fatal(err)
			}
			flush(t, c)
			j.Close()

			j = open(t, dir, func(o *Options) { o.URL, o.WriteTimeout = url, 500*time.Millisecond })
			defer j.Close()
			c = claimLog(t, j)
			want := "done busy claimed claimed"
			if mode == "local" {
				want = "done claimed claimed claimed"
			}
			if s := states(claimOK(t, c, "done", "pending", "released", "new")); s != want {
				t.Fatalf("after restart: %s, want %s", s, want)
			}
			if mode == "shared" {
				c.now = func() time.Time { return time.Now().Add(c.TakeoverAfter() + time.Second) }
				// The claim record's time is the journal's: wait for it
				// to pass the takeover time too.
				eventually(t, 2*c.TakeoverAfter()+5*time.Second, "pending taken over", func() bool {
					return states(claimOK(t, c, "pending")) == "claimed"
				})
				if s := states(claimOK(t, c, "done")); s != "done" {
					t.Fatalf("after the takeover time: %s", s)
				}
			}
			c.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
			if mode == "local" {
				if s := states(claimOK(t, c, "done")); s != "claimed" {
					t.Fatalf("after the window: %s", s)
				}
			}
		})
	}
}

// TestClaimLogReadsOldMarks: marks of sources with dedup that an earlier
// version kept in the bucket <Stream>_DEDUP hold in the claim log: a
// journal written by that version keeps its window.
func TestClaimLogReadsOldMarks(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	m := marks(t, j)
	old, err := m.Claim(context.Background(), []string{"d.src.confirmed", "d.src.pending", "t.sched.tick"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Confirm(context.Background(), []Mark{old[0], old[2]}); err != nil {
		t.Fatal(err)
	}
	j.Close()

	j = open(t, dir)
	defer j.Close()
	c := claimLog(t, j)
	if s := states(claimOK(t, c, "d.src.confirmed", "d.src.pending", "d.src.new", "t.sched.tick")); s != "done busy claimed claimed" {
		t.Fatalf("old marks: %s", s)
	}
	// The window of the old marks ends with their TTL.
	c.now = func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
	if s := states(claimOK(t, c, "d.src.confirmed")); s != "claimed" {
		t.Fatalf("after the old TTL: %s", s)
	}
}

// TestClaimLogCoalesces: concurrent claims share messages of the log.
func TestClaimLogCoalesces(t *testing.T) {
	j := open(t, "", func(o *Options) { o.Memory = true })
	defer j.Close()
	c := claimLog(t, j)
	var wg sync.WaitGroup
	const callers, each = 16, 50
	for n := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				got := claimOK(t, c, fmt.Sprintf("k%d-%d", n, i))
				confirmOK(t, c, got)
			}
		}()
	}
	wg.Wait()
	flush(t, c)
	info, err := c.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	records := callers*each + 1 // one accepted record per call, and flush's
	t.Logf("%d records in %d messages", records, info.State.Msgs)
	if info.State.Msgs >= uint64(records) {
		t.Errorf("%d messages for %d records: not coalesced", info.State.Msgs, records)
	}
}

func TestClaimRecordsRoundTrip(t *testing.T) {
	recs := []*claimRecord{
		{op: opClaim, ttl: 10 * time.Minute, takeover: 10 * time.Second, keys: []string{"d.src.a", "d.src.b"}},
		{op: opConfirm, ref: claimRef{12345678901, 3}, keys: []string{"d.src.a"}},
		{op: opRelease, ref: claimRef{1, 0}, keys: nil},
		{op: opAccepted, ttl: time.Hour, takeover: 2 * time.Second, keys: []string{"d.src.c"}},
	}
	got, err := decodeClaims(encodeClaims(recs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		want := *recs[i]
		if want.op != opClaim && want.op != opAccepted {
			want.ttl = 0
		}
		if want.keys == nil {
			want.keys = []string{}
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1, 1}, {1, 1, 'x'}, {1, 1, 'c', 1, 1, 5, 0}, append(encodeClaims(recs), 0)} {
		if _, err := decodeClaims(bad); err == nil {
			t.Errorf("%v decoded", bad)
		}
	}
}

// FuzzDecodeClaims: a message of the claim log (another replica's, or a
// damaged one) never panics the reader, and what decodes encodes back the
// same.
func FuzzDecodeClaims(f *testing.F) {
	f.Add(encodeClaims([]*claimRecord{{op: opClaim, ttl: time.Minute, takeover: time.Second, keys: []string{"d.s.k"}}}))
	f.Add(encodeClaims([]*claimRecord{{op: opConfirm, ref: claimRef{7, 1}, keys: []string{"a", "b"}}, {op: opRelease, ref: claimRef{9, 0}}}))
	f.Add([]byte{1, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeClaims(b)
		if err != nil {
			return
		}
		ptrs := make([]*claimRecord, len(recs))
		for i := range recs {
			ptrs[i] = &recs[i]
		}
		again, err := decodeClaims(encodeClaims(ptrs))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-encoded: %v, %d records of %d", err, len(again), len(recs))
		}
	})
}
