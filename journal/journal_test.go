package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func open(t testing.TB, dir string, mut ...func(*Options)) *Journal {
	t.Helper()
	o := Options{Dir: dir}
	for _, m := range mut {
		m(&o)
	}
	j, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return j
}

// collector records what a consumer is handed.
type collector struct {
	mu   sync.Mutex
	seen []*Delivery
}

func (c *collector) add(d *Delivery) {
	c.mu.Lock()
	c.seen = append(c.seen, d)
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func run(t *testing.T, c *Consumer, handle func(context.Context, *Delivery)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, context.Background(), handle)
	}()
	return func() { cancel(); <-done }
}

func TestAppendConsumeAck(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	var entries []Entry
	for i := range 50 {
		entries = append(entries, Entry{Sink: "a", Route: "r1", Data: fmt.Appendf(nil, "a%d", i)})
		entries = append(entries, Entry{Sink: "b", Route: "r2", Data: fmt.Appendf(nil, "b%d", i), DeadLetter: i%2 == 0})
	}
	if err := j.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if p, err := j.Pending(ctx); err != nil || len(p) != 2 || p["a"] != 50 || p["b"] != 50 {
		t.Fatalf("pending by sink = %v, %v; want a:50 b:50", p, err)
	}
	ca, err := j.Consumer(ctx, "a", ConsumeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, ca, func(_ context.Context, d *Delivery) {
		if d.Route != "r1" || d.DeadLetter || d.Attempt != 1 || d.Data[0] != 'a' {
			t.Errorf("unexpected delivery %+v", d)
		}
		got.add(d)
		d.Ack()
	})
	eventually(t, 5*time.Second, "50 deliveries to a", func() bool { return got.len() == 50 })
	stop()
	// Sink b's entries are untouched by a's consumer.
	cb, err := j.Consumer(ctx, "b", ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cb.Pending(ctx)
	if err != nil || n != 50 {
		t.Fatalf("pending for b = %d, %v; want 50", n, err)
	}
	na, _ := ca.Pending(ctx)
	if na != 0 {
		t.Fatalf("pending for a after acks = %d, want 0", na)
	}
	if p, err := j.Pending(ctx); err != nil || p["a"] != 0 || p["b"] != 50 {
		t.Fatalf("pending by sink after a's acks = %v, %v; want b:50 only", p, err)
	}
}

func TestRetryWithDelay(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	var times []time.Time
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		times = append(times, time.Now())
		got.add(d)
		if d.Attempt < 3 {
			d.Retry(150 * time.Millisecond)
			return
		}
		d.Ack()
	})
	defer stop()
	eventually(t, 5*time.Second, "3 attempts", func() bool { return got.len() == 3 })
	for i, d := range got.seen {
		if d.Attempt != i+1 {
			t.Errorf("attempt %d has Attempt %d", i+1, d.Attempt)
		}
	}
	if gap := times[1].Sub(times[0]); gap < 140*time.Millisecond {
		t.Errorf("retry came after %v, want at least the 150ms delay", gap)
	}
}

func TestUnackedEntryComesBackAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := open(t, dir)
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("keep me")}}); err != nil {
		t.Fatal(err)
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{AckWait: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) { got.add(d) }) // never answers
	eventually(t, 5*time.Second, "first delivery", func() bool { return got.len() >= 1 })
	stop()
	j.Close()

	d := afterRestart(t, dir, 1)[0]
	if string(d.Data) != "keep me" || d.Attempt < 2 {
		t.Fatalf("redelivered %q attempt %d; want the entry with attempt >= 2", d.Data, d.Attempt)
	}
}

// appendConcurrently makes each of writers goroutines append entries(w, i)
// for i up to each, all at once, and fails the test on any error.
func appendConcurrently(t *testing.T, j *Journal, writers, each int, entries func(w, i int) []Entry) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := j.Append(context.Background(), entries(w, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// afterRestart opens the journal in dir again and returns the first n
// entries its consumer of sink s hands out, each acknowledged.
func afterRestart(t *testing.T, dir string, n int) []*Delivery {
	t.Helper()
	j := open(t, dir)
	t.Cleanup(func() { j.Close() })
	c, err := j.Consumer(context.Background(), "s", ConsumeOptions{AckWait: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var again collector
	t.Cleanup(run(t, c, func(_ context.Context, d *Delivery) { again.add(d); d.Ack() }))
	eventually(t, 10*time.Second, fmt.Sprintf("%d entries after restart", n), func() bool { return again.len() >= n })
	again.mu.Lock()
	defer again.mu.Unlock()
	return append([]*Delivery(nil), again.seen[:n]...)
}

func TestFullJournalRefusesWrites(t *testing.T) {
	j := open(t, t.TempDir(), func(o *Options) { o.MaxBytes = 64 << 10 })
	defer j.Close()
	ctx := context.Background()
	big := make([]byte, 8<<10)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: big}})
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append to a full journal: %v, want ErrUnavailable", err)
	}
}

func TestTooLargeEntry(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	err := j.Append(context.Background(), []Entry{{Sink: "s", Route: "r", Data: make([]byte, MaxPayload+1)}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("append of an oversized entry: %v, want ErrTooLarge", err)
	}
}

func TestDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	defer j.Close()
	if _, err := Open(context.Background(), Options{Dir: dir}); err == nil {
		t.Fatal("second Open of the same dir succeeded; want a lock error")
	}
}

func BenchmarkAppend(b *testing.B) { benchAppend(b, FsyncInterval) }

func BenchmarkAppendFsyncAlways(b *testing.B) { benchAppend(b, FsyncAlways) }

// benchAppend appends 1 KiB entries from 16 writers on 2 cores, as with 16
// connections.
func benchAppend(b *testing.B, fsync string) {
	j := open(b, b.TempDir(), func(o *Options) { o.Fsync = fsync })
	defer j.Close()
	data := make([]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := j.Append(context.Background(), []Entry{{Sink: "s", Route: "r", Data: data}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestFsyncAlwaysGroupCommit checks that with fsync: always every append
// waits for an fsync of the stream's block files, and that concurrent
// appends share fsyncs.
func TestFsyncAlwaysGroupCommit(t *testing.T) {
	j := open(t, t.TempDir(), func(o *Options) { o.Fsync = FsyncAlways })
	defer j.Close()
	if j.gsync == nil {
		t.Fatal("fsync: always did not enable the group commit")
	}
	const writers, each = 32, 25
	appendConcurrently(t, j, writers, each, func(w, i int) []Entry {
		return []Entry{{Sink: "s", Route: "r", Data: fmt.Appendf(nil, "%d-%d", w, i)}}
	})
	j.gsync.mu.Lock()
	syncs, last := j.gsync.syncs, j.gsync.lastBlock
	j.gsync.mu.Unlock()
	if last < 1 {
		t.Fatalf("no block file was synced (lastBlock %d): the store layout is not the one expected", last)
	}
	if syncs == 0 || syncs >= writers*each {
		t.Fatalf("%d fsync rounds for %d appends: want fewer rounds than appends, and some", syncs, writers*each)
	}
	t.Logf("%d appends, %d fsync rounds", writers*each, syncs)
	c, err := j.Consumer(context.Background(), "s", ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Pending(context.Background()); n != writers*each {
		t.Fatalf("pending = %d, want %d", n, writers*each)
	}
}
