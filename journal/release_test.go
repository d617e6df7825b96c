package journal

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestReleaseKeepsAttempt: an entry released (handed back unattempted)
// comes back with the same Attempt, in the unordered and the keyed lane;
// a retry after it counts one more.
func TestReleaseKeepsAttempt(t *testing.T) {
	for _, key := range []string{"", "k"} {
		name := "unordered"
		if key != "" {
			name = "keyed"
		}
		t.Run(name, func(t *testing.T) {
			j := open(t, t.TempDir())
			defer j.Close()
			ctx := context.Background()
			if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Key: key, Data: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
			c, err := j.Consumer(ctx, "s", ConsumeOptions{Keyed: key != ""})
			if err != nil {
				t.Fatal(err)
			}
			var got collector
			var attempts []int // the keyed lane hands out the same *Delivery again
			stop := run(t, c, func(_ context.Context, d *Delivery) {
				got.add(d)
				got.mu.Lock()
				attempts = append(attempts, d.Attempt)
				got.mu.Unlock()
				switch got.len() {
				case 1, 2:
					d.Release(10 * time.Millisecond)
				case 3:
					d.Retry(10 * time.Millisecond)
				default:
					d.Ack()
				}
			})
			defer stop()
			eventually(t, 5*time.Second, "4 hand-outs", func() bool { return got.len() == 4 })
			got.mu.Lock()
			defer got.mu.Unlock()
			for i, want := range []int{1, 1, 1, 2} {
				if a := attempts[i]; a != want {
					t.Errorf("hand-out %d has Attempt %d; want %d (released twice, then retried once)", i+1, a, want)
				}
			}
		})
	}
}

// TestPausedStopsFetching: while ConsumeOptions.Paused says so, nothing is
// handed out; once it says 0, the entries come.
func TestPausedStopsFetching(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	var paused atomic.Bool
	paused.Store(true)
	var asked atomic.Int32
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Paused: func() time.Duration {
		asked.Add(1)
		if paused.Load() {
			return 20 * time.Millisecond
		}
		return 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) { got.add(d); d.Ack() })
	defer stop()
	eventually(t, 5*time.Second, "Paused asked several times", func() bool { return asked.Load() >= 5 })
	if n := got.len(); n != 0 {
		t.Fatalf("%d entries handed out while paused", n)
	}
	paused.Store(false)
	eventually(t, 5*time.Second, "the entry once unpaused", func() bool { return got.len() == 1 })
}
