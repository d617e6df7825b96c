package filters

import (
	"strings"
	"testing"

	"github.com/junctionhq/junction/config"
)

func TestHints(t *testing.T) {
	cases := []struct {
		src  string
		want string // a part of the only hint; "" for none
	}{
		{`typ == "x"`, "unknown name typ (did you mean type?)"},
		{`sorce startsWith "/shop"`, "unknown name sorce (did you mean source?)"},
		{`dat.amount > 10`, "unknown name dat (did you mean data?)"},
		{`com.example.big`, `quote it ('"com.example.big"') or compare it (type == "com.example.big")`},
		{`type == "com.example.big"`, ""},
		{`tenant == "acme" && data.amount > 10`, ""}, // an extension, far from every attribute
		{`data.customer.id`, ""},                     // a path under data is not a string
		{`tenant`, ""},                               // one name: a boolean extension, perhaps
		{`len(data.items) > 0`, ""},
		{`"com.example.big"`, ""},
		{`type ==`, ""}, // does not parse: Compile reports it
	}
	for _, c := range cases {
		hints := Hints(config.Expr{Src: c.src})
		switch {
		case c.want == "" && len(hints) > 0:
			t.Errorf("Hints(%s) = %q, want none", c.src, hints)
		case c.want != "" && (len(hints) != 1 || !strings.Contains(hints[0], c.want)):
			t.Errorf("Hints(%s) = %q, want one containing %q", c.src, hints, c.want)
		}
	}
}
