package schedulesource

import (
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule gives the ticks of a schedule source.
type Schedule interface {
	// Next is the first tick strictly after t.
	Next(t time.Time) time.Time
}

// Every ticks at the multiples of its period since the Unix epoch, so that
// every replica agrees on the ticks whenever it started.
type Every time.Duration

// Next implements Schedule.
func (e Every) Next(t time.Time) time.Time {
	p := time.Duration(e).Nanoseconds()
	n := t.UnixNano()
	return time.Unix(0, n-n%p+p).In(t.Location())
}

// Cron ticks on a cron expression, in its time zone.
type Cron struct {
	sched cron.Schedule
	loc   *time.Location
}

// cronParser reads five fields (minute, hour, day of month, month, day of
// week) and the descriptors @yearly, @monthly, @weekly, @daily, @hourly.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron reads a five-field cron expression; loc is its time zone (nil:
// UTC).
func ParseCron(expr string, loc *time.Location) (*Cron, error) {
	if loc == nil {
		loc = time.UTC
	}
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, err
	}
	return &Cron{sched: s, loc: loc}, nil
}

// starBit marks a cron field given as "*" (robfig/cron's encoding).
const starBit = 1 << 63

// Next implements Schedule. When clocks go forward, a tick in the skipped
// hour is not made. When they go back, a tick of a given hour in the
// repeated hour is made once, the first time; one of every hour ("*" in the
// hour field) is made each time the clock shows it (as Vixie cron does).
func (c *Cron) Next(t time.Time) time.Time {
	for {
		n := c.sched.Next(t.In(c.loc))
		if n.IsZero() || !c.repeated(n) {
			return n
		}
		t = n
	}
}

// repeated reports whether tick n shows the wall-clock time of an earlier
// instant (clocks went back), for a schedule with given hours.
func (c *Cron) repeated(n time.Time) bool {
	if s, ok := c.sched.(*cron.SpecSchedule); !ok || s.Hour&starBit != 0 {
		return false
	}
	_, off := n.Zone()
	for _, shift := range []time.Duration{time.Hour, 30 * time.Minute, 2 * time.Hour} {
		e := n.Add(-shift)
		if _, eoff := e.Zone(); eoff != off && e.Hour() == n.Hour() && e.Minute() == n.Minute() && e.Second() == n.Second() && e.Day() == n.Day() {
			return true
		}
	}
	return false
}

// maxCatchUpSteps bounds the ticks that LatestTick walks through.
const maxCatchUpSteps = 1 << 20

// LatestTick is the last tick of s in (after, upTo], or zero when there is
// none: the one tick that catch-up emits for those missed while every
// replica was down.
func LatestTick(s Schedule, after, upTo time.Time) time.Time {
	if e, ok := s.(Every); ok {
		p, n := time.Duration(e).Nanoseconds(), upTo.UnixNano()
		t := time.Unix(0, n-n%p).In(upTo.Location()) // the last multiple of p at or before upTo
		if t.After(after) {
			return t
		}
		return time.Time{}
	}
	var last time.Time
	t := after
	for range maxCatchUpSteps {
		n := s.Next(t)
		if n.IsZero() || n.After(upTo) {
			return last
		}
		last, t = n, n
	}
	return last
}

// Period estimates the time between two ticks after t (for the TTL of a
// tick's claim).
func Period(s Schedule, t time.Time) time.Duration {
	a := s.Next(t)
	if a.IsZero() {
		return 0
	}
	b := s.Next(a)
	if b.IsZero() {
		return 0
	}
	return b.Sub(a)
}
