package backoff

import (
	"math"
	"testing"
	"time"
)

func TestExponential(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, 100}, {1, 100}, {2, 200}, {3, 400}, {4, 800}, {5, 1000}, {100, 1000}, {math.MaxInt, 1000}} {
		if got := Exponential(c.n, 100, 1000); got != c.want {
			t.Errorf("Exponential(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	if got := Exponential(200, time.Hour, time.Duration(math.MaxInt64)); got <= 0 {
		t.Errorf("Exponential overflowed: %v", got)
	}
}

func TestJitterStaysWithinAFifth(t *testing.T) {
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range 10000 {
		d := Jitter(time.Second)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 800*time.Millisecond || hi > time.Second {
		t.Fatalf("jitter of 1s spans [%v, %v], want within [800ms, 1s]", lo, hi)
	}
	if hi-lo < 150*time.Millisecond {
		t.Fatalf("jitter of 1s spans only [%v, %v]: not spread", lo, hi)
	}
	if Jitter(0) != 0 {
		t.Fatal("Jitter(0) != 0")
	}
}

func TestBackoffSteps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	var steps []time.Duration
	for range 5 {
		d := b.Next()
		if d > b.Exponential() || d < b.Exponential()*4/5 {
			t.Fatalf("wait %v outside its step %v", d, b.Exponential())
		}
		steps = append(steps, b.Exponential())
	}
	want := []time.Duration{100, 200, 400, 400, 400}
	for i := range want {
		if steps[i] != want[i]*time.Millisecond {
			t.Fatalf("steps %v, want %v ms", steps, want)
		}
	}
	b.Reset()
	if b.Next(); b.Exponential() != 100*time.Millisecond {
		t.Fatalf("after Reset the step is %v", b.Exponential())
	}
}
