package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sources"
)

// deduper drops the events of one source whose (source attribute, id) it
// accepted within its window (the source's dedup key). The window is the
// journal's claim log (journal.ClaimLog): each event's key is claimed before
// its deliveries are appended, confirmed after, and released when the append
// failed, so that nothing accepted is lost and a producer's retry after a
// refusal is routed:
//
//   - claimed: routed; confirmed once the append succeeded.
//   - done (confirmed within the window): a duplicate, answered as accepted
//     and counted in junction_events_duplicate_total.
//   - busy (another request, here or on another replica, holds the same
//     event and has not finished): waited for, up to the journal's write
//     timeout, then refused as unavailable so the producer retries; a
//     holder that died is taken over after twice the write timeout.
//
// The claims of the Ingest calls made at the same time share one message of
// the log, and so do their confirmations; a duplicate known to the log costs
// no write at all. With the embedded journal the claim is decided in memory
// and only the confirmation is written, after the append and without
// waiting (see journal.ClaimLog).
type deduper struct {
	marks  *journal.ClaimLog
	source string
	window time.Duration
	dupes  prometheus.Counter
	log    *slog.Logger
}

// setupMarks gives in a deduper when its source has a dedup window (on the
// journal's claim log), and makes the journal's marks for a source that
// claims (sources.ClaimsConfig): a journal that cannot hold them stops the
// start.
func (r *Router) setupMarks(ctx context.Context, in *ingester, sp SourcePlan) error {
	window := time.Duration(sp.Plugin.Dedup)
	if window > 0 {
		log, err := r.journal.ClaimLog(ctx)
		if err != nil {
			return fmt.Errorf("source %q: %w", in.source, err)
		}
		in.dedup = &deduper{marks: log, source: in.source, window: window, dupes: r.metrics.Duplicates.WithLabelValues(in.source),
			log: r.log.With("source", in.source)}
	}
	if cc, claims := sp.Config.(sources.ClaimsConfig); claims && cc.UsesClaims() {
		if _, err := r.journal.Marks(ctx); err != nil {
			return fmt.Errorf("source %q: %w", in.source, err)
		}
	}
	return nil
}

// dedupKey is the mark of an event of source: its CloudEvents source and id,
// hashed to fit a key.
func dedupKey(source string, e *event.Event) string {
	var buf [128]byte
	b := append(buf[:0], e.Source()...)
	b = append(b, 0)
	b = append(b, e.ID()...)
	sum := sha256.Sum256(b)
	var h [32]byte
	hex.Encode(h[:], sum[:16])
	return "d." + source + "." + string(h[:])
}

// busyPoll is how often a busy mark is asked again.
const busyPoll = 50 * time.Millisecond

// ingest hands route those of events that are not duplicates, and counts
// the others.
func (d *deduper) ingest(ctx context.Context, events []*event.Event, route func(context.Context, []*event.Event) error) error {
	keys := make([]string, 0, len(events))
	uniq := events
	dupes := 0
	if len(events) > 1 {
		uniq = make([]*event.Event, 0, len(events))
		seen := make(map[string]bool, len(events))
		for _, e := range events {
			k := dedupKey(d.source, e)
			if seen[k] {
				dupes++ // twice in one batch
				continue
			}
			seen[k] = true
			keys = append(keys, k)
			uniq = append(uniq, e)
		}
	} else {
		for _, e := range events {
			keys = append(keys, dedupKey(d.source, e))
		}
	}
	unavailable := func(err error) error { return &ingestError{kind: sources.ErrUnavailable, err: err} }
	marks, err := d.marks.Claim(ctx, keys, d.window)
	if err != nil {
		return unavailable(fmt.Errorf("dedup: %w", err))
	}
	// Wait for the marks that another request holds.
	var deadline time.Time
	for {
		var busy []int
		for i, mk := range marks {
			if mk.State == journal.MarkBusy {
				busy = append(busy, i)
			}
		}
		if len(busy) == 0 {
			break
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(d.marks.TakeoverAfter() / 2)
		}
		if time.Now().After(deadline) {
			d.release(ctx, marks)
			e := uniq[busy[0]]
			return unavailable(fmt.Errorf("dedup: event %s from %s is being accepted by another request since %s; retry later",
				e.ID(), e.Source(), marks[busy[0]].Since.UTC().Format(time.RFC3339)))
		}
		t := time.NewTimer(busyPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			d.release(ctx, marks)
			return unavailable(fmt.Errorf("dedup: %w", ctx.Err()))
		case <-t.C:
		}
		again := make([]string, len(busy))
		for n, i := range busy {
			again[n] = keys[i]
		}
		got, err := d.marks.Claim(ctx, again, d.window)
		if err != nil {
			d.release(ctx, marks)
			return unavailable(fmt.Errorf("dedup: %w", err))
		}
		for n, i := range busy {
			marks[i] = got[n]
		}
	}
	// Most often every event is new: then they all go, without copies.
	todo, held := uniq, marks
	if !allClaimed(marks) {
		todo = make([]*event.Event, 0, len(uniq))
		held = make([]journal.Mark, 0, len(uniq))
		for i, mk := range marks {
			switch mk.State {
			case journal.MarkClaimed:
				todo = append(todo, uniq[i])
				held = append(held, mk)
			case journal.MarkDone:
				dupes++
			}
		}
	}
	if len(todo) > 0 {
		if err := route(ctx, todo); err != nil {
			d.release(ctx, held)
			return err
		}
		// The events are accepted: the confirmations are not waited for.
		// One that is lost only costs a second routing of its event if the
		// producer sends it again after the takeover time; a copy sent
		// before the confirmation lands waits for it (busy).
		d.marks.ConfirmLater(held)
	}
	if dupes > 0 {
		d.dupes.Add(float64(dupes))
	}
	return nil
}

func allClaimed(marks []journal.Mark) bool {
	for _, mk := range marks {
		if mk.State != journal.MarkClaimed {
			return false
		}
	}
	return true
}

// release releases the marks held by this call; when that fails, they are
// taken over after the takeover time.
func (d *deduper) release(ctx context.Context, marks []journal.Mark) {
	if err := d.marks.Release(context.WithoutCancel(ctx), marks); err != nil {
		d.log.Debug("dedup: release failed; the marks are taken over after the takeover time", "takeover", d.marks.TakeoverAfter(), "err", err)
	}
}

// Claims of sources (sources.Claims), on the journal's marks.

var _ sources.Claims = (*ingester)(nil)

type claim struct {
	m    *journal.Marks
	mark journal.Mark
}

func (c claim) Confirm(ctx context.Context) error { return c.m.Confirm(ctx, []journal.Mark{c.mark}) }
func (c claim) Release(ctx context.Context) error { return c.m.Release(ctx, []journal.Mark{c.mark}) }

// Claim implements sources.Claims: the key is the source's, apart from
// every other source's.
func (in *ingester) Claim(ctx context.Context, key string, ttl time.Duration) (sources.Claim, sources.ClaimState, error) {
	m, err := in.r.journal.Marks(ctx)
	if err != nil {
		return nil, 0, err
	}
	got, err := m.Claim(ctx, []string{"t." + in.source + "." + key}, ttl)
	if err != nil {
		return nil, 0, err
	}
	switch got[0].State {
	case journal.MarkClaimed:
		return claim{m: m, mark: got[0]}, sources.ClaimHeld, nil
	case journal.MarkDone:
		return nil, sources.ClaimDone, nil
	}
	return nil, sources.ClaimBusy, nil
}

// State implements sources.Claims.
func (in *ingester) State(ctx context.Context, key string) ([]byte, error) {
	m, err := in.r.journal.Marks(ctx)
	if err != nil {
		return nil, err
	}
	return m.Get(ctx, "s."+in.source+"."+key)
}

// SetState implements sources.Claims.
func (in *ingester) SetState(ctx context.Context, key string, value []byte) error {
	m, err := in.r.journal.Marks(ctx)
	if err != nil {
		return err
	}
	return m.Put(ctx, "s."+in.source+"."+key, value)
}
