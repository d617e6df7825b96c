package cebinding

import (
	"iter"
	"slices"
	"strings"
)

// Headers yields the key of each header (or application property) of h
// whose name starts with one of prefixes, compared without regard to case,
// and has something after it, with that rest: the attribute name as the
// sender wrote it (readers compare it without regard to case or lower-case
// it). Keys come in map order; see SortedHeaders for a stable order.
func Headers[V any](h map[string]V, prefixes ...string) iter.Seq2[string, string] {
	return func(yield func(key, name string) bool) {
		for k := range h {
			if name, ok := cut(k, prefixes); ok && !yield(k, name) {
				return
			}
		}
	}
}

// SortedHeaders is Headers in the order of the keys, so that the first
// error a reader reports does not depend on map order.
func SortedHeaders[V any](h map[string]V, prefixes ...string) iter.Seq2[string, string] {
	return func(yield func(key, name string) bool) {
		keys := make([]string, 0, len(h))
		for k := range h {
			if _, ok := cut(k, prefixes); ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			name, _ := cut(k, prefixes)
			if !yield(k, name) {
				return
			}
		}
	}
}

// HasHeaders reports whether h has a header that Headers yields.
func HasHeaders[V any](h map[string]V, prefixes ...string) bool {
	for range Headers(h, prefixes...) {
		return true
	}
	return false
}

func cut(k string, prefixes []string) (string, bool) {
	for _, p := range prefixes {
		if len(k) > len(p) && strings.EqualFold(k[:len(p)], p) {
			return k[len(p):], true
		}
	}
	return "", false
}

// SpecVersionKey returns the key of h's specversion header (a prefix then
// "specversion", compared without regard to case), "" when it has none.
// Two such keys are an *AttrError (ErrDuplicate) at the second, in key
// order, placed as noun and key ("header ce-specversion").
func SpecVersionKey[V any](h map[string]V, noun string, prefixes ...string) (string, error) {
	key := ""
	for k, name := range SortedHeaders(h, prefixes...) {
		if !strings.EqualFold(name, "specversion") {
			continue
		}
		if key != "" {
			return "", &AttrError{Name: "specversion", Where: noun + " " + k, Err: ErrDuplicate}
		}
		key = k
	}
	return key, nil
}
