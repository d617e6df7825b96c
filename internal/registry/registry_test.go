package registry

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := New[func() int]("thing")
	r.Register("b", func() int { return 2 })
	r.Register("a", func() int { return 1 })
	if f, ok := r.Lookup("a"); !ok || f() != 1 {
		t.Fatal("lookup a")
	}
	if _, ok := r.Lookup("c"); ok {
		t.Fatal("lookup of an unknown type succeeded")
	}
	if got := r.Types(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("types = %v", got)
	}
	for _, tc := range []struct{ typ, want string }{
		{"", "thing registry: empty type"},
		{"a", `thing registry: type "a" registered twice`},
	} {
		func() {
			defer func() {
				if got := recover(); got != tc.want {
					t.Errorf("Register(%q) panic = %v, want %q", tc.typ, got, tc.want)
				}
			}()
			r.Register(tc.typ, func() int { return 0 })
		}()
	}
}
