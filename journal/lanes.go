package journal

import (
	"strconv"
	"strings"
)

// Lanes name the subjects of the journal: every subject is built and read
// here.
//
// A sink's entries travel in lanes, each with its own durable consumer, so
// that one kind of entry never waits behind another. A message's subject
// is <prefix>.<sink>.<lane>.<n>, n being the number of entries it holds
// (so that pending entries are counted from the stream's subjects alone):
//
//	u      unordered, priority 0 (also read: <prefix>.<sink>.<n>, the
//	       subjects of earlier versions)
//	p<N>   unordered, priority N (1..9)
//	k      ordered by key (every priority)
//
// Entries not due yet wait in the delay stream (see delay.go), on
// <delayPrefix>.s.<id>, until JetStream's scheduler moves them to
// <delayPrefix>.due.<sink> and the journal from there into their lane.
type lanes struct {
	prefix string // of the deliveries stream
	delay  string // of the delay stream
}

// Lane kinds.
const (
	laneUnordered = iota
	lanePriority
	laneKeyed
)

// lane is one lane of one sink.
type lane struct {
	sink     string
	kind     int
	priority int // lanePriority only
}

// of returns the lane of an entry.
func (l lanes) of(e *Entry) lane {
	switch {
	case e.Key != "":
		return lane{sink: e.Sink, kind: laneKeyed}
	case e.Priority > 0:
		return lane{sink: e.Sink, kind: lanePriority, priority: e.Priority}
	}
	return lane{sink: e.Sink, kind: laneUnordered}
}

func (ln lane) token() string {
	switch ln.kind {
	case lanePriority:
		return "p" + strconv.Itoa(ln.priority)
	case laneKeyed:
		return "k"
	}
	return "u"
}

// subject is the subject of a message of n entries in lane.
func (l lanes) subject(ln lane, n int) string {
	return l.prefix + "." + ln.sink + "." + ln.token() + "." + strconv.Itoa(n)
}

// filters are the subject filters of lane's consumer.
func (l lanes) filters(ln lane) []string {
	f := []string{l.prefix + "." + ln.sink + "." + ln.token() + ".*"}
	if ln.kind == laneUnordered {
		f = append(f, l.prefix+"."+ln.sink+".*") // earlier versions
	}
	return f
}

// consumer is the durable name of lane's consumer. The unordered lane's is
// the sink's name, as in earlier versions, so that their entries are read.
func (l lanes) consumer(ln lane) string {
	switch ln.kind {
	case lanePriority:
		return ln.sink + "_p" + strconv.Itoa(ln.priority)
	case laneKeyed:
		return ln.sink + "_k"
	}
	return ln.sink
}

// sink is the filter of every lane of sink.
func (l lanes) sink(sink string) string { return l.prefix + "." + sink + ".>" }

// all is the filter of every lane.
func (l lanes) all() string { return l.prefix + ".>" }

// parse reads the lane of a deliveries subject and the number of entries
// of its messages; legacy is set for the subjects of earlier versions.
func (l lanes) parse(subject string) (ln lane, n int, legacy, ok bool) {
	rest, ok := strings.CutPrefix(subject, l.prefix+".")
	if !ok {
		return lane{}, 0, false, false
	}
	toks := strings.Split(rest, ".")
	count := func(s string) int {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
		return 0
	}
	switch {
	case len(toks) == 2 && count(toks[1]) > 0:
		return lane{sink: toks[0], kind: laneUnordered}, count(toks[1]), true, true
	case len(toks) != 3 || count(toks[2]) == 0:
		return lane{}, 0, false, false
	}
	n = count(toks[2])
	switch t := toks[1]; {
	case t == "u":
		return lane{sink: toks[0], kind: laneUnordered}, n, false, true
	case t == "k":
		return lane{sink: toks[0], kind: laneKeyed}, n, false, true
	case len(t) == 2 && t[0] == 'p' && t[1] >= '1' && t[1] <= '0'+MaxPriority:
		return lane{sink: toks[0], kind: lanePriority, priority: int(t[1] - '0')}, n, false, true
	}
	return lane{}, 0, false, false
}

// scheduled is the subject of a delayed message; id makes it unique (the
// stream keeps one schedule per subject).
func (l lanes) scheduled(id string) string { return l.delay + ".s." + id }

// due is the subject a delayed message of sink is moved to when due.
func (l lanes) due(sink string) string { return l.delay + ".due." + sink }

// dueAll is the filter of every due message.
func (l lanes) dueAll() string { return l.delay + ".due.>" }
