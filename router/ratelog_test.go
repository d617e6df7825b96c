package router

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at    time.Duration
		ok    bool
		count int
	}{
		{0, true, 1},
		{time.Second, false, 0},
		{5 * time.Second, false, 0},
		{logEvery, true, 3},
		{logEvery + time.Millisecond, false, 0},
		{3 * logEvery, true, 2},
	}
	for _, s := range steps {
		ok, n := l.allow(t0.Add(s.at))
		if ok != s.ok || n != s.count {
			t.Errorf("at %v: allow = %v, %d; want %v, %d", s.at, ok, n, s.ok, s.count)
		}
	}
}
