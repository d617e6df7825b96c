package router

import (
	"sync"
	"time"
)

// logEvery is how often a failure repeated for every request (the journal
// refusing writes) is logged: once per period, with how many it stands for.
const logEvery = 10 * time.Second

// logLimiter lets one log line through per logEvery and counts the calls
// in between.
type logLimiter struct {
	mu    sync.Mutex
	next  time.Time
	count int
}

// allow reports whether to log now and, if so, how many calls it stands for
// (this one and those not logged since the last line).
func (l *logLimiter) allow(now time.Time) (ok bool, count int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if now.Before(l.next) {
		return false, 0
	}
	count, l.count = l.count, 0
	l.next = now.Add(logEvery)
	return true, count
}
