package journal

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func marks(t *testing.T, j *Journal) *Marks {
	t.Helper()
	m, err := j.Marks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func states(ms []Mark) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += " "
		}
		s += m.State.String()
	}
	return s
}

func TestMarksClaimConfirmRelease(t *testing.T) {
	ctx := context.Background()
	j := open(t, "", func(o *Options) { o.Memory = true })
	defer j.Close()
	m := marks(t, j)

	got, err := m.Claim(ctx, []string{"a", "b", "c"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s := states(got); s != "claimed claimed claimed" {
		t.Fatalf("first claim: %s", s)
	}
	// Pending and fresh: busy for another caller.
	again, err := m.Claim(ctx, []string{"a", "b", "c", "d"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s := states(again); s != "busy busy busy claimed" {
		t.Fatalf("claim while pending: %s", s)
	}
	if err := m.Confirm(ctx, got[:1]); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(ctx, got[1:2]); err != nil {
		t.Fatal(err)
	}
	third, err := m.Claim(ctx, []string{"a", "b"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s := states(third); s != "done claimed" {
		t.Fatalf("after confirm and release: %s", s)
	}
	// c was never confirmed: its holder "died". Past the takeover time,
	// the next claim takes it.
	m.now = func() time.Time { return time.Now().Add(m.TakeoverAfter() + time.Second) }
	fourth, err := m.Claim(ctx, []string{"c"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s := states(fourth); s != "claimed" {
		t.Fatalf("overdue pending mark: %s", s)
	}
	// The first holder's late confirmation does not undo the takeover.
	if err := m.Confirm(ctx, got[2:3]); err != nil {
		t.Fatal(err)
	}
	m.now = time.Now
	fifth, err := m.Claim(ctx, []string{"c"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s := states(fifth); s != "busy" {
		t.Fatalf("after the old holder's late confirm: %s", s)
	}
}

func TestMarksExpire(t *testing.T) {
	ctx := context.Background()
	j := open(t, "", func(o *Options) { o.Memory = true })
	defer j.Close()
	m := marks(t, j)
	got, err := m.Claim(ctx, []string{"k"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Confirm(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Claim(ctx, []string{"k"}, time.Second); states(got) != "done" {
		t.Fatalf("within ttl: %s", states(got))
	}
	eventually(t, 5*time.Second, "the mark to expire", func() bool {
		got, err := m.Claim(ctx, []string{"k"}, time.Second)
		return err == nil && states(got) == "claimed"
	})
}

// TestMarksSurviveRestart: a confirmed mark and a state value are in the
// store after the journal is reopened.
func TestMarksSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j := open(t, dir)
	m := marks(t, j)
	got, err := m.Claim(ctx, []string{"d.src.x", "d.src.y"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Confirm(ctx, got[:1]); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "st.src", []byte("42")); err != nil {
		t.Fatal(err)
	}
	j.Close()

	j = open(t, dir)
	defer j.Close()
	m = marks(t, j)
	again, err := m.Claim(ctx, []string{"d.src.x", "d.src.y"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// y was left pending by the "crashed" process: busy until overdue.
	if s := states(again); s != "done busy" {
		t.Fatalf("after restart: %s", s)
	}
	v, err := m.Get(ctx, "st.src")
	if err != nil || string(v) != "42" {
		t.Fatalf("state after restart: %q, %v", v, err)
	}
	if v, err := m.Get(ctx, "st.none"); err != nil || v != nil {
		t.Fatalf("absent state: %q, %v", v, err)
	}
}

// TestMarksRace: many callers claiming the same keys at once: each key is
// claimed by exactly one.
func TestMarksRace(t *testing.T) {
	ctx := context.Background()
	j := open(t, "", func(o *Options) { o.Memory = true })
	defer j.Close()
	m := marks(t, j)
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := m.Claim(ctx, keys, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, mk := range got {
				if mk.State == MarkClaimed {
					claimed[mk.Key]++
				}
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if claimed[k] != 1 {
			t.Errorf("key %s claimed %d times", k, claimed[k])
		}
	}
}

func BenchmarkMarksClaimConfirm(b *testing.B) {
	ctx := context.Background()
	j := open(b, b.TempDir())
	defer j.Close()
	m, err := j.Marks(ctx)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 10)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range keys {
			keys[k] = fmt.Sprintf("b%d.%d", i, k)
		}
		got, err := m.Claim(ctx, keys, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Confirm(ctx, got); err != nil {
			b.Fatal(err)
		}
	}
}
