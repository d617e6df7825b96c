package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Journal messages written by earlier versions (before the envelope; on
// the subjects of the unordered lane, <prefix>.<sink>.<n>) are read here, so that a journal written by
// one of them is delivered by this one: a message of one entry has headers
// for the route and the dead-letter mark, and the encoded event as its
// payload; a retried entry has headers for its attempts, its accepted time
// and its due time too; a message of several holds, for each entry: the
// route's length (uvarint), the route, a flags byte (1: dead letter), the
// data's length (uvarint), the data.
const (
	// HeaderRoute names the route of a single entry (and of a dead
	// letter in the dead-letter store).
	HeaderRoute = "Junction-Route"
	// HeaderDeadLetter was "1" on an entry that is a dead letter.
	HeaderDeadLetter = "Junction-Dead-Letter"
	// headerAttempts was the number of attempts already made.
	headerAttempts = "Junction-Attempts"
	// headerDue was when the next attempt may be made (Unix nanoseconds).
	headerDue = "Junction-Due"
)

var errBadBatch = errors.New("malformed batch")

// isLegacy says whether a journal message was written by an earlier
// version: a single entry has the route header; a batch frame starts with
// the length of its first route, then the route's first letter, where an
// envelope has its magic byte and version 1 or 2.
func isLegacy(hdr nats.Header, data []byte) bool {
	if _, ok := hdr[HeaderRoute]; ok {
		return true
	}
	return !isKnownEnvelope(data)
}

// decodeLegacy reads the entries of a message of an earlier version, of n
// entries.
func decodeLegacy(hdr nats.Header, data []byte, n int) ([]Entry, error) {
	if n > 1 {
		return splitBatch(data)
	}
	e := Entry{Route: hdr.Get(HeaderRoute), DeadLetter: hdr.Get(HeaderDeadLetter) == "1", Data: data}
	if v := hdr.Get(headerAttempts); v != "" {
		prev, err := strconv.Atoi(v)
		if err != nil || prev < 0 {
			return nil, fmt.Errorf("bad %s header %q", headerAttempts, v)
		}
		e.Attempts = prev
	}
	if v := hdr.Get(headerDue); v != "" {
		due, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad %s header %q", headerDue, v)
		}
		e.NotBefore = time.Unix(0, due)
	}
	if v := hdr.Get(headerAccepted); v != "" {
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad %s header %q", headerAccepted, v)
		}
		e.Accepted = time.Unix(0, ns)
	}
	return []Entry{e}, nil
}

// splitBatch decodes a batch message's payload of an earlier version into
// its entries. Data slices share the payload.
func splitBatch(p []byte) ([]Entry, error) {
	var out []Entry
	for len(p) > 0 {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errBadBatch
		}
		route := string(p[k : k+int(n)])
		p = p[k+int(n):]
		if len(p) == 0 {
			return nil, errBadBatch
		}
		flags := p[0]
		p = p[1:]
		n, k = binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errBadBatch
		}
		out = append(out, Entry{Route: route, DeadLetter: flags&1 != 0, Data: p[k : k+int(n) : k+int(n)]})
		p = p[k+int(n):]
	}
	if len(out) == 0 {
		return nil, errBadBatch
	}
	return out, nil
}
