package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// SchemaURI is the JSON Schema dialect Schema writes.
const SchemaURI = "https://json-schema.org/draft/2020-12/schema"

// SchemaProvider is implemented by a type that decodes itself
// (yaml.Unmarshaler) to give the JSON Schema of its YAML form. Schema
// fails on a self-decoding type without it, so that no key goes
// undescribed.
type SchemaProvider interface {
	JSONSchema() map[string]any
}

// PluginConfigs are the config types of every source and sink type, by
// type name: what each factory returns (a pointer to a struct), decoded by
// Decode from the plugin's own keys.
type PluginConfigs struct {
	Sources, Sinks map[string]any
}

// Schema returns the JSON Schema (draft 2020-12) of a config file, made by
// reflection over the types Parse decodes, so that it cannot drift from
// them: the top-level keys, routes, and per source and sink type its own
// keys with the loader's common ones (name, type; dedup, auth and
// rateLimit on sources;
// delivery, concurrency, batch ... on sinks). Unknown keys are refused
// (additionalProperties: false), as Decode refuses them. A scalar the
// loader reads from a string ("10s", "1MiB", "yes") may be one, and any
// scalar may be a ${NAME} reference, which the loader expands.
func Schema(plugins PluginConfigs) (map[string]any, error) {
	var r reflector
	top := r.object(reflect.TypeOf(Config{}))
	props := top["properties"].(map[string]any)
	sinkCommon := r.object(reflect.TypeOf(sinkCommon{}))["properties"].(map[string]any)
	props["sources"] = r.plugins("source", plugins.Sources, map[string]any{
		"dedup": r.of(reflect.TypeOf(Duration(0))),
		// auth and rateLimit: on sources served on the HTTP ingress (see
		// security.go); rateLimit is written as a sink's.
		"auth":      r.of(reflect.TypeOf(Auth{})),
		"rateLimit": sinkCommon["rateLimit"],
	})
	props["sinks"] = r.plugins("sink", plugins.Sinks, sinkCommon)
	route := r.object(reflect.TypeOf(Route{}))
	route["required"] = []string{"name", "to"}
	props["routes"] = nullable(map[string]any{"type": "array", "items": route})
	r.annotate("the config", props, keyDocs[""], keyEnums[""])
	r.annotate("routes", route["properties"].(map[string]any), keyDocs["Route"], keyEnums["Route"])
	for name := range r.defs {
		def, _ := r.defs[name].(map[string]any)
		if props, ok := def["properties"].(map[string]any); ok && (keyDocs[name] != nil || keyEnums[name] != nil) {
			r.annotate(name, props, keyDocs[name], keyEnums[name])
		}
	}
	for name := range keyDocs {
		if _, ok := r.defs[name]; !ok && name != "" && name != "Route" {
			r.errs = append(r.errs, fmt.Sprintf("no type %s to describe", name))
		}
	}
	for name := range keyEnums {
		if _, ok := r.defs[name]; !ok {
			r.errs = append(r.errs, fmt.Sprintf("no type %s to list values of", name))
		}
	}
	if err := r.err(); err != nil {
		return nil, err
	}
	top["type"] = []string{"object", "null"} // an empty file is a config
	top["$schema"] = SchemaURI
	top["title"] = "Junction config"
	top["description"] = "Junction's config file (junction.yaml); see `junction help validate`."
	top["$defs"] = r.defs
	return top, nil
}

// keyDocs describe keys for editors, per struct (its $defs name; "" is
// the top level): a short line each. Schema fails on a key that does not
// exist, so that they follow the types.
var keyDocs = map[string]map[string]string{
	"": {
		"http":    "the shared HTTP ingress of the http and webhook sources",
		"admin":   "the admin listener: /healthz, /readyz, /metrics and the /api/v1 management API",
		"journal": "the durable store: embedded NATS JetStream in dir, or an external server at url",
		"log":     "Junction's own log",
		"sources": "where events come from; each has a name and a type",
		"sinks":   "where events go; each has a name and a type",
		"routes":  "which events go to which sinks, transformed how, with which delivery policy",
	},
	"HTTP": {
		"listen":                  "address of the ingress, host:port (default 127.0.0.1:8080)",
		"maxBodySize":             "largest request body accepted, 413 beyond (default 1MiB)",
		"maxHeaderBytes":          "largest request header accepted, 431 beyond (default 64KiB)",
		"maxConnectionsPerClient": "connections one client address may hold open; one over is closed at once (default 0: no cap)",
		"tls":                     "serve HTTPS with these certificate files (re-read when they change)",
	},
	"Admin": {
		"listen":   "address of the admin API, host:port (default 127.0.0.1:9090), or off",
		"tls":      "serve HTTPS with these certificate files (re-read when they change)",
		"auth":     "bearer tokens for /api/*, the console's data and /metrics; /healthz and /readyz stay open",
		"insecure": "true: let the admin API listen beyond loopback without auth",
	},
	"TLS": {
		"certFile":     "the certificate (PEM, with its chain), relative to the config file",
		"keyFile":      "its private key (PEM)",
		"clientCAFile": "CAs of client certificates: with it, clients must present one (mutual TLS)",
		"clientAuth":   "require (default with clientCAFile) or verifyIfGiven",
	},
	"AdminAuth": {
		"bearer":      "tokens, each from the environment (- ${JUNCTION_ADMIN_TOKEN})",
		"openMetrics": "true: /metrics needs no token",
	},
	"Auth": {
		"bearer": "tokens a request may carry (Authorization: Bearer TOKEN), each from the environment",
		"basic":  "users and their passwords (HTTP basic authentication)",
	},
	"Journal": {
		"dir":            "directory of the embedded journal (default ./data)",
		"url":            "an external NATS JetStream server or cluster, comma-separated URLs",
		"fsync":          "always: fsync before every acknowledgement; interval: every syncInterval (default)",
		"trace":          "keep the event log, the trace of each accepted event (GET /api/v1/events/{id}); default true",
		"traceRetention": "how long the event log keeps a trace (default 24h, at least 1m)",
		"traceMaxBytes":  "size of the event log; past it the oldest records go first (default 1GiB)",
	},
	"Route": {
		"name":      "the route's name, unique",
		"sources":   "only events from these sources (default: all)",
		"filter":    "an expression that must be true for the route to take the event",
		"filters":   "CloudEvents subscription filters (exact, prefix, suffix, all, any, not)",
		"transform": "new attributes and data for the event, each an expression",
		"to":        "the sinks the event goes to",
		"delivery":  "the delivery policy, over the sinks' own",
		"orderBy":   "an expression: deliveries with the same key reach each sink one at a time, in order",
		"delay":     "deliver no sooner than this after acceptance",
		"deliverAt": "an expression: when to deliver (an RFC 3339 time); nil or past is now",
		"priority":  "an expression: an integer 0..9, higher first when a sink has a backlog",
	},
	"Delivery": {
		"retry":         "retries after the first attempt (default: unbounded, maxAge ends them; 0 is one attempt)",
		"backoffPolicy": "how retry delays grow: exponential (default), linear or constant",
		"backoffDelay":  "the first retry's delay (default 500ms)",
		"maxDelay":      "the longest retry delay (default 5m)",
		"timeout":       "per attempt (default 10s)",
		"maxAge":        "no retry later than this after acceptance (default 24h)",
		"deadLetter":    "the sink that receives what is given up on",
		"onExhausted":   "keep (default): keep given-up events in the dead-letter store; drop: log, count and drop them",
	},
	"Transform": {
		"attributes": "attribute name → expression; its result becomes the attribute (null removes it)",
		"data":       "an expression; its result becomes the event's data",
	},
	"Batch": {
		"maxEvents": "send a batch once it has this many events (default 100)",
		"maxWait":   "send a batch this long after its first event (default 200ms)",
	},
}

// keyEnums are the values a string key takes, per struct as in keyDocs.
var keyEnums = map[string]map[string][]string{
	"Journal":  {"fsync": {"always", "interval"}},
	"TLS":      {"clientAuth": {ClientAuthRequire, ClientAuthVerifyIfGiven}},
	"Log":      {"level": {"debug", "info", "warn", "error"}, "format": {"text", "json"}},
	"Delivery": {"backoffPolicy": {BackoffExponential, BackoffLinear, BackoffConstant}, "onExhausted": {OnExhaustedKeep, OnExhaustedDrop}},
}

// annotate adds docs and enums to the properties of what; a key that is
// not there is an error.
func (r *reflector) annotate(what string, props map[string]any, docs map[string]string, enums map[string][]string) {
	for key, doc := range docs {
		p, ok := props[key].(map[string]any)
		if !ok {
			r.errs = append(r.errs, fmt.Sprintf("%s has no key %q to describe", what, key))
			continue
		}
		p["description"] = doc
	}
	for key, values := range enums {
		if _, ok := props[key]; !ok {
			r.errs = append(r.errs, fmt.Sprintf("%s has no key %q to list values of", what, key))
			continue
		}
		s := withEnv(map[string]any{"enum": values})
		if doc, ok := docs[key]; ok {
			s["description"] = doc
		}
		props[key] = s
	}
}

// reflector makes schemas of Go types as Decode reads them.
type reflector struct {
	errs []string
	defs map[string]any
}

func (r *reflector) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	sort.Strings(r.errs)
	return fmt.Errorf("config schema: %s", strings.Join(r.errs, "; "))
}

// ref stores schema s in $defs under name (once) and refers to it.
func (r *reflector) ref(name string, s func() map[string]any) map[string]any {
	if r.defs == nil {
		r.defs = map[string]any{}
	}
	if _, ok := r.defs[name]; !ok {
		r.defs[name] = s()
	}
	return map[string]any{"$ref": "#/$defs/" + name}
}

// plugins is the schema of `sources:` or `sinks:`: a list whose items are
// chosen by type, each with the common keys and the type's own.
func (r *reflector) plugins(kind string, configs map[string]any, common map[string]any) map[string]any {
	if r.defs == nil {
		r.defs = map[string]any{}
	}
	types := make([]string, 0, len(configs))
	for t := range configs {
		types = append(types, t)
	}
	sort.Strings(types)
	var branches []any
	for _, typ := range types {
		t := reflect.TypeOf(configs[typ])
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		own := r.of(t)
		if t.Kind() != reflect.Struct || own["properties"] == nil {
			r.errs = append(r.errs, fmt.Sprintf("%s type %q: config %s is not a struct decoded from keys", kind, typ, t))
			continue
		}
		def := map[string]any{"type": "object", "additionalProperties": false, "required": []string{"name", "type"}}
		props := map[string]any{
			"name": map[string]any{"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$", "description": "the " + kind + "'s name, unique among sources and sinks"},
			"type": map[string]any{"const": typ},
		}
		for k, v := range common {
			props[k] = v
		}
		for k, v := range own["properties"].(map[string]any) {
			if _, dup := props[k]; dup {
				r.errs = append(r.errs, fmt.Sprintf("%s type %q: key %q is also a common key", kind, typ, k))
			}
			props[k] = v
		}
		def["properties"] = props
		name := kind + "-" + typ
		r.defs[name] = def
		branches = append(branches, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": typ}}, "required": []string{"type"}},
			"then": map[string]any{"$ref": "#/$defs/" + name},
		})
	}
	item := map[string]any{
		"type":     "object",
		"required": []string{"name", "type"},
		"properties": map[string]any{
			"type": map[string]any{"enum": types, "description": "the " + kind + " type"},
		},
	}
	if len(branches) > 0 {
		item["allOf"] = branches
	}
	return nullable(map[string]any{"type": "array", "items": item})
}

var (
	schemaProviderType = reflect.TypeOf((*SchemaProvider)(nil)).Elem()
	interfaceType      = reflect.TypeOf((*any)(nil)).Elem()
)

// of is the schema of t as Decode reads it.
func (r *reflector) of(t reflect.Type) map[string]any {
	if t == nodeType || t == interfaceType {
		return map[string]any{} // any value
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(schemaProviderType) {
		sp := reflect.New(t).Interface().(SchemaProvider)
		if t.PkgPath() == reflect.TypeOf(Config{}).PkgPath() {
			return r.ref(t.Name(), sp.JSONSchema) // one copy of config's own
		}
		return sp.JSONSchema()
	}
	if pt.Implements(unmarshalerType) {
		r.errs = append(r.errs, fmt.Sprintf("type %s decodes itself (UnmarshalYAML) and has no JSONSchema method (see config.SchemaProvider)", t))
		return map[string]any{}
	}
	if t.Kind() == reflect.Pointer {
		return nullable(r.of(t.Elem()))
	}
	if t == durationType {
		return r.ref("goDuration", goDurationSchema)
	}
	if pt.Implements(textType) {
		return scalarSchema()
	}
	switch t.Kind() {
	case reflect.String:
		return scalarSchema()
	case reflect.Bool:
		return r.ref("boolean", func() map[string]any {
			return withEnv(map[string]any{"type": "boolean"},
				map[string]any{"type": "string", "enum": []string{"true", "false", "yes", "no", "on", "off", "True", "False", "Yes", "No", "On", "Off", "TRUE", "FALSE", "YES", "NO", "ON", "OFF"}})
		})
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.ref("integer", func() map[string]any {
			return withEnv(map[string]any{"type": "integer"}, map[string]any{"type": "string", "pattern": `^[-+]?[0-9][0-9a-fA-FxXoObB_]*$`})
		})
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return r.ref("unsigned", func() map[string]any {
			return withEnv(map[string]any{"type": "integer", "minimum": 0}, map[string]any{"type": "string", "pattern": `^\+?[0-9][0-9a-fA-FxXoObB_]*$`})
		})
	case reflect.Float32, reflect.Float64:
		return r.ref("number", func() map[string]any {
			return withEnv(map[string]any{"type": "number"}, map[string]any{"type": "string", "pattern": `^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`})
		})
	case reflect.Slice:
		return nullable(map[string]any{"type": "array", "items": r.of(t.Elem())})
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			r.errs = append(r.errs, fmt.Sprintf("type %s: map keys must be strings", t))
		}
		return nullable(map[string]any{"type": "object", "additionalProperties": r.of(t.Elem())})
	case reflect.Struct:
		if t.PkgPath() == reflect.TypeOf(Config{}).PkgPath() && t.Name() != "" {
			return r.ref(t.Name(), func() map[string]any { return nullable(r.object(t)) })
		}
		return nullable(r.object(t))
	}
	r.errs = append(r.errs, fmt.Sprintf("type %s cannot be decoded from YAML", t))
	return map[string]any{}
}

// object is the schema of struct t: its keys as fieldsOf finds them (the
// keys Decode accepts), no others.
func (r *reflector) object(t reflect.Type) map[string]any {
	fields, names := fieldsOf(t)
	props := map[string]any{}
	for _, name := range names {
		props[name] = r.of(t.FieldByIndex(fields[name].index).Type)
	}
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}

// nullable lets s also be null (an empty YAML value), as Decode takes it
// for pointers, lists, mappings and structs.
func nullable(s map[string]any) map[string]any {
	if t, ok := s["type"].(string); ok {
		s["type"] = []string{t, "null"}
		return s
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

// envPattern matches a ${NAME} or ${NAME:-default} reference, which the
// loader replaces before decoding.
const envPattern = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`

// withEnv is one of the schemas given, or a string with a ${NAME} reference.
func withEnv(s ...map[string]any) map[string]any {
	alts := make([]any, 0, len(s)+1)
	for _, x := range s {
		alts = append(alts, x)
	}
	alts = append(alts, map[string]any{"type": "string", "pattern": envPattern})
	return map[string]any{"anyOf": alts}
}

// scalarSchema is a string: Decode takes any scalar's text (8080, true,
// 1.0) for one.
func scalarSchema() map[string]any {
	return map[string]any{"type": []string{"string", "number", "boolean"}}
}

// goUnits is a Go duration without its sign; goDuration with it.
const (
	goUnits    = `(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+`
	goDuration = `[-+]?` + goUnits
)

func goDurationSchema() map[string]any {
	return withEnv(map[string]any{"type": "string", "pattern": `^\s*(` + goDuration + `|[-+]?0)\s*$`, "description": "a duration: 200ms, 10s, 1m, 1h30m"},
		map[string]any{"const": 0})
}

// JSONSchema implements SchemaProvider.
func (*Expr) JSONSchema() map[string]any {
	return map[string]any{"type": []string{"string", "number", "boolean", "null"}, "description": "an expression (expr-lang) over the event's attributes and data"}
}

// JSONSchema implements SchemaProvider.
func (*ExprMap) JSONSchema() map[string]any {
	return map[string]any{"type": []string{"object", "null"}, "additionalProperties": (*Expr)(nil).JSONSchema()}
}

// JSONSchema implements SchemaProvider.
func (*Ref) JSONSchema() map[string]any {
	return map[string]any{"anyOf": []any{
		map[string]any{"type": "string", "minLength": 1},
		map[string]any{"type": []string{"number", "boolean"}},
	}, "description": "the name of a sink or source"}
}

// JSONSchema implements SchemaProvider.
func (*Duration) JSONSchema() map[string]any {
	return withEnv(map[string]any{"type": "string", "pattern": `^\s*([0-9]+d(` + goUnits + `)?|` + goDuration + `|[-+]?0)\s*$`, "description": "a duration: 30s, 24h, 14d, 1d12h"},
		map[string]any{"const": 0})
}

// JSONSchema implements SchemaProvider.
func (*ByteSize) JSONSchema() map[string]any {
	return withEnv(map[string]any{"type": "integer", "minimum": 0},
		map[string]any{"type": "string", "pattern": `^\s*[0-9]+\s*([bB]|[kKmMgG]([iI]?[bB])?)?\s*$`, "description": "a size: 512KiB, 1MiB, 10MB"})
}

var (
	_ SchemaProvider = (*Expr)(nil)
	_ SchemaProvider = (*ExprMap)(nil)
	_ SchemaProvider = (*Ref)(nil)
	_ SchemaProvider = (*Duration)(nil)
	_ SchemaProvider = (*ByteSize)(nil)
)
