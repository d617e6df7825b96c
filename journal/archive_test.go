package journal

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func withArchive(o *Options) { o.Archive, o.ArchiveMaxAge = true, time.Hour }

// readAll reads every event of [from, to) from the archive.
func readAll(t *testing.T, j *Journal, from, to time.Time) []ArchivedEvent {
	t.Helper()
	ctx := context.Background()
	r, err := j.ReadArchive(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var out []ArchivedEvent
	for {
		evs, done, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if done {
			return out
		}
	}
}

// TestArchiveKeepsAppendedEvents: archive entries appended with deliveries
// (and alone) are in the archive when Append returns, survive a restart,
// and a read returns those of its period only, with source and time.
func TestArchiveKeepsAppendedEvents(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, withArchive)
	ctx := context.Background()
	// Three periods of 20 events each, appended by 4 writers at once.
	var marks [4]time.Time
	for p := range 3 {
		marks[p] = time.Now()
		appendConcurrently(t, j, 4, 5, func(w, i int) []Entry {
			n := p*20 + w*5 + i
			data := []byte(fmt.Sprintf("event-%d", n))
			es := []Entry{ArchiveEntry(fmt.Sprintf("src%d", w), time.Now(), data)}
			if n%2 == 0 {
				es = append(es, Entry{Sink: "s", Route: "r", Data: data})
			}
			return es
		})
	}
	marks[3] = time.Now()
	msgs, _, err := j.archiveInfo(ctx)
	if err != nil || msgs == 0 {
		t.Fatalf("archive after appends: %d messages, %v", msgs, err)
	}
	j.Close()

	j = open(t, dir, withArchive)
	defer j.Close()
	got := readAll(t, j, marks[1], marks[2])
	if len(got) != 20 {
		t.Fatalf("read the second period: %d events, want 20: %+v", len(got), got)
	}
	seen := map[string]bool{}
	for _, e := range got {
		var n int
		fmt.Sscanf(string(e.Data), "event-%d", &n)
		if n < 20 || n >= 40 || seen[string(e.Data)] {
			t.Errorf("read the second period: got %s", e.Data)
		}
		seen[string(e.Data)] = true
		if e.Accepted.Before(marks[1]) || !e.Accepted.Before(marks[2]) || e.Source != fmt.Sprintf("src%d", (n%20)/5) {
			t.Errorf("%s: source %s accepted %v, want src%d in [%v, %v)", e.Data, e.Source, e.Accepted, (n%20)/5, marks[1], marks[2])
		}
	}
	if got := readAll(t, j, marks[0], marks[3]); len(got) != 60 {
		t.Errorf("read all: %d events, want 60", len(got))
	}
	if got := readAll(t, j, marks[3], time.Now().Add(time.Hour)); len(got) != 0 {
		t.Errorf("read after the last: %d events, want 0", len(got))
	}
	// No deliveries were made of the archive entries.
	if p, err := j.Pending(ctx); err != nil || p["s"] != 30 {
		t.Errorf("pending deliveries: %v, %v; want 30 for s", p, err)
	}
}

// TestArchiveOff: without Options.Archive there is no archive stream and no
// job bucket.
func TestArchiveOff(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	if _, err := j.ReadArchive(ctx, time.Now(), time.Now()); !errors.Is(err, ErrArchiveOff) {
		t.Errorf("read archive: %v, want ErrArchiveOff", err)
	}
	if _, err := j.GetReplayJob(ctx, "x"); !errors.Is(err, ErrArchiveOff) {
		t.Errorf("get job: %v, want ErrArchiveOff", err)
	}
}

// TestArchiveOnlyAppendWhileFull: an append of archive entries only (an
// event no route matched) is taken while the deliveries stream is full.
func TestArchiveOnlyAppendWhileFull(t *testing.T) {
	j := open(t, t.TempDir(), withArchive, func(o *Options) { o.MaxBytes = 64 << 10 })
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
	if err := j.Append(ctx, []Entry{ArchiveEntry("src", time.Now(), []byte("x"))}); err != nil {
		t.Fatalf("archive-only append to a full journal: %v", err)
	}
}

// TestReplayJobs: jobs are created once, updated by revision, listed.
func TestReplayJobs(t *testing.T) {
	j := open(t, t.TempDir(), withArchive)
	defer j.Close()
	ctx := context.Background()
	if _, err := j.GetReplayJob(ctx, "a"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("get unknown: %v, want ErrNoJob", err)
	}
	if jobs, err := j.ReplayJobs(ctx); err != nil || len(jobs) != 0 {
		t.Fatalf("list empty: %v, %v", jobs, err)
	}
	rev, err := j.PutReplayJob(ctx, "a", []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.PutReplayJob(ctx, "a", []byte("x"), 0); !errors.Is(err, ErrJobChanged) {
		t.Errorf("create twice: %v, want ErrJobChanged", err)
	}
	rev2, err := j.PutReplayJob(ctx, "a", []byte("2"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.PutReplayJob(ctx, "a", []byte("3"), rev); !errors.Is(err, ErrJobChanged) {
		t.Errorf("update an old revision: %v, want ErrJobChanged", err)
	}
	job, err := j.GetReplayJob(ctx, "a")
	if err != nil || string(job.Data) != "2" || job.Revision != rev2 {
		t.Errorf("get: %+v, %v", job, err)
	}
	j.PutReplayJob(ctx, "b", []byte("b"), 0)
	if jobs, err := j.ReplayJobs(ctx); err != nil || len(jobs) != 2 {
		t.Errorf("list: %+v, %v; want 2 jobs", jobs, err)
	}
}

// TestArchiveFullDropsOldest: past ArchiveMaxBytes the oldest events go;
// appends never fail for it.
func TestArchiveFullDropsOldest(t *testing.T) {
	j := open(t, t.TempDir(), withArchive, func(o *Options) { o.ArchiveMaxBytes = 64 << 10 })
	defer j.Close()
	ctx := context.Background()
	from := time.Now()
	big := make([]byte, 8<<10)
	for i := range 100 {
		if err := j.Append(ctx, []Entry{ArchiveEntry("src", time.Now(), big), {Sink: "s", Route: "r", Data: []byte("x")}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	_, bytes, err := j.archiveInfo(ctx)
	if err != nil || bytes > 64<<10 {
		t.Fatalf("archive holds %d bytes (%v), want at most 64KiB", bytes, err)
	}
	got := readAll(t, j, from, time.Now())
	if len(got) == 0 || len(got) >= 10 {
		t.Errorf("read %d events, want the newest few", len(got))
	}
}

// TestArchiveFsyncAlways: with fsync: always, an append of archive entries
// returns after an fsync of the archive's block files too.
func TestArchiveFsyncAlways(t *testing.T) {
	j := open(t, t.TempDir(), withArchive, func(o *Options) { o.Fsync = FsyncAlways })
	defer j.Close()
	if j.arSync == nil {
		t.Fatal("fsync: always did not enable the archive's group commit")
	}
	appendConcurrently(t, j, 8, 10, func(w, i int) []Entry {
		return []Entry{{Sink: "s", Route: "r", Data: []byte("x")}, ArchiveEntry("src", time.Now(), []byte("x"))}
	})
	j.arSync.mu.Lock()
	syncs, last := j.arSync.syncs, j.arSync.lastBlock
	j.arSync.mu.Unlock()
	if syncs == 0 || last < 1 {
		t.Fatalf("archive: %d fsync rounds, last block %d; want some (is the store layout the one expected?)", syncs, last)
	}
}
