package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The entry envelope: how entries are stored in journal messages.
//
// Every journal message written by this version holds one or more entries
// in an envelope: the byte envelopeMagic, the envelope version, the number
// of entries (uvarint), then each entry: its flags (uvarint), the route
// (uvarint length, bytes), the fields its flags announce in this order (key
// as a string, not-before as Unix nanoseconds (varint), priority (a byte),
// attempts made (uvarint), accepted as Unix nanoseconds (varint), sequence
// (uvarint)), and the encoded event (uvarint length, bytes). The sink is the
// lane's (see lanes), not stored in the entry.
//
// Messages written by earlier versions are read too (see decodeLegacy):
// those are on subjects <prefix>.<sink>.<n>, n the count of entries.
const (
	envelopeMagic = 'J'
	// envelopeVersion is the version of envelopes without a trace context.
	envelopeVersion = 1
	// envelopeVersionTrace is the version of envelopes with one.
	envelopeVersionTrace = 2
)

// Entry flags.
const (
	flagDeadLetter = 1 << iota
	flagKey
	flagNotBefore
	flagPriority
	flagAttempts
	flagAccepted
	flagSeq
	flagTrace
	flagsKnown = 1<<iota - 1
	// flagsV1 are the flags of version 1.
	flagsV1 = flagsKnown &^ flagTrace
)

// Limits of a decoded entry.
const (
	// MaxPriority is the highest priority.
	MaxPriority = 9
	// MaxKeyLen bounds an ordering key.
	MaxKeyLen = 1024
	// MaxTraceParentLen bounds a stored traceparent (55 bytes in version
	// 00 of W3C Trace Context; later versions may append fields).
	MaxTraceParentLen = 256
	// MaxTraceStateLen bounds a stored tracestate (W3C Trace Context allows
	// 32 members; 512 bytes is what propagators must keep at least).
	MaxTraceStateLen = 1024
)

var errBadEnvelope = errors.New("malformed journal envelope")

// envelopeSize is an upper bound of e's size in an envelope.
func envelopeSize(e *Entry) int {
	return 8*binary.MaxVarintLen64 + 2 + len(e.Route) + len(e.Key) + len(e.TraceParent) + len(e.TraceState) + len(e.Data)
}

// appendEnvelope appends the envelope of entries to dst.
func appendEnvelope(dst []byte, entries []*Entry) []byte {
	version := byte(envelopeVersion)
	for _, e := range entries {
		if e.TraceParent != "" {
			version = envelopeVersionTrace
			break
		}
	}
	dst = append(dst, envelopeMagic, version)
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	for _, e := range entries {
		dst = appendEntry(dst, e)
	}
	return dst
}

func appendEntry(dst []byte, e *Entry) []byte {
	var flags uint64
	if e.DeadLetter {
		flags |= flagDeadLetter
	}
	if e.Key != "" {
		flags |= flagKey
	}
	if !e.NotBefore.IsZero() {
		flags |= flagNotBefore
	}
	if e.Priority != 0 {
		flags |= flagPriority
	}
	if e.Attempts != 0 {
		flags |= flagAttempts
	}
	if !e.Accepted.IsZero() {
		flags |= flagAccepted
	}
	if e.Seq != 0 {
		flags |= flagSeq
	}
	if e.TraceParent != "" {
		flags |= flagTrace
	}
	dst = binary.AppendUvarint(dst, flags)
	dst = appendString(dst, e.Route)
	if flags&flagKey != 0 {
		dst = appendString(dst, e.Key)
	}
	if flags&flagNotBefore != 0 {
		dst = binary.AppendVarint(dst, e.NotBefore.UnixNano())
	}
	if flags&flagPriority != 0 {
		dst = append(dst, byte(e.Priority))
	}
	if flags&flagAttempts != 0 {
		dst = binary.AppendUvarint(dst, uint64(e.Attempts))
	}
	if flags&flagAccepted != 0 {
		dst = binary.AppendVarint(dst, e.Accepted.UnixNano())
	}
	if flags&flagSeq != 0 {
		dst = binary.AppendUvarint(dst, e.Seq)
	}
	if flags&flagTrace != 0 {
		dst = appendString(dst, e.TraceParent)
		dst = appendString(dst, e.TraceState)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Data)))
	return append(dst, e.Data...)
}

// isEnvelope says whether a message's payload is an envelope.
func isEnvelope(p []byte) bool { return len(p) >= 2 && p[0] == envelopeMagic }

// isKnownEnvelope says whether p is an envelope of a version this one
// writes (a legacy batch frame may start with the magic byte too).
func isKnownEnvelope(p []byte) bool {
	return isEnvelope(p) && (p[1] == envelopeVersion || p[1] == envelopeVersionTrace)
}

// decodeEnvelope reads the entries of an envelope. Their Data, Route and
// Key share p, which must not change afterwards.
func decodeEnvelope(p []byte) ([]Entry, error) {
	if !isEnvelope(p) {
		return nil, errBadEnvelope
	}
	known := uint64(flagsKnown)
	switch p[1] {
	case envelopeVersion:
		known = flagsV1
	case envelopeVersionTrace:
	default:
		return nil, fmt.Errorf("%w: version %d (this version of Junction reads versions %d and %d: was the journal written by a newer one?)", errBadEnvelope, p[1], envelopeVersion, envelopeVersionTrace)
	}
	r := reader{b: p[2:]}
	n := r.uvarint()
	// Each entry takes at least 3 bytes: no count past that is believed.
	if r.err != nil || n == 0 || n > uint64(len(r.b))/3 {
		return nil, errBadEnvelope
	}
	out := make([]Entry, n)
	for i := range out {
		e := &out[i]
		flags := r.uvarint()
		if flags&^known != 0 {
			return nil, fmt.Errorf("%w: unknown flags %#x", errBadEnvelope, flags)
		}
		e.Route = r.string()
		e.DeadLetter = flags&flagDeadLetter != 0
		if flags&flagKey != 0 {
			if e.Key = r.string(); len(e.Key) > MaxKeyLen || e.Key == "" {
				return nil, fmt.Errorf("%w: bad key", errBadEnvelope)
			}
		}
		if flags&flagNotBefore != 0 {
			e.NotBefore = time.Unix(0, r.varint())
		}
		if flags&flagPriority != 0 {
			if e.Priority = int(r.byte()); e.Priority > MaxPriority {
				return nil, fmt.Errorf("%w: priority %d", errBadEnvelope, e.Priority)
			}
		}
		if flags&flagAttempts != 0 {
			a := r.uvarint()
			if a > 1<<31 {
				return nil, fmt.Errorf("%w: attempts %d", errBadEnvelope, a)
			}
			e.Attempts = int(a)
		}
		if flags&flagAccepted != 0 {
			e.Accepted = time.Unix(0, r.varint())
		}
		if flags&flagSeq != 0 {
			e.Seq = r.uvarint()
		}
		if flags&flagTrace != 0 {
			e.TraceParent, e.TraceState = r.string(), r.string()
			if e.TraceParent == "" || len(e.TraceParent) > MaxTraceParentLen || len(e.TraceState) > MaxTraceStateLen {
				return nil, fmt.Errorf("%w: bad trace context", errBadEnvelope)
			}
		}
		n := r.uvarint()
		if r.err != nil || n > uint64(len(r.b)) {
			return nil, errBadEnvelope
		}
		e.Data = r.b[:n:n]
		r.b = r.b[n:]
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last entry", errBadEnvelope, len(r.b))
	}
	return out, nil
}
