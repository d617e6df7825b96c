package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentAppendsShareMessages appends from many writers at once and
// checks that they shared journal messages, that Pending counts entries,
// and that every entry is handed out exactly once with its fields.
func TestConcurrentAppendsShareMessages(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	const writers, each = 32, 40
	appendConcurrently(t, j, writers, each, func(w, i int) []Entry {
		return []Entry{
			{Sink: "a", Route: "ra", Data: fmt.Appendf(nil, "a-%d-%d", w, i), DeadLetter: i%3 == 0},
			{Sink: "b", Route: "rb", Data: fmt.Appendf(nil, "b-%d-%d", w, i)},
		}
	})
	msgs, entries := j.Stats()
	if entries != 2*writers*each {
		t.Fatalf("%d entries stored, want %d", entries, 2*writers*each)
	}
	if msgs >= entries {
		t.Fatalf("%d journal messages for %d entries: concurrent appends did not share messages", msgs, entries)
	}
	t.Logf("%d entries in %d journal messages", entries, msgs)

	for _, sink := range []string{"a", "b"} {
		c, err := j.Consumer(ctx, sink, ConsumeOptions{Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := c.Pending(ctx); err != nil || n != writers*each {
			t.Fatalf("pending for %s = %d, %v; want %d", sink, n, err, writers*each)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		stop := run(t, c, func(_ context.Context, d *Delivery) {
			var w, i int
			var s string
			if _, err := fmt.Sscanf(string(bytes.ReplaceAll(d.Data, []byte("-"), []byte(" "))), "%s %d %d", &s, &w, &i); err != nil || s != sink {
				t.Errorf("sink %s handed %q", sink, d.Data)
			}
			wantDL := sink == "a" && i%3 == 0
			if d.Route != "r"+sink || d.DeadLetter != wantDL || d.Attempt != 1 {
				t.Errorf("sink %s: %q has route %q dead letter %v attempt %d", sink, d.Data, d.Route, d.DeadLetter, d.Attempt)
			}
			mu.Lock()
			seen[string(d.Data)]++
			mu.Unlock()
			d.Ack()
		})
		eventually(t, 10*time.Second, "every entry of "+sink, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == writers*each
		})
		eventually(t, 5*time.Second, "pending 0 for "+sink, func() bool {
			n, err := c.Pending(ctx)
			return err == nil && n == 0
		})
		stop()
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s handed out %d times", k, n)
			}
		}
	}
}

// appendBatch stores entries for sink s in one journal message: entries of
// one Append to an idle journal go out in the same round.
func appendBatch(t *testing.T, j *Journal, data ...string) {
	t.Helper()
	var es []Entry
	for _, d := range data {
		es = append(es, Entry{Sink: "s", Route: "r", Data: []byte(d)})
	}
	before, _ := j.Stats()
	if err := j.Append(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	if after, _ := j.Stats(); after != before+1 {
		t.Fatalf("%d entries took %d journal messages, want 1", len(data), after-before)
	}
}

// TestBatchEntryRetry retries one entry of a batch: it comes back alone
// after its delay with the next attempt number, while the others are
// handed out once.
func TestBatchEntryRetry(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	appendBatch(t, j, "ok-1", "flaky", "ok-2")
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var flaky []time.Time
	var attempts []int
	others := map[string]int{}
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		mu.Lock()
		defer mu.Unlock()
		if string(d.Data) != "flaky" {
			others[string(d.Data)]++
			d.Ack()
			return
		}
		flaky = append(flaky, time.Now())
		attempts = append(attempts, d.Attempt)
		if d.Attempt < 3 {
			d.Retry(150 * time.Millisecond)
			return
		}
		d.Ack()
	})
	defer stop()
	eventually(t, 5*time.Second, "3 attempts of the flaky entry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == 3
	})
	eventually(t, 5*time.Second, "pending 0", func() bool {
		n, err := c.Pending(ctx)
		return err == nil && n == 0
	})
	time.Sleep(300 * time.Millisecond) // room for a wrong extra delivery
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Errorf("flaky entry attempts %v, want [1 2 3]", attempts)
	}
	for i := 1; i < len(flaky); i++ {
		if gap := flaky[i].Sub(flaky[i-1]); gap < 140*time.Millisecond {
			t.Errorf("attempt %d came %v after the one before, want at least the 150ms delay", i+1, gap)
		}
	}
	if others["ok-1"] != 1 || others["ok-2"] != 1 || len(others) != 2 {
		t.Errorf("the other entries were handed out %v, want once each", others)
	}
}

// TestBatchComesBackWhenRetryCannotBeStored has the journal refuse writes
// (its disk reserve out of reach) so that an entry to retry cannot be
// stored again: the whole batch is then handed out again, nothing is lost.
func TestBatchComesBackWhenRetryCannotBeStored(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	appendBatch(t, j, "first", "second")
	j.health.mu.Lock()
	j.health.reserve, j.health.diskAt = 1<<62, time.Time{}
	j.health.mu.Unlock()
	c, err := j.Consumer(ctx, "s", ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	var retryErr error
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		got.add(d)
		if d.Attempt == 1 && string(d.Data) == "second" {
			err := d.Retry(100 * time.Millisecond)
			got.mu.Lock()
			retryErr = err
			got.mu.Unlock()
			return
		}
		d.Ack()
	})
	defer stop()
	eventually(t, 5*time.Second, "both entries handed out twice", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		return len(got.seen) == 4 && retryErr != nil
	})
	got.mu.Lock()
	defer got.mu.Unlock()
	if !errors.Is(retryErr, ErrUnavailable) {
		t.Errorf("Retry into a journal refusing writes returned %v, want ErrUnavailable", retryErr)
	}
	for _, d := range got.seen[2:] {
		if d.Attempt != 2 {
			t.Errorf("%q handed out again with attempt %d, want 2", d.Data, d.Attempt)
		}
	}
}

// TestBatchComesBackAfterRestart leaves a batch partly answered when the
// process stops: all its entries come back.
func TestBatchComesBackAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := open(t, dir)
	appendBatch(t, j, "acked", "never answered")
	c, err := j.Consumer(ctx, "s", ConsumeOptions{AckWait: 500 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		got.add(d)
		if string(d.Data) == "acked" {
			d.Ack()
		}
	})
	eventually(t, 5*time.Second, "first deliveries", func() bool { return got.len() >= 2 })
	stop()
	j.Close()

	back := afterRestart(t, dir, 2)
	if a, b := string(back[0].Data), string(back[1].Data); a == b {
		t.Errorf("came back: %q and %q, want both entries", a, b)
	}
	for _, d := range back {
		if d.Attempt < 2 {
			t.Errorf("%q came back with attempt %d, want 2 or more", d.Data, d.Attempt)
		}
	}
}

// TestHeldEntriesAreKeptAlive gives a batch to a consumer whose single
// worker takes longer than the ack wait for each entry: the entries waiting
// behind the first must not be handed out a second time.
func TestHeldEntriesAreKeptAlive(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	appendBatch(t, j, "1", "2", "3", "4")
	c, err := j.Consumer(ctx, "s", ConsumeOptions{AckWait: 300 * time.Millisecond, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		time.Sleep(250 * time.Millisecond) // four of these outlast the ack wait
		got.add(d)
		d.Ack()
	})
	defer stop()
	eventually(t, 10*time.Second, "4 entries", func() bool { return got.len() >= 4 })
	time.Sleep(700 * time.Millisecond)
	if n := got.len(); n != 4 {
		t.Fatalf("%d hand-outs for 4 entries: held entries were handed out again", n)
	}
}

// TestFailedPublishDoesNotStall makes a round fail as it is sent (an entry
// over the payload limit) and checks that the journal goes on storing.
func TestFailedPublishDoesNotStall(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	for range 3 {
		err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("small")}, {Sink: "s", Route: "r", Data: make([]byte, MaxPayload+1)}})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("append with an oversized entry: %v, want ErrTooLarge", err)
		}
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := j.Append(actx, []Entry{{Sink: "s", Route: "r", Data: []byte("after")}}); err != nil {
		t.Fatalf("append after failed rounds: %v", err)
	}
}
