package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// MaxDedup bounds a source's dedup window.
const MaxDedup = 7 * 24 * time.Hour

// decodeDedup reads the dedup key of a source: a duration over 0 and at
// most MaxDedup. Problems go to errs at the value's position, and the
// result is then 0.
func decodeDedup(n *yaml.Node, where string, errs *Errors) Duration {
	var d Duration
	if err := d.UnmarshalYAML(n); err != nil {
		errs.Addf(PosOf(n), where, "dedup: %v", err)
		return 0
	}
	switch {
	case d <= 0:
		errs.Addf(PosOf(n), where, "dedup: must be a duration over 0, such as 10m (without dedup, remove the key)")
		return 0
	case time.Duration(d) > MaxDedup:
		errs.Addf(PosOf(n), where, "dedup: %v is longer than the longest window, %v", d, Duration(MaxDedup))
		return 0
	case time.Duration(d) < time.Second:
		errs.Addf(PosOf(n), where, "dedup: must be at least 1s")
		return 0
	}
	return d
}
