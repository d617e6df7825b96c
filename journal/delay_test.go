package journal

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestDelayedEntries: entries with NotBefore wait in the delay stream, not
// in their lane, and are handed out no earlier than due, soon after.
func TestDelayedEntries(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	start := time.Now()
	due := map[string]time.Time{}
	var entries []Entry
	for i, d := range []time.Duration{300 * time.Millisecond, 1200 * time.Millisecond, 2500 * time.Millisecond, 0} {
		name := fmt.Sprint("e", i)
		due[name] = start.Add(d)
		e := Entry{Sink: "s", Route: "r", Data: []byte(name)}
		if d > 0 {
			e.NotBefore = start.Add(d)
		}
		entries = append(entries, e)
	}
	if err := j.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if n, err := j.Delayed(ctx); err != nil || n != 3 {
		t.Errorf("Delayed() = %d, %v; want 3", n, err)
	}
	if p, err := j.Pending(ctx); err != nil || p["s"] != 1 {
		t.Errorf("pending %v, %v; want 1 (the delayed entries are not in the lane)", p, err)
	}
	c, err := j.Consumer(ctx, "s", ConsumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	at := map[string]time.Time{}
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		mu.Lock()
		at[string(d.Data)] = time.Now()
		mu.Unlock()
		d.Ack()
	})
	defer stop()
	eventually(t, 10*time.Second, "all entries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(at) == 4
	})
	mu.Lock()
	defer mu.Unlock()
	for name, when := range at {
		late := when.Sub(due[name])
		t.Logf("%s: handed out %v after due", name, late.Round(time.Millisecond))
		if late < 0 {
			t.Errorf("%s handed out %v before due", name, -late)
		}
		if late > 1500*time.Millisecond {
			t.Errorf("%s handed out %v after due, want within about 1s", name, late)
		}
	}
}
