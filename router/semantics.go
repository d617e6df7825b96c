package router

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/journal"
)

// ExtSeq is the extension carrying an ordered delivery's sequence number.
const ExtSeq = "junctionseq"

// placing is where a route's delivery of one event goes in the journal:
// its ordering key, when it is due, its priority.
type placing struct {
	key       string
	notBefore time.Time
	priority  int
}

// place evaluates the route's orderBy, delay, deliverAt and priority for
// an event accepted at now. An error names the key; the caller
// dead-letters the event for the route, as for a failed transform.
func (rt *Route) place(env *filters.Env, now time.Time) (placing, error) {
	var p placing
	if rt.OrderBy != nil {
		v, err := rt.OrderBy.Eval(env)
		if err != nil {
			return p, err
		}
		if v != nil {
			if p.key, err = filters.ToString(v); err != nil {
				return p, fmt.Errorf("orderBy: %w", err)
			}
			if len(p.key) > journal.MaxKeyLen {
				return p, fmt.Errorf("orderBy: the key is %d bytes, more than %d", len(p.key), journal.MaxKeyLen)
			}
		}
	}
	if rt.Delay > 0 {
		p.notBefore = now.Add(rt.Delay)
	}
	if rt.DeliverAt != nil {
		v, err := rt.DeliverAt.Eval(env)
		if err != nil {
			return p, err
		}
		at, err := toTime(v)
		if err != nil {
			return p, fmt.Errorf("deliverAt: %w", err)
		}
		if at.After(p.notBefore) {
			p.notBefore = at
		}
	}
	if !p.notBefore.After(now) {
		p.notBefore = time.Time{}
	}
	if rt.Priority != nil {
		v, err := rt.Priority.Eval(env)
		if err != nil {
			return p, err
		}
		if p.priority, err = toPriority(v); err != nil {
			return p, fmt.Errorf("priority: %w", err)
		}
	}
	return p, nil
}

// toTime reads deliverAt's result: nil (zero: now), a time, or an RFC 3339
// string.
func toTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return t, nil
	case types.Timestamp:
		return t.Time, nil
	case string:
		at, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return time.Time{}, fmt.Errorf("expected an RFC 3339 time such as 2026-12-24T09:00:00Z, got %q", t)
		}
		return at, nil
	}
	return time.Time{}, fmt.Errorf("expected an RFC 3339 time (a string) or a time, got %T", v)
}

// toPriority reads priority's result: an integer 0..9 (nil is 0).
func toPriority(v any) (int, error) {
	var f float64
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f = float64(rv.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f = float64(rv.Uint())
		default:
			return 0, fmt.Errorf("expected an integer 0..%d, got %T", journal.MaxPriority, v)
		}
	}
	if f != math.Trunc(f) || f < 0 || f > journal.MaxPriority {
		return 0, fmt.Errorf("expected an integer 0..%d, got %v", journal.MaxPriority, f)
	}
	return int(f), nil
}

// seqValue is the junctionseq extension's value: an integer while it fits
// the CloudEvents integer type (32 bits), then its decimal string.
func seqValue(seq uint64) any {
	if seq <= math.MaxInt32 {
		return int32(seq)
	}
	return fmt.Sprint(seq)
}
