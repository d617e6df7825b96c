package config

import (
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// selfDecoding decodes itself and says nothing of its schema.
type selfDecoding struct{}

func (*selfDecoding) UnmarshalYAML(*yaml.Node) error { return nil }

type pluginWithSelfDecoding struct {
	Path  string       `yaml:"path"`
	Thing selfDecoding `yaml:"thing"`
}

func TestSchemaRefusesUndescribedTypes(t *testing.T) {
	_, err := Schema(PluginConfigs{Sources: map[string]any{"odd": &pluginWithSelfDecoding{}}})
	if err == nil || !strings.Contains(err.Error(), "config.selfDecoding decodes itself (UnmarshalYAML) and has no JSONSchema method") {
		t.Errorf("err = %v", err)
	}
	_, err = Schema(PluginConfigs{Sinks: map[string]any{"odd": new(string)}})
	if err == nil || !strings.Contains(err.Error(), `sink type "odd": config string is not a struct`) {
		t.Errorf("err = %v", err)
	}
}

// TestSchemaPatterns checks the patterns of durations and sizes against
// what the loader's parsers take.
func TestSchemaPatterns(t *testing.T) {
	s, err := Schema(PluginConfigs{})
	if err != nil {
		t.Fatal(err)
	}
	defs := s["$defs"].(map[string]any)
	pattern := func(def string) *regexp.Regexp {
		alts := defs[def].(map[string]any)["anyOf"].([]any)
		for _, a := range alts {
			if p, ok := a.(map[string]any)["pattern"].(string); ok {
				return regexp.MustCompile(p)
			}
		}
		t.Fatalf("%s: no pattern", def)
		return nil
	}
	for _, tt := range []struct {
		def   string
		parse func(string) error
		in    []string
	}{
		{"Duration", func(s string) error { _, err := ParseDuration(s); return err },
			[]string{"14d", "1d12h", "90s", "1h30m", "200ms", "0", "1.5h", "7d", "soon", "d", "1x", "12", "1d-2h", ""}},
		{"ByteSize", func(s string) error { _, err := ParseByteSize(s); return err },
			[]string{"1MiB", "512KiB", "10MB", "1048576", "1 GiB", "1k", "1kb", "big", "MiB", "1TiB", ""}},
	} {
		re := pattern(tt.def)
		for _, in := range tt.in {
			if parsed, matched := tt.parse(in) == nil, re.MatchString(in); parsed != matched {
				t.Errorf("%s %q: parser accepts: %v, schema accepts: %v", tt.def, in, parsed, matched)
			}
		}
	}
}
