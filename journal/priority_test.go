package journal

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestPriority: with a backlog of priority 0, entries of priority 9
// appended later are attempted before the backlog: at most Concurrency
// entries of the backlog start after they were stored.
func TestPriority(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	var backlog []Entry
	for i := range 300 {
		backlog = append(backlog, Entry{Sink: "s", Route: "r", Data: fmt.Appendf(nil, "low-%d", i)})
	}
	if err := j.Append(ctx, backlog); err != nil {
		t.Fatal(err)
	}
	const conc = 2
	c, err := j.Consumer(ctx, "s", ConsumeOptions{Concurrency: conc, Priorities: []int{9}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var started []int // priorities, in the order attempts started
	var stored int    // len(started) when the high entries were stored
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		mu.Lock()
		started = append(started, d.Priority)
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		d.Ack()
	})
	defer stop()
	eventually(t, 10*time.Second, "the backlog to start", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(started) >= 20
	})
	var high []Entry
	for i := range 5 {
		high = append(high, Entry{Sink: "s", Route: "r", Priority: 9, Data: fmt.Appendf(nil, "high-%d", i)})
	}
	if err := j.Append(ctx, high); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	stored = len(started)
	mu.Unlock()
	eventually(t, 10*time.Second, "the high entries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, p := range started {
			if p == 9 {
				n++
			}
		}
		return n == 5
	})
	mu.Lock()
	defer mu.Unlock()
	lowAfter := 0
	for _, p := range started[stored:] {
		if p == 9 {
			break
		}
		lowAfter++
	}
	if lowAfter > conc {
		t.Errorf("%d entries of priority 0 started after those of priority 9 were stored, want at most %d", lowAfter, conc)
	}
	if len(started) >= 300 {
		t.Errorf("the high entries came after the whole backlog")
	}
}
