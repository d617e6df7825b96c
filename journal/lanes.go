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
// ends with n, the number of entries it holds (so that pending entries are
// counted from the stream's subjects alone):
//
//	<prefix>.<sink>.<n>        unordered, priority 0 (the subjects of
//	                           earlier versions: see decodeLegacy)
//	<prefix>.<sink>.p<N>.<n>   unordered, priority N (1..9)
//	<prefix>.<sink>.k.<n>      ordered by key (every priority)
//
// Each lane's consumer has one subject filter: a consumer with several is
// slower to fetch from (BenchmarkIngestDispatch).
//
// Entries not due yet wait in the delay stream (see delay.go), on
// <delayPrefix>.s.<id>, until JetStream's scheduler moves them to
// <delayPrefix>.due.<sink> and the journal from there into their lane.
type lanes struct {
	prefix  string // of the deliveries stream
	delay   string // of the delay stream
	archive string // of the archive (see archive.go)
}

// Lane kinds.
const (
	laneUnordered = iota
	lanePriority
	laneKeyed
	// laneParked is where the entries of one failing key wait (see
	// park.go): no consumer reads it.
	laneParked
	// laneArchive carries archive entries to the archive stream:
	// <archivePrefix>.<n>.
	laneArchive
)

// lane is one lane of one sink.
type lane struct {
	sink     string
	kind     int
	priority int    // lanePriority only
	park     string // laneParked only: the key's hash
}

// of returns the lane of an entry.
func (l lanes) of(e *Entry) lane {
	switch {
	case e.archive:
		return lane{kind: laneArchive}
	case e.park != "":
		return lane{sink: e.Sink, kind: laneParked, park: e.park}
	case e.Key != "":
		return lane{sink: e.Sink, kind: laneKeyed}
	case e.Priority > 0:
		return lane{sink: e.Sink, kind: lanePriority, priority: e.Priority}
	}
	return lane{sink: e.Sink, kind: laneUnordered}
}

// token is the lane's subject token ("" for the unordered lane).
func (ln lane) token() string {
	switch ln.kind {
	case lanePriority:
		return "p" + strconv.Itoa(ln.priority)
	case laneKeyed:
		return "k"
	case laneParked:
		return "kp" + ln.park
	}
	return ""
}

func (l lanes) base(ln lane) string {
	if ln.kind == laneArchive {
		return l.archive
	}
	if t := ln.token(); t != "" {
		return l.prefix + "." + ln.sink + "." + t
	}
	return l.prefix + "." + ln.sink
}

// subject is the subject of a message of n entries in lane.
func (l lanes) subject(ln lane, n int) string { return l.base(ln) + "." + strconv.Itoa(n) }

// filter is the subject filter of lane's consumer.
func (l lanes) filter(ln lane) string { return l.base(ln) + ".*" }

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
// of its messages.
func (l lanes) parse(subject string) (ln lane, n int, ok bool) {
	rest, ok := strings.CutPrefix(subject, l.prefix+".")
	if !ok {
		return lane{}, 0, false
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
		return lane{sink: toks[0], kind: laneUnordered}, count(toks[1]), true
	case len(toks) != 3 || count(toks[2]) == 0:
		return lane{}, 0, false
	}
	n = count(toks[2])
	switch t := toks[1]; {
	case t == "k":
		return lane{sink: toks[0], kind: laneKeyed}, n, true
	case strings.HasPrefix(t, "kp") && len(t) > 2:
		// Parked entries count as the keyed lane's.
		return lane{sink: toks[0], kind: laneKeyed}, n, true
	case len(t) == 2 && t[0] == 'p' && t[1] >= '1' && t[1] <= '0'+MaxPriority:
		return lane{sink: toks[0], kind: lanePriority, priority: int(t[1] - '0')}, n, true
	}
	return lane{}, 0, false
}

// parkSubject is the subject of the parked entries of the key hashed h.
func (l lanes) parkSubject(sink, h string) string {
	return l.prefix + "." + sink + ".kp" + h + ".1"
}

// parkHash reads the key hash of a park subject of sink.
func (l lanes) parkHash(sink, subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, l.prefix+"."+sink+".kp")
	if !ok {
		return "", false
	}
	h, ok := strings.CutSuffix(rest, ".1")
	return h, ok && h != "" && !strings.Contains(h, ".")
}

// scheduled is the subject of a delayed message; id makes it unique (the
// stream keeps one schedule per subject).
func (l lanes) scheduled(id string) string { return l.delay + ".s." + id }

// due is the subject a delayed message of sink is moved to when due.
func (l lanes) due(sink string) string { return l.delay + ".due." + sink }

// dueAll is the filter of every due message.
func (l lanes) dueAll() string { return l.delay + ".due.>" }
