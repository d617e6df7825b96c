package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/plugintest"
)

// fakeDisk makes the journal read free space from free, on a filesystem of
// size bytes.
func fakeDisk(t *testing.T, free *atomic.Int64, size int64) {
	old := statfs
	statfs = func(string) (int64, int64, error) { return free.Load(), size, nil }
	t.Cleanup(func() { statfs = old })
}

func messagesSent(j *Journal) uint64 {
	m, _ := j.Stats()
	return m
}

// TestDiskReserve checks journal.minFreeSpace: a round of appends that would
// leave less free space than the reserve is refused without being sent, the
// journal is then unhealthy and refuses every append at once, and it takes
// writes again on its own once there is room, with every entry stored before
// still there (also after a reload of the store, when the disk came close to
// full).
func TestDiskReserve(t *testing.T) {
	const reserve = 32 << 20
	var free atomic.Int64
	free.Store(1 << 30)
	fakeDisk(t, &free, 100<<30)
	j := open(t, t.TempDir(), func(o *Options) { o.MinFreeSpace = reserve })
	defer j.Close()
	ctx := context.Background()
	stored := 0
	appendOne := func() error {
		err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("small")}})
		if err == nil {
			stored++
		}
		return err
	}
	if err := appendOne(); err != nil {
		t.Fatal(err)
	}
	if err := j.Health(); err != nil {
		t.Fatalf("health with room: %v", err)
	}

	// 1 MiB over the reserve: a round of 2 MiB does not fit.
	free.Store(reserve + 1<<20)
	big := []Entry{{Sink: "s", Route: "r", Data: make([]byte, 1<<20)}, {Sink: "s", Route: "r", Data: make([]byte, 1<<20)}}
	var err error
	eventually(t, 2*time.Second, "a round refused for the reserve", func() bool {
		if err = j.Append(ctx, big); err == nil {
			stored += len(big)
		}
		return err != nil
	})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "disk full: ") || !strings.Contains(err.Error(), "reserve 32 MiB") {
		t.Fatalf("append over the reserve: %v; want ErrUnavailable naming the disk and the reserve", err)
	}
	h := j.Health()
	if !errors.Is(h, ErrUnavailable) || !strings.HasPrefix(h.Error(), "disk full: ") {
		t.Fatalf("health after a refusal for the reserve: %v; want disk full", h)
	}
	// Now every append is refused before it is sent.
	sent := messagesSent(j)
	if err := appendOne(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append while below the reserve: %v, want ErrUnavailable", err)
	}
	if messagesSent(j) != sent {
		t.Fatal("an append refused for the reserve was sent to JetStream")
	}

	// Room again: healthy without any write.
	free.Store(1 << 30)
	eventually(t, 3*time.Second, "healthy once there is room", func() bool { return j.Health() == nil })
	if err := appendOne(); err != nil {
		t.Fatalf("append once there is room: %v", err)
	}

	// Close to full: the store is reloaded before writes resume.
	free.Store(1 << 20)
	eventually(t, 3*time.Second, "unhealthy when nearly full", func() bool { return j.Health() != nil })
	if err := appendOne(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append when nearly full: %v, want ErrUnavailable", err)
	}
	free.Store(1 << 30)
	eventually(t, 10*time.Second, "healthy after a reload", func() bool { return j.Health() == nil })
	if err := appendOne(); err != nil {
		t.Fatalf("append after a reload: %v", err)
	}
	if p, err := j.Pending(ctx); err != nil || p["s"] != uint64(stored) {
		t.Fatalf("pending = %v, %v; want s:%d (every entry stored)", p, err, stored)
	}
}

// TestMaxBytesHealth fills a journal to MaxBytes: the refusal makes it
// unhealthy at once, and it is healthy again once its entries are consumed.
func TestMaxBytesHealth(t *testing.T) {
	j := open(t, t.TempDir(), func(o *Options) { o.MaxBytes = 64 << 10 })
	defer j.Close()
	ctx := context.Background()
	if err := j.Health(); err != nil {
		t.Fatalf("health of an empty journal: %v", err)
	}
	var err error
	stored := 0
	for i := 0; i < 100 && err == nil; i++ {
		if err = j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: make([]byte, 4<<10)}}); err == nil {
			stored++
		}
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append to a full journal: %v, want ErrUnavailable", err)
	}
	h := j.Health()
	if !errors.Is(h, ErrUnavailable) || !strings.HasPrefix(h.Error(), "journal full: ") || !strings.Contains(h.Error(), "journal.maxBytes 64 KiB") {
		t.Fatalf("health right after a refusal: %v; want journal full naming journal.maxBytes", h)
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		got.add(d)
		d.Ack()
	})
	defer stop()
	eventually(t, 5*time.Second, "every entry consumed", func() bool { return got.len() == stored })
	eventually(t, 5*time.Second, "healthy once consumed", func() bool { return j.Health() == nil })
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("after")}}); err != nil {
		t.Fatalf("append after the journal was drained: %v", err)
	}
}

// TestFullWhileRetryingStaysFull fills a journal to MaxBytes while its
// sink fails every attempt: retried entries wait in the delay stream, out
// of the deliveries stream's own limit, and move back and forth, so room
// comes and goes with nothing leaving. What both streams hold stays about
// MaxBytes (it was 25 times that, counted only once a second), and the
// journal stays full until entries are delivered, then takes writes again.
func TestFullWhileRetryingStaysFull(t *testing.T) {
	const maxBytes = 64 << 10
	j := open(t, t.TempDir(), func(o *Options) { o.MaxBytes = maxBytes })
	defer j.Close()
	ctx := context.Background()
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Concurrency: 64})
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		if up.Load() {
			d.Ack()
			return
		}
		d.Retry(300 * time.Millisecond)
	})
	defer stop()
	// Entries share journal messages, as concurrent ingests do: while a
	// message's entries are being retried, each is stored twice (in the
	// message, which is acknowledged once all are, and in the delay
	// stream), and the room comes back once it is acknowledged.
	stored := 0
	batch := make([]Entry, 20)
	for i := range batch {
		batch[i] = Entry{Sink: "s", Route: "r", Data: make([]byte, 100)}
	}
	for err == nil {
		if err = j.Append(ctx, batch); err == nil {
			stored += len(batch)
		}
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append to a full journal: %v, want ErrUnavailable", err)
	}
	for end := time.Now().Add(4 * healthEvery); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if used := streamBytes(t, j); used > 2*maxBytes {
			t.Fatalf("the deliveries and delay streams hold %d bytes; want at most about journal.maxBytes (%d)", used, maxBytes)
		}
		if h := j.Health(); h == nil {
			t.Fatalf("healthy again with %d entries stored and none delivered; want full while they are retried", stored)
		}
	}
	up.Store(true)
	eventually(t, 10*time.Second, "healthy once delivered", func() bool { return j.Health() == nil })
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("after")}}); err != nil {
		t.Fatalf("append after the journal was drained: %v", err)
	}
}

// TestFullEstimateReopens makes the count of bytes sent since the last
// reading say full while the journal holds nothing (the count ignores
// removals): new entries are refused, and with nothing left to deliver the
// journal opens again once the monitor reads it (half of it free), rather
// than waiting for a delivery that never comes.
func TestFullEstimateReopens(t *testing.T) {
	const maxBytes = 1 << 20
	j := open(t, t.TempDir(), func(o *Options) { o.MaxBytes = maxBytes })
	defer j.Close()
	ctx := context.Background()
	h := j.health
	h.mu.Lock()
	h.usedSent, h.readAt = 2*maxBytes, time.Now().Add(time.Hour) // a reading that stays fresh
	h.mu.Unlock()
	err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("x")}})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "journal full") {
		t.Fatalf("append with the count at twice maxBytes: %v; want journal full", err)
	}
	eventually(t, 5*time.Second, "healthy again with nothing stored", func() bool { return j.Health() == nil })
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("y")}}); err != nil {
		t.Fatalf("append once open again: %v", err)
	}
}

// streamBytes is what the deliveries and delay streams of j hold.
func streamBytes(t *testing.T, j *Journal) int64 {
	t.Helper()
	var n int64
	for _, s := range []jetstream.Stream{j.stream, j.delayStream} {
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += int64(info.State.Bytes)
	}
	return n
}

func TestSubjectMatch(t *testing.T) {
	for _, c := range []struct {
		filter, subject string
		want            bool
	}{
		{"a.b.>", "a.b.c", true},
		{"a.b.>", "a.b.c.d", true},
		{"a.b.>", "a.b", false},
		{"a.bc.>", "a.b.c", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.b", "a.b", true},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
	} {
		if got := subjectMatch(c.filter, c.subject); got != c.want {
			t.Errorf("subjectMatch(%q, %q) = %v, want %v", c.filter, c.subject, got, c.want)
		}
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 512: "512 B", 4 << 10: "4 KiB", 12<<20 + 300<<10: "12 MiB", 3<<30 + 1<<29: "3.5 GiB", 32 << 20: "32 MiB"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

// testLog writes a log to the test's log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestStoreWriteErrorRecovers lets JetStream meet a full disk (no reserve):
// its file store then keeps the write error, leaves publishes unanswered and
// removes nothing acknowledged. Appends fail within the write timeout, the
// journal says why, and once the disk has room it reloads the store, takes
// writes again and removes the entries acknowledged meanwhile: nothing is
// lost and nothing is left in the stream.
func TestStoreWriteErrorRecovers(t *testing.T) {
	dir := plugintest.MountTmpfs(t, "24m")
	j := open(t, filepath.Join(dir, "journal"), func(o *Options) {
		o.WriteTimeout = time.Second
		o.Logger = slog.New(slog.NewTextHandler(testLog{t}, nil))
	})
	defer j.Close()
	ctx := context.Background()
	const n = 200
	for i := range n {
		if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: fmt.Appendf(nil, "entry %d %s", i, make([]byte, 1<<10))}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	filler := plugintest.FillDisk(t, dir)
	for i := 0; i < 1000 && err == nil; i++ {
		err = j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: make([]byte, 64<<10)}})
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append to a full disk: %v, want ErrUnavailable", err)
	}
	eventually(t, 5*time.Second, "a store write error in the health", func() bool {
		h := j.Health()
		return h != nil && strings.Contains(h.Error(), "no space left")
	})
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("x")}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append while the store is broken: %v, want ErrUnavailable", err)
	}
	// Deliveries go on meanwhile; their acknowledgements remove nothing.
	seen := map[string]bool{}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		got.add(d)
		d.Ack()
	})
	defer stop()
	eventually(t, 10*time.Second, "the entries delivered while the store is broken", func() bool { return got.len() >= n })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "healthy once the disk has room", func() bool { return j.Health() == nil })
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("after")}}); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	eventually(t, 20*time.Second, "an empty stream", func() bool {
		p, err := j.Pending(ctx)
		return err == nil && len(p) == 0
	})
	got.mu.Lock()
	for _, d := range got.seen {
		seen[string(d.Data)] = true
	}
	got.mu.Unlock()
	for i := range n {
		if !seen[string(fmt.Appendf(nil, "entry %d %s", i, make([]byte, 1<<10)))] {
			t.Errorf("entry %d was never delivered", i)
		}
	}
	if !seen["after"] {
		t.Error("the entry appended after recovery was never delivered")
	}
}

func TestStoreFailureIgnoresConnectionReadiness(t *testing.T) {
	for e, want := range map[string]bool{
		"": false,
		"failed to be ready for connections after 1ms: ":                         false,
		"failed to be ready for connections after 1ms: startup did not complete": false,
		"JetStream stream 'JUNCTION' is not current":                             true,
		"write error: no space left on device":                                   true,
	} {
		if got := storeFailure(e); got != want {
			t.Errorf("storeFailure(%q) = %v, want %v", e, got, want)
		}
	}
}
