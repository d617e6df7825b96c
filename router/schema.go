package router

import (
	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
)

// ConfigSchema returns the JSON Schema of a config file (see config.Schema)
// with the keys of every registered source and sink type: the Config its
// factory returns.
func ConfigSchema() (map[string]any, error) {
	p := config.PluginConfigs{Sources: map[string]any{}, Sinks: map[string]any{}}
	for _, typ := range sources.Types() {
		if f, ok := sources.Lookup(typ); ok {
			p.Sources[typ] = f()
		}
	}
	for _, typ := range sinks.Types() {
		if f, ok := sinks.Lookup(typ); ok {
			p.Sinks[typ] = f()
		}
	}
	return config.Schema(p)
}
