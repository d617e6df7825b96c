package journal

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// keyedEntries makes n entries per key, interleaved: k0/0, k1/0, ..., k0/1 ...
func keyedEntries(keys, n int) []Entry {
	var es []Entry
	for i := range n {
		for k := range keys {
			es = append(es, Entry{Sink: "s", Route: "r", Key: fmt.Sprint("k", k), Data: fmt.Appendf(nil, "k%d/%d", k, i)})
		}
	}
	return es
}

// orderLog records, per key, the data handed out and the sequence numbers.
type orderLog struct {
	mu   sync.Mutex
	data map[string][]int
	seqs map[string][]uint64
}

func (o *orderLog) add(d *Delivery) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.data == nil {
		o.data, o.seqs = map[string][]int{}, map[string][]uint64{}
	}
	_, n, _ := strings.Cut(string(d.Data), "/")
	i, _ := strconv.Atoi(n)
	o.data[d.Key] = append(o.data[d.Key], i)
	o.seqs[d.Key] = append(o.seqs[d.Key], d.OrderSeq)
}

func (o *orderLog) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.data {
		n += len(v)
	}
	return n
}

// check says whether each key was handed out 0..n-1 in order as a
// receiver that drops what is not above the last sequence number it
// processed sees it: what it drops must be repeats of entries processed
// (handed out again after a restart, with the same number).
func (o *orderLog) check(t *testing.T, keys, n int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range keys {
		key := fmt.Sprint("k", k)
		got, seqs := o.data[key], o.seqs[key]
		var last uint64
		want := 0
		first := map[int]uint64{}
		for i, v := range got {
			if s, ok := first[v]; ok && s != seqs[i] {
				t.Errorf("%s: entry %d came with sequence %d, then %d", key, v, s, seqs[i])
			}
			first[v] = seqs[i]
			if seqs[i] <= last {
				if v >= want {
					t.Fatalf("%s: entry %d (sequence %d) not above %d and never processed: %v", key, v, seqs[i], last, got)
				}
				continue
			}
			if v != want {
				t.Fatalf("%s handed out out of order: %v", key, got)
			}
			last, want = seqs[i], want+1
		}
		if want != n {
			t.Errorf("%s: %d of %d entries handed out: %v", key, want, n, got)
		}
	}
}

// done says whether every key has had its last entry (n-1) handed out.
func (o *orderLog) done(keys, n int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range keys {
		v := o.data[fmt.Sprint("k", k)]
		if !slices.Contains(v, n-1) {
			return false
		}
	}
	return true
}

// TestKeyedOrder: with 8 workers, the entries of each key are handed out
// one at a time, in order, with increasing sequence numbers; a key whose
// first entry fails for a while holds back only its own entries.
func TestKeyedOrder(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	const keys, n = 20, 30
	if err := j.Append(ctx, keyedEntries(keys, n)); err != nil {
		t.Fatal(err)
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Concurrency: 8, Keyed: true})
	if err != nil {
		t.Fatal(err)
	}
	var log orderLog
	var mu sync.Mutex
	inFlight := map[string]bool{}
	var overlap []string
	failUntil := time.Now().Add(time.Second)
	var k0done, othersDone time.Time
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		mu.Lock()
		if inFlight[d.Key] {
			overlap = append(overlap, d.Key)
		}
		inFlight[d.Key] = true
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inFlight[d.Key] = false
		mu.Unlock()
		if d.Key == "k0" && time.Now().Before(failUntil) {
			d.Retry(100 * time.Millisecond)
			return
		}
		log.add(d)
		d.Ack()
		mu.Lock()
		defer mu.Unlock()
		if d.Key == "k0" && k0done.IsZero() {
			k0done = time.Now()
		}
		if log.count() == (keys-1)*n && othersDone.IsZero() {
			othersDone = time.Now()
		}
	})
	defer stop()
	eventually(t, 20*time.Second, "every entry", func() bool { return log.count() == keys*n })
	log.check(t, keys, n)
	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Errorf("entries of one key attempted at the same time: %v", overlap[:min(len(overlap), 5)])
	}
	if othersDone.IsZero() || !othersDone.Before(k0done) {
		t.Errorf("the other keys were held back by the failing one (others done %v, k0's first %v)", othersDone, k0done)
	}
	if p, err := c.Pending(ctx); err != nil || p != 0 {
		t.Errorf("pending after all acknowledged: %d, %v", p, err)
	}
}

// TestKeyedOrderAcrossRestart: the process stops with entries handed out
// and not acknowledged; after a restart the rest comes in order, and an
// entry handed out again keeps its sequence number.
func TestKeyedOrderAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	const keys, n = 5, 20
	j := open(t, dir)
	if err := j.Append(ctx, keyedEntries(keys, n)); err != nil {
		t.Fatal(err)
	}
	var log orderLog
	handle := func(_ context.Context, d *Delivery) {
		log.add(d)
		d.Ack()
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Concurrency: 4, Keyed: true, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c, handle)
	eventually(t, 10*time.Second, "some entries", func() bool { return log.count() >= keys*n/3 })
	stop()
	j.Close()

	j = open(t, dir)
	defer j.Close()
	c, err = j.Consumer(ctx, "s", ConsumeOptions{Concurrency: 4, Keyed: true, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop = run(t, c, handle)
	defer stop()
	eventually(t, 20*time.Second, "every entry after the restart", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		for k := range keys {
			v := log.data[fmt.Sprint("k", k)]
			if len(v) == 0 || v[len(v)-1] != n-1 {
				return false
			}
		}
		return true
	})
	log.check(t, keys, n)
	log.mu.Lock()
	defer log.mu.Unlock()
	for k, seqs := range log.seqs {
		if !slices.IsSorted(seqs) {
			t.Errorf("%s: sequence numbers %v", k, seqs)
		}
	}
}

// TestKeyedWaitsForDeadHolder: a key's first entry was handed out to a
// process that died without answering (a fetch never acknowledged); the
// next process is handed the newer entries at once and the old one only
// after the ack wait: it must still attempt the old one first.
func TestKeyedWaitsForDeadHolder(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	for i := range 5 {
		if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Key: "k0", Data: fmt.Appendf(nil, "k0/%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Keyed: true, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The dead holder: it took the first entry and never answered.
	batch, err := c.keyed.Fetch(1, jetstream.FetchMaxWait(time.Second), jetstream.FetchPriorityGroup(pinGroup))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 1 {
		t.Fatalf("the dead holder took %d entries", n)
	}
	var log orderLog
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		log.add(d)
		d.Ack()
	})
	defer stop()
	eventually(t, 10*time.Second, "every entry", func() bool { return log.count() >= 5 })
	log.check(t, 1, 5)
}

// TestFailingKeyBlocksOnlyItself: key k0's first entry fails for a while
// and its producer keeps sending, many times the lane's window (10
// messages); the other keys' entries, which share journal messages with
// k0's, all go meanwhile (k0's are parked), then k0's go, in order, with
// their sequence numbers; across a restart in the middle.
func TestFailingKeyBlocksOnlyItself(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	ctx := context.Background()
	const keys, n = 4, 60
	for i := range n {
		var es []Entry
		for k := range keys {
			es = append(es, Entry{Sink: "s", Route: "r", Key: fmt.Sprint("k", k), Data: fmt.Appendf(nil, "k%d/%d", k, i)})
		}
		if err := j.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	opts := ConsumeOptions{Concurrency: 4, Keyed: true, MaxPending: 10, AckWait: time.Second}
	c, err := j.Consumer(ctx, "s", opts)
	if err != nil {
		t.Fatal(err)
	}
	var log orderLog
	var failing atomic.Bool
	failing.Store(true)
	handle := func(_ context.Context, d *Delivery) {
		if d.Key == "k0" && failing.Load() {
			d.Retry(20 * time.Millisecond)
			return
		}
		log.add(d)
		d.Ack()
	}
	stop := run(t, c, handle)
	eventually(t, 20*time.Second, "the other keys while k0 fails", func() bool { return log.done(keys, n) || log.count() >= (keys-1)*n })
	if log.done(keys, n) {
		t.Fatal("k0 went while failing")
	}
	// Restart with k0's entries parked, then let k0 through.
	stop()
	j.Close()
	j = open(t, dir)
	defer j.Close()
	if c, err = j.Consumer(ctx, "s", opts); err != nil {
		t.Fatal(err)
	}
	failing.Store(false)
	stop = run(t, c, handle)
	defer stop()
	eventually(t, 20*time.Second, "k0's entries", func() bool { return log.done(keys, n) })
	log.check(t, keys, n)
	eventually(t, 5*time.Second, "no entry left", func() bool {
		p, err := c.Pending(ctx)
		return err == nil && p == 0
	})
}
