package filters

import (
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
)

func TestCompileString(t *testing.T) {
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("com.example.order")
	e.SetExtension("tenant", "acme")
	e.SetData("application/json", map[string]any{"region": "eu", "n": 3})
	tests := []struct {
		src, want, err string
	}{
		{src: `"orders." + tenant`, want: "orders.acme"},
		{src: `data.region`, want: "eu"},
		{src: `data.n`, want: "3"},
		{src: `data.missing`, err: "evaluate subject: the expression yielded nil"},
		{src: `data`, err: "evaluate subject: expected a string, number or bool"},
	}
	for _, tt := range tests {
		s, err := CompileString("subject", config.Expr{Src: tt.src, Pos: config.Pos{Line: 3, Col: 14}})
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		got, err := s.Eval(NewEnv(&e))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s = %q, %v; want %q", tt.src, got, err, tt.want)
		}
	}
	_, err := CompileString("subject", config.Expr{Src: `type ==`, Pos: config.Pos{Line: 3, Col: 14}})
	if err == nil || !strings.HasPrefix(err.Error(), "config:3:14: subject: ") {
		t.Errorf("compile error = %v, want one at 3:14 naming the key", err)
	}
}
