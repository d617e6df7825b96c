package webhooksource

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"time"
)

// ReasonDuplicate labels junction_events_rejected_total for a Standard
// Webhooks message whose webhook-id was already ingested within the
// tolerance: it is answered 202, so that the sender stops, but not ingested
// again.
const ReasonDuplicate = "duplicate"

// MaxReplayIDs bounds how many webhook-ids a source remembers. Beyond it the
// oldest are forgotten before their time (and a replay of those could be
// ingested again); at the default tolerance of 5m that takes a sustained
// 333 messages/s.
const MaxReplayIDs = 100_000

// replayGuard remembers the webhook-ids of the Standard Webhooks messages a
// source ingested, so that a replay (the same signed message again, or the
// sender retrying one whose 2xx it did not see) within the tolerance is not
// ingested twice. An id is kept until the tolerance has passed since it was
// ingested and since its webhook-timestamp: after that, the timestamp check
// refuses a replay of that message anyway.
//
// The set is in process: each replica (and each restart, or reload of the
// source) has its own. A dedup window kept in the journal and shared by
// replicas is planned separately; this guard stays as the cheap first check.
//
// An id is recorded only once its event is in the journal: a request the
// journal refused leaves the id free for the sender's retry. While one
// request with an id is being ingested, another with the same id waits for
// its outcome, so that exactly one of them is ingested.
type replayGuard struct {
	tolerance time.Duration
	max       int
	log       *slog.Logger

	mu       sync.Mutex
	seen     map[replayKey]time.Time // id → until when it is remembered
	order    []seenID                // ids in the order recorded, from head
	head     int
	inflight map[replayKey]chan struct{} // ids being ingested; closed when done
	evicted  uint64                      // ids forgotten early, at max
}

// replayKey is the SHA-256 of a webhook-id: ids of any length cost the same.
type replayKey [sha256.Size]byte

type seenID struct {
	key   replayKey
	until time.Time
}

func newReplayGuard(tolerance time.Duration, max int, log *slog.Logger) *replayGuard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &replayGuard{
		tolerance: tolerance,
		max:       max,
		log:       log,
		seen:      make(map[replayKey]time.Time),
		inflight:  make(map[replayKey]chan struct{}),
	}
}

// claim is called for a verified message with webhook-id id and
// webhook-timestamp ts; now is the clock. dup reports that the id was
// ingested within the window: the message must not be ingested again.
// Otherwise the caller holds the id and must call done, with whether its
// event is now in the journal (calls after the first do nothing). While
// another request holds the id, claim waits for its outcome; err is ctx's
// error when ctx ends first.
func (g *replayGuard) claim(ctx context.Context, id string, ts time.Time, now func() time.Time) (dup bool, done func(ingested bool), err error) {
	key := replayKey(sha256.Sum256([]byte(id)))
	for {
		g.mu.Lock()
		t := now()
		g.expire(t)
		if until, ok := g.seen[key]; ok && !t.After(until) {
			g.mu.Unlock()
			return true, nil, nil
		}
		busy, ok := g.inflight[key]
		if !ok {
			ch := make(chan struct{})
			g.inflight[key] = ch
			g.mu.Unlock()
			var once sync.Once
			return false, func(ingested bool) {
				once.Do(func() { g.release(key, ch, ingested, now(), ts) })
			}, nil
		}
		g.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return false, nil, ctx.Err()
		}
	}
}

// release ends the claim of key: when ingested, the id is remembered until
// the tolerance has passed since now and since ts, the message's
// webhook-timestamp; the requests waiting for the id go on.
func (g *replayGuard) release(key replayKey, ch chan struct{}, ingested bool, now, ts time.Time) {
	g.mu.Lock()
	delete(g.inflight, key)
	if ingested {
		until := now
		if ts.After(until) {
			until = ts
		}
		g.record(key, until.Add(g.tolerance), now)
	}
	g.mu.Unlock()
	close(ch)
}

// record remembers key until until, forgetting the oldest ids beyond max.
// g.mu is held.
func (g *replayGuard) record(key replayKey, until, now time.Time) {
	g.expire(now)
	if _, ok := g.seen[key]; !ok {
		for len(g.seen) >= g.max && g.head < len(g.order) {
			if g.forgetHead() {
				g.evicted++
				if g.evicted == 1 {
					g.log.Warn("webhook: more webhook-ids within the tolerance than remembered; the oldest are forgotten early, and a replay of them would be ingested again",
						"max", g.max, "tolerance", g.tolerance)
				}
			}
		}
	}
	g.seen[key] = until
	g.order = append(g.order, seenID{key, until})
}

// expire forgets the ids whose time has passed, oldest first. Ids are
// recorded nearly in the order of their until; one that outlives those
// after it holds them a little longer (at most twice the tolerance), which
// is harmless. g.mu is held.
func (g *replayGuard) expire(now time.Time) {
	for g.head < len(g.order) && now.After(g.order[g.head].until) {
		g.forgetHead()
	}
}

// forgetHead drops the oldest entry of order, and its id unless the id was
// recorded again since. It reports whether it forgot an id. g.mu is held.
func (g *replayGuard) forgetHead() (forgot bool) {
	s := g.order[g.head]
	g.order[g.head] = seenID{}
	g.head++
	if until, ok := g.seen[s.key]; ok && until.Equal(s.until) {
		delete(g.seen, s.key)
		forgot = true
	}
	// Compact once the dropped part is the larger half.
	if g.head > 1024 && g.head*2 > len(g.order) {
		n := copy(g.order, g.order[g.head:])
		clear(g.order[n:])
		g.order = g.order[:n]
		g.head = 0
	}
	return forgot
}

// size returns how many ids are remembered and being ingested, for tests.
func (g *replayGuard) size() (seen, inflight int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen), len(g.inflight)
}
