// Package registry is the type registry behind sources.Register and
// sinks.Register: a name → factory map that refuses empty and duplicate
// names.
package registry

import (
	"fmt"
	"sort"
	"sync"
)

// Registry maps type names to factories of F.
type Registry[F any] struct {
	kind string
	mu   sync.RWMutex
	m    map[string]F
}

// New returns an empty registry; kind names it in panics ("source", "sink").
func New[F any](kind string) *Registry[F] {
	return &Registry[F]{kind: kind, m: map[string]F{}}
}

// Register adds f under typ. It panics when typ is empty or already taken:
// both are programming errors, found when the program starts.
func (r *Registry[F]) Register(typ string, f F) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if typ == "" {
		panic(fmt.Sprintf("%s registry: empty type", r.kind))
	}
	if _, dup := r.m[typ]; dup {
		panic(fmt.Sprintf("%s registry: type %q registered twice", r.kind, typ))
	}
	r.m[typ] = f
}

// Lookup returns the factory of typ.
func (r *Registry[F]) Lookup(typ string) (F, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.m[typ]
	return f, ok
}

// Types lists the registered types, sorted.
func (r *Registry[F]) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.m))
	for t := range r.m {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
