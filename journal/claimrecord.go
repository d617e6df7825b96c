package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A message of the claim log (see ClaimLog) holds records:
//
//	version   byte (1)
//	count     uvarint
//	count x record:
//	  op      byte: 'c' claim, 'f' confirm, 'r' release, 'a' accepted
//	  claim, accepted: ttl ms uvarint, takeover ms uvarint
//	  others: the claim's message sequence uvarint, its place uvarint
//	  keys    uvarint, then each: length uvarint, bytes

// Record operations.
const (
	opClaim    = 'c'
	opConfirm  = 'f'
	opRelease  = 'r'
	opAccepted = 'a'
)

const claimsVersion = 1

// maxClaimKey bounds a key of the claim log.
const maxClaimKey = 1024

// claimRecord is one record of the claim log.
type claimRecord struct {
	op byte
	// ttl is the claim's window (opClaim, opAccepted); for the others,
	// how long their message is kept.
	ttl time.Duration
	// takeover is how long the claim may stay pending (opClaim,
	// opAccepted).
	takeover time.Duration
	// ref is the claim confirmed or released (opConfirm, opRelease).
	ref  claimRef
	keys []string
}

// size bounds the encoded size of r.
func (r *claimRecord) size() int {
	n := 1 + 3*binary.MaxVarintLen64
	for _, k := range r.keys {
		n += binary.MaxVarintLen16 + len(k)
	}
	return n
}

// encodeClaims encodes records as a message of the claim log.
func encodeClaims(recs []*claimRecord) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, r := range recs {
		size += r.size()
	}
	b := make([]byte, 0, size)
	b = append(b, claimsVersion)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = append(b, r.op)
		if r.op == opClaim || r.op == opAccepted {
			b = binary.AppendUvarint(b, uint64(r.ttl/time.Millisecond))
			b = binary.AppendUvarint(b, uint64(r.takeover/time.Millisecond))
		} else {
			b = binary.AppendUvarint(b, r.ref.seq)
			b = binary.AppendUvarint(b, uint64(r.ref.idx))
		}
		b = binary.AppendUvarint(b, uint64(len(r.keys)))
		for _, k := range r.keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
		}
	}
	return b
}

// errClaims is a message of the claim log that does not decode.
var errClaims = errors.New("bad claim log message")

// decodeClaims decodes a message of the claim log. It never panics and
// allocates no more than the message's size warrants.
func decodeClaims(b []byte) ([]claimRecord, error) {
	if len(b) == 0 || b[0] != claimsVersion {
		return nil, fmt.Errorf("%w: unknown version", errClaims)
	}
	b = b[1:]
	uv := func(what string, limit uint64) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("%w: %s truncated", errClaims, what)
		}
		if v > limit {
			return 0, fmt.Errorf("%w: %s %d over %d", errClaims, what, v, limit)
		}
		b = b[n:]
		return v, nil
	}
	count, err := uv("record count", uint64(len(b)))
	if err != nil {
		return nil, err
	}
	recs := make([]claimRecord, 0, count)
	maxMs := uint64(MaxMarkTTL / time.Millisecond)
	for range count {
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: record truncated", errClaims)
		}
		r := claimRecord{op: b[0]}
		b = b[1:]
		switch r.op {
		case opClaim, opAccepted:
			ttl, err := uv("ttl", maxMs)
			if err != nil {
				return nil, err
			}
			takeover, err := uv("takeover", maxMs)
			if err != nil {
				return nil, err
			}
			r.ttl, r.takeover = time.Duration(ttl)*time.Millisecond, time.Duration(takeover)*time.Millisecond
		case opConfirm, opRelease:
			seq, err := uv("claim sequence", 1<<63)
			if err != nil {
				return nil, err
			}
			idx, err := uv("claim place", 1<<31)
			if err != nil {
				return nil, err
			}
			r.ref = claimRef{seq, uint32(idx)}
		default:
			return nil, fmt.Errorf("%w: unknown operation %q", errClaims, r.op)
		}
		n, err := uv("key count", uint64(len(b)))
		if err != nil {
			return nil, err
		}
		r.keys = make([]string, 0, n)
		for range n {
			l, err := uv("key length", min(maxClaimKey, uint64(len(b))))
			if err != nil {
				return nil, err
			}
			if l > uint64(len(b)) {
				return nil, fmt.Errorf("%w: key truncated", errClaims)
			}
			r.keys = append(r.keys, string(b[:l]))
			b = b[l:]
		}
		recs = append(recs, r)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the records", errClaims, len(b))
	}
	return recs, nil
}
