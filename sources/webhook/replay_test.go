package webhooksource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// clock is a settable time for a Webhook's now.
type clock struct{ unix atomic.Int64 }

func (c *clock) now() time.Time    { return time.Unix(c.unix.Load(), 0) }
func (c *clock) advance(d int64)   { c.unix.Add(d) }
func newClock(unix int64) *clock   { c := &clock{}; c.unix.Store(unix); return c }
func (c *clock) ts(d int64) string { return strconv.FormatInt(c.unix.Load()+d, 10) }

const replayNow = 1_700_000_000

// signedSource builds a standard-webhooks source on a settable clock.
func signedSource(t *testing.T, extra string) (*Webhook, *clock) {
	t.Helper()
	w := build(t, "path: /h\nverify:\n  scheme: standard-webhooks\n  secret: "+swSecret+extra)
	c := newClock(replayNow)
	w.now = c.now
	return w, c
}

// signed is a Standard Webhooks request for id, signed at Unix time ts.
func signed(t testing.TB, id, ts, body string) request {
	return request{path: "/h", body: body, headers: map[string]string{
		"webhook-id":        id,
		"webhook-timestamp": ts,
		"webhook-signature": signStandard(t, swSecret, id, ts, body),
		"Content-Type":      "application/json",
	}}
}

// TestReplay: a Standard Webhooks message is ingested once per webhook-id
// within the tolerance. A replay (the same signed message again), or the
// sender's retry of a message already journaled, is answered 202 so that
// the sender stops, counted as rejected "duplicate", and not ingested again.
func TestReplay(t *testing.T) {
	t.Run("same message twice", func(t *testing.T) {
		w, c := signedSource(t, "")
		rec := &sourcetest.Recorder{}
		srv := serve(t, w, rec)
		rq := signed(t, "msg_1", c.ts(0), `{"n":1}`)
		for i := range 2 {
			if resp := send(t, srv, rq); resp.status != http.StatusAccepted || resp.body != "" {
				t.Fatalf("request %d: answer %d %q, want 202", i+1, resp.status, resp.body)
			}
		}
		calls, events, rejected := rec.Snapshot()
		if calls != 1 || len(events) != 1 || events[0].ID() != "msg_1" {
			t.Errorf("%d Ingest calls, %d events; want one, msg_1", calls, len(events))
		}
		if fmt.Sprint(rejected) != fmt.Sprint(map[string]int{ReasonDuplicate: 1}) {
			t.Errorf("rejected %v, want one duplicate", rejected)
		}
	})

	t.Run("retry after a failed ingest is taken", func(t *testing.T) {
		w, c := signedSource(t, "")
		rec := &sourcetest.Recorder{Fail: func(call int, _ []*event.Event) error {
			if call == 1 {
				return fmt.Errorf("publish: %w", sources.ErrUnavailable)
			}
			return nil
		}}
		srv := serve(t, w, rec)
		rq := signed(t, "msg_1", c.ts(0), `{"n":1}`)
		if resp := send(t, srv, rq); resp.status != http.StatusServiceUnavailable {
			t.Fatalf("first: answer %d %q, want 503", resp.status, resp.body)
		}
		c.advance(30) // the sender retries a little later, same message
		if resp := send(t, srv, rq); resp.status != http.StatusAccepted {
			t.Fatalf("retry: answer %d %q, want 202", resp.status, resp.body)
		}
		if resp := send(t, srv, rq); resp.status != http.StatusAccepted {
			t.Fatalf("replay: answer %d %q, want 202", resp.status, resp.body)
		}
		calls, events, rejected := rec.Snapshot()
		if calls != 2 || len(events) != 1 {
			t.Errorf("%d Ingest calls, %d events; want 2 calls and 1 event", calls, len(events))
		}
		if rejected[ReasonDuplicate] != 1 || rejected[sources.ReasonUnavailable] != 1 {
			t.Errorf("rejected %v, want one unavailable and one duplicate", rejected)
		}
	})

	t.Run("refused event is not remembered", func(t *testing.T) {
		w := build(t, "path: /h\nattributes:\n  type: body.kind\nverify:\n  scheme: standard-webhooks\n  secret: "+swSecret)
		c := newClock(replayNow)
		w.now = c.now
		rec := &sourcetest.Recorder{}
		srv := serve(t, w, rec)
		if resp := send(t, srv, signed(t, "msg_1", c.ts(0), `{}`)); resp.status != http.StatusBadRequest {
			t.Fatalf("answer %d %q, want 400", resp.status, resp.body)
		}
		if resp := send(t, srv, signed(t, "msg_1", c.ts(1), `{"kind":"k"}`)); resp.status != http.StatusAccepted || rec.Count() != 1 {
			t.Fatalf("corrected message: answer %d %q with %d events, want 202 and 1", resp.status, resp.body, rec.Count())
		}
	})

	t.Run("different ids", func(t *testing.T) {
		w, c := signedSource(t, "")
		rec := &sourcetest.Recorder{}
		srv := serve(t, w, rec)
		for _, id := range []string{"msg_1", "msg_2", "msg_3"} {
			if resp := send(t, srv, signed(t, id, c.ts(0), `{"same":"body"}`)); resp.status != http.StatusAccepted {
				t.Fatalf("%s: answer %d %q, want 202", id, resp.status, resp.body)
			}
		}
		if _, events, rejected := rec.Snapshot(); len(events) != 3 || len(rejected) != 0 {
			t.Errorf("%d events, rejected %v; want 3 and none", len(events), rejected)
		}
	})

	t.Run("sender retry with a new timestamp", func(t *testing.T) {
		// Standard Webhooks senders keep the id and sign each attempt
		// with its own timestamp.
		w, c := signedSource(t, "")
		rec := &sourcetest.Recorder{}
		srv := serve(t, w, rec)
		send(t, srv, signed(t, "msg_1", c.ts(0), `{"n":1}`))
		c.advance(4 * 60)
		if resp := send(t, srv, signed(t, "msg_1", c.ts(0), `{"n":1}`)); resp.status != http.StatusAccepted || rec.Count() != 1 {
			t.Fatalf("retry within the tolerance: answer %d with %d events, want 202 and 1", resp.status, rec.Count())
		}
		if rec.Rejections(ReasonDuplicate) != 1 {
			t.Errorf("rejected %v, want one duplicate", rec.Reasons())
		}
	})

	t.Run("forgotten after the tolerance", func(t *testing.T) {
		w, c := signedSource(t, "\n  tolerance: 1m")
		rec := &sourcetest.Recorder{}
		srv := serve(t, w, rec)
		ts := c.ts(0)
		send(t, srv, signed(t, "msg_1", ts, `{"n":1}`))
		c.advance(61)
		// The old message is now refused by its timestamp...
		if resp := send(t, srv, signed(t, "msg_1", ts, `{"n":1}`)); resp.status != http.StatusUnauthorized {
			t.Fatalf("replay after the tolerance: answer %d %q, want 401", resp.status, resp.body)
		}
		// ... and the id is forgotten: a new attempt is taken.
		if resp := send(t, srv, signed(t, "msg_1", c.ts(0), `{"n":1}`)); resp.status != http.StatusAccepted || rec.Count() != 2 {
			t.Fatalf("new attempt: answer %d with %d events, want 202 and 2", resp.status, rec.Count())
		}
	})

	t.Run("future timestamp is remembered until its tolerance", func(t *testing.T) {
		w, c := signedSource(t, "\n  tolerance: 1m")
		rec := &sourcetest.Recorder{}
		srv := serve(t, w, rec)
		rq := signed(t, "msg_1", c.ts(50), `{"n":1}`) // the sender's clock is 50s ahead
		send(t, srv, rq)
		c.advance(100) // 50s past the timestamp: a replay still passes the check
		if resp := send(t, srv, rq); resp.status != http.StatusAccepted || rec.Count() != 1 {
			t.Fatalf("replay: answer %d with %d events, want 202 and 1", resp.status, rec.Count())
		}
	})

	t.Run("hmac-sha256 has no id", func(t *testing.T) {
		w := build(t, "path: /h\nverify:\n  scheme: hmac-sha256\n  secret: \""+githubSecret+"\"")
		rec := &sourcetest.Recorder{}
		srv := serve(t, w, rec)
		rq := request{path: "/h", body: githubPayload, headers: map[string]string{"X-Hub-Signature-256": githubSignature}}
		send(t, srv, rq)
		send(t, srv, rq)
		if w.replay != nil || rec.Count() != 2 {
			t.Errorf("%d events, want 2 (no replay protection without webhook-id)", rec.Count())
		}
	})
}

// TestReplayConcurrent sends the same message on many connections at once
// while the first Ingest is slow: exactly one is ingested, every request
// is answered 202. Run with -race.
func TestReplayConcurrent(t *testing.T) {
	for _, failFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("first ingest fails=%v", failFirst), func(t *testing.T) {
			w, c := signedSource(t, "")
			release := make(chan struct{})
			var releaseOnce sync.Once
			unblock := func() { releaseOnce.Do(func() { close(release) }) }
			rec := &sourcetest.Recorder{
				Block: func(call int) time.Duration {
					if call == 1 {
						<-release
					}
					return 0
				},
				Fail: func(call int, _ []*event.Event) error {
					if failFirst && call == 1 {
						return fmt.Errorf("publish: %w", sources.ErrUnavailable)
					}
					return nil
				},
			}
			srv := serve(t, w, rec)
			t.Cleanup(unblock) // runs before srv.Close, even on failure
			rq := signed(t, "msg_1", c.ts(0), `{"n":1}`)
			const n = 16
			codes := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes <- send(t, srv, rq).status
				}()
			}
			// Every request is either in Ingest (one) or waiting on it.
			plugintest.Eventually(t, 5*time.Second, "the first Ingest call", func() bool { return rec.Calls() == 1 })
			plugintest.Eventually(t, 5*time.Second, "the others waiting", func() bool {
				_, inflight := w.replay.size()
				return inflight == 1 && len(codes) == 0
			})
			unblock()
			wg.Wait()
			close(codes)
			got := map[int]int{}
			for code := range codes {
				got[code]++
			}
			calls, events, rejected := rec.Snapshot()
			if len(events) != 1 {
				t.Fatalf("%d events ingested (%d Ingest calls), want exactly 1", len(events), calls)
			}
			want := map[int]int{http.StatusAccepted: n}
			wantCalls := 1
			if failFirst {
				want = map[int]int{http.StatusServiceUnavailable: 1, http.StatusAccepted: n - 1}
				wantCalls = 2
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || calls != wantCalls {
				t.Errorf("answers %v with %d Ingest calls, want %v and %d", got, calls, want, wantCalls)
			}
			if rejected[ReasonDuplicate] != n-wantCalls {
				t.Errorf("rejected %v, want %d duplicates", rejected, n-wantCalls)
			}
			if seen, inflight := w.replay.size(); seen != 1 || inflight != 0 {
				t.Errorf("guard holds %d ids and %d in flight, want 1 and 0", seen, inflight)
			}
		})
	}
}

// TestReplayWaitCancelled: a request waiting for another with the same id
// whose client goes away is answered 503 and counted as cancelled.
func TestReplayWaitCancelled(t *testing.T) {
	w, c := signedSource(t, "")
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	rec := &sourcetest.Recorder{Block: func(call int) time.Duration {
		if call == 1 {
			<-release
		}
		return 0
	}}
	h := w.Handler(rec)
	rq := signed(t, "msg_1", c.ts(0), `{"n":1}`)
	newReq := func(ctx context.Context) *http.Request {
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/h", strings.NewReader(rq.body))
		for k, v := range rq.headers {
			r.Header.Set(k, v)
		}
		return r
	}
	first := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(first, newReq(context.Background()))
		close(done)
	}()
	plugintest.Eventually(t, 5*time.Second, "the first Ingest call", func() bool { return rec.Calls() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	second := httptest.NewRecorder()
	h.ServeHTTP(second, newReq(ctx))
	if second.Code != http.StatusServiceUnavailable || rec.Rejections(sources.ReasonCancelled) != 1 {
		t.Errorf("waiting request cancelled: answer %d, rejected %v; want 503 and one cancelled", second.Code, rec.Reasons())
	}
	unblock()
	<-done
	if first.Code != http.StatusAccepted || rec.Count() != 1 {
		t.Errorf("first: answer %d with %d events, want 202 and 1", first.Code, rec.Count())
	}
}

// TestReplayGuardBounded checks the guard's memory: at most max ids, the
// oldest forgotten first, and ids forgotten once their time is over.
func TestReplayGuardBounded(t *testing.T) {
	c := newClock(replayNow)
	g := newReplayGuard(time.Minute, 3, sourcetest.Logger(&plugintest.LogBuffer{}))
	ctx := context.Background()
	ingest := func(id string) bool {
		dup, done, err := g.claim(ctx, id, c.now(), c.now)
		if err != nil {
			t.Fatal(err)
		}
		if !dup {
			done(true)
			done(false) // a second call does nothing
		}
		return !dup
	}
	for i := range 5 {
		if !ingest(fmt.Sprintf("id-%d", i)) {
			t.Fatalf("id-%d: a duplicate at first sight", i)
		}
		c.advance(1)
	}
	if seen, _ := g.size(); seen != 3 {
		t.Fatalf("%d ids remembered, want at most 3", seen)
	}
	if g.evicted != 2 {
		t.Errorf("%d ids forgotten early, want 2", g.evicted)
	}
	if ingest("id-4") || ingest("id-3") || ingest("id-2") {
		t.Error("one of the 3 newest ids was forgotten")
	}
	if !ingest("id-0") {
		t.Error("the oldest id is still remembered")
	}
	c.advance(61)
	ingest("id-new")
	if seen, _ := g.size(); seen != 1 {
		t.Errorf("%d ids remembered after the tolerance, want 1 (id-new)", seen)
	}

	// Many ids over a long time: the order slice is compacted.
	g = newReplayGuard(time.Minute, MaxReplayIDs, nil)
	for i := range 50_000 {
		ingest(strconv.Itoa(i))
		if i%100 == 0 {
			c.advance(1)
		}
	}
	seen, _ := g.size()
	if seen > 6100 || len(g.order)-g.head != seen || cap(g.order) > 4*seen+2048 {
		t.Errorf("%d ids remembered, order holds %d of %d (cap %d); want about 6000 and no more", seen, len(g.order)-g.head, len(g.order), cap(g.order))
	}
}

func TestReplayClaimError(t *testing.T) {
	// The guard waits only on requests holding the id, and a released
	// claim without an ingest frees it.
	g := newReplayGuard(time.Minute, 10, nil)
	now := func() time.Time { return time.Unix(replayNow, 0) }
	_, done, _ := g.claim(context.Background(), "a", now(), now)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := g.claim(ctx, "a", now(), now); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("claim of a held id: %v, want the context's deadline", err)
	}
	if dup, _, err := g.claim(context.Background(), "b", now(), now); dup || err != nil {
		t.Fatalf("another id: dup %v, %v", dup, err)
	}
	done(false)
	dup, done2, err := g.claim(context.Background(), "a", now(), now)
	if dup || err != nil || done2 == nil {
		t.Fatalf("after a failed ingest: dup %v, %v; want the id free", dup, err)
	}
}
