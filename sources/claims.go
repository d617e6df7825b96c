package sources

import (
	"context"
	"time"
)

// Claims is implemented by the Ingester that the router gives a source:
// small records kept in the journal and shared by every replica that runs
// the same config, for a source that must do a thing once across replicas
// (a schedule's tick) and remember where it stopped. Keys are the source's
// own (the router keeps each source's apart): letters, digits, '-', '_',
// '=' and '.' between them.
//
// A source asserts it: in.(sources.Claims).
type Claims interface {
	// Claim takes key for ttl. The outcome says who does the work:
	// ClaimHeld, the caller: it does the work (its Ingest) and then
	// Confirms, or Releases when the work failed; ClaimDone, nobody (it
	// was done, within ttl); ClaimBusy, another replica that holds it now:
	// ask again later (a holder that dies is taken over, after twice the
	// journal's write timeout, by the next Claim).
	Claim(ctx context.Context, key string, ttl time.Duration) (Claim, ClaimState, error)
	// State returns the value last stored under key with SetState, nil when
	// none.
	State(ctx context.Context, key string) ([]byte, error)
	// SetState stores value under key, until it is set again.
	SetState(ctx context.Context, key string, value []byte) error
}

// Claim is a held claim (see Claims).
type Claim interface {
	// Confirm marks the work done: a Claim of the key finds it done until
	// its ttl, counted from the claim, ends.
	Confirm(ctx context.Context) error
	// Release gives the key up: the next Claim takes it.
	Release(ctx context.Context) error
}

// ClaimState is the outcome of Claims.Claim.
type ClaimState uint8

// Outcomes of Claims.Claim.
const (
	ClaimHeld ClaimState = iota // the caller holds the key
	ClaimDone                   // the work was done
	ClaimBusy                   // another holder works on it now
)

// ClaimsConfig is implemented by the Config of a source type that uses
// Claims: the router makes the journal's store of claims before the source
// starts, so that a journal that cannot hold it stops the start with its
// reason rather than failing every claim.
type ClaimsConfig interface {
	UsesClaims() bool
}
