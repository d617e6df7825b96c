package sinks

import (
	"context"
	"testing"
	"time"
)

func TestAttemptTimeout(t *testing.T) {
	start := time.Now()
	ctx, cancel := WithAttemptTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	time.Sleep(5 * time.Millisecond) // the sink begins a little later
	if got := AttemptTimeout(ctx, time.Now()); got != 300*time.Millisecond {
		t.Errorf("recorded timeout: got %v, want 300ms", got)
	}
	if dl, ok := ctx.Deadline(); !ok || dl.Sub(start) > 300*time.Millisecond+50*time.Millisecond {
		t.Errorf("deadline %v after start, want about 300ms", dl.Sub(start))
	}
	// Without a recorded timeout: what the deadline leaves, rounded.
	plain, cancel2 := context.WithDeadline(context.Background(), start.Add(1234567*time.Microsecond))
	defer cancel2()
	if got := AttemptTimeout(plain, start); got != 1230*time.Millisecond {
		t.Errorf("from the deadline: got %v, want 1.23s", got)
	}
	if got := AttemptTimeout(context.Background(), start); got != 0 {
		t.Errorf("no deadline: got %v, want 0", got)
	}
}
