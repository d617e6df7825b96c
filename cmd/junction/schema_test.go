package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/router"
	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
)

// configSchema compiles the output of `junction schema`.
func configSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	code, stdout, stderr := runCLI("schema")
	if code != 0 || stderr != "" {
		t.Fatalf("junction schema: exit %d, stderr %s", code, stderr)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("junction.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("junction.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["$schema"] != config.SchemaURI {
		t.Errorf("$schema = %v", raw["$schema"])
	}
	return s, raw
}

// yamlInstance is a YAML config as an editor's YAML language server hands
// it to the schema: its JSON form, ${NAME} references unexpanded.
func yamlInstance(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchemaAcceptsValidConfigs: every config that validate accepts (the
// examples, each connector's example.yaml, the deploy and test configs,
// the built-in default) is valid against the schema.
func TestSchemaAcceptsValidConfigs(t *testing.T) {
	s, _ := configSchema(t)
	var files []string
	for _, pattern := range []string{"../../examples/*/*.yaml", "../../sources/*/example.yaml", "../../sinks/*/example.yaml",
		"../../deploy/junction.yaml", "../../config/default.yaml", "../../config/testdata/*.yaml", "testdata/*.yaml", "testdata/invalid/*.yaml"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	valid := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "tests.yaml") {
			continue // route tests, not a config
		}
		cfg, err := config.Parse(f, b, os.LookupEnv)
		if err == nil {
			_, err = router.Compile(cfg)
		}
		if err != nil {
			continue // not valid: see TestSchemaRejectsUnknownKeys
		}
		valid++
		if err := s.Validate(yamlInstance(t, b)); err != nil {
			t.Errorf("%s: valid config, but not for the schema:\n%v", f, err)
		}
	}
	if valid < 15 {
		t.Errorf("only %d valid configs checked", valid)
	}
}

// TestSchemaRejectsUnknownKeys: a key that validate refuses as unknown, at
// any level, is refused by the schema too.
func TestSchemaRejectsUnknownKeys(t *testing.T) {
	s, _ := configSchema(t)
	const base = `
sources:
  - {name: events, type: http, path: /events}
sinks:
  - {name: hook, type: webhook, url: "http://127.0.0.1:9999/"}
routes:
  - {name: r, to: [hook], delivery: {retry: 3}}
`
	if err := s.Validate(yamlInstance(t, []byte(base))); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tt := range []struct{ name, old, new string }{
		{"top level", "sources:", "bogus: 1\nsources:"},
		{"source's own key", "path: /events}", "path: /events, bogus: 1}"},
		{"key of another source type", "path: /events}", "path: /events, cron: '* * * * *'}"},
		{"sink's own key", `url: "http://127.0.0.1:9999/"}`, `url: "http://127.0.0.1:9999/", bogus: 1}`},
		{"route", "to: [hook],", "to: [hook], bogus: 1,"},
		{"delivery", "retry: 3}", "retry: 3, bogus: 1}"},
		{"unknown source type", "type: http", "type: carrier-pigeon"},
		{"wrong kind", "retry: 3}", "retry: [3]}"},
		{"bad duration", "retry: 3}", "timeout: soon}"},
		{"value not in the list", "retry: 3}", "backoffPolicy: randomly}"},
		{"journal value not in the list", "sources:", "journal: {fsync: sometimes}\nsources:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			yml := strings.Replace(base, tt.old, tt.new, 1)
			if yml == base {
				t.Fatal("the test did not change the config")
			}
			cfg, err := config.Parse("t.yaml", []byte(yml), os.LookupEnv)
			if err == nil {
				_, err = router.Compile(cfg)
			}
			if err == nil {
				t.Fatal("validate accepts the config: the test is wrong")
			}
			if err := s.Validate(yamlInstance(t, []byte(yml))); err == nil {
				t.Errorf("the schema accepts a config that validate refuses (%v)", err)
			}
		})
	}
}

// TestSchemaCoversEveryPlugin walks the registries: every source and sink
// type has its keys in the schema, and its example.yaml passes it, so a
// new plugin whose config the schema cannot describe fails here.
func TestSchemaCoversEveryPlugin(t *testing.T) {
	s, raw := configSchema(t)
	defs := raw["$defs"].(map[string]any)
	for _, p := range []struct {
		kind  string
		types []string
	}{{"source", sources.Types()}, {"sink", sinks.Types()}} {
		if len(p.types) < 5 {
			t.Fatalf("only %d %s types registered", len(p.types), p.kind)
		}
		for _, typ := range p.types {
			def, ok := defs[p.kind+"-"+typ].(map[string]any)
			if !ok {
				t.Errorf("%s type %q: not in the schema", p.kind, typ)
				continue
			}
			if def["additionalProperties"] != false {
				t.Errorf("%s type %q: unknown keys not refused", p.kind, typ)
			}
			props := def["properties"].(map[string]any)
			if len(props) <= 2 {
				t.Errorf("%s type %q: no keys but name and type", p.kind, typ)
			}
			f := filepath.Join("../..", p.kind+"s", typ, "example.yaml")
			b, err := os.ReadFile(f)
			if err != nil {
				t.Errorf("%s type %q: %v (each connector has an example.yaml)", p.kind, typ, err)
				continue
			}
			if err := s.Validate(yamlInstance(t, b)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}
