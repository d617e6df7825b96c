package router

import (
	"os"
	"strings"
	"testing"

	"github.com/junctionhq/junction/config"
)

func TestShortPolicyWarnings(t *testing.T) {
	head := `
sinks:
  - {name: out, type: test-recorder}
  - {name: quick, type: test-recorder, delivery: {retry: 2}}
  - {name: dead, type: test-recorder}
routes:
`
	for _, tc := range []struct {
		name, route, want string
	}{
		{"default policy", `  - {name: r, to: [out]}`, ""},
		{"dead-letter sink", `  - {name: r, to: [out], delivery: {retry: 1, deadLetter: dead}}`, ""},
		{"asked to drop", `  - {name: r, to: [out], delivery: {retry: 1, onExhausted: drop}}`, ""},
		{"long enough", `  - {name: r, to: [out], delivery: {retry: 30}}`, ""},
		{"few retries", `  - {name: r, to: [out], delivery: {retry: 5}}`,
			`test.yaml:7:5: warning: route "r": deliveries to sink "out" can give up after about 15.5s (retry: 5) and the route has no deadLetter sink`},
		{"short maxAge", `  - {name: r, to: [out], delivery: {maxAge: 10m}}`,
			`test.yaml:7:5: warning: route "r": deliveries to sink "out" can give up after about 10m0s (maxAge: 10m0s)`},
		{"sink's own policy", `  - {name: r, to: [quick]}`,
			`test.yaml:7:5: warning: route "r": deliveries to sink "quick" can give up after about 1.5s (retry: 2)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("test.yaml", []byte(head+tc.route+"\n"), os.LookupEnv)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Compile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Warnings.Error()
			if tc.want == "" {
				if len(p.Warnings) != 0 {
					t.Errorf("warnings: %s", got)
				}
				return
			}
			if len(p.Warnings) != 1 || !strings.HasPrefix(got, tc.want) || !strings.Contains(got, "onExhausted: drop") {
				t.Errorf("warnings:\n got %s\nwant %s...", got, tc.want)
			}
		})
	}
}
