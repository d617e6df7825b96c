// Package filters compiles and evaluates the expressions of routes: expr-lang
// filters, the CloudEvents Subscriptions API filter dialects (exact, prefix,
// suffix, all, any, not) and transforms of attributes and data.
//
// Everything is compiled once, when the config is loaded; evaluating an event
// reuses the compiled programs and pooled virtual machines.
package filters

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/junctionhq/junction/internal/cejson"
)

// Env is the evaluation environment of one event: every CloudEvents context
// attribute (id, source, type, subject, time, datacontenttype, dataschema,
// specversion) and every extension as a top-level name, and `data`: the
// payload parsed when it is JSON (datacontenttype application/json,
// text/json, anything ending in +json, or empty with a body that parses as
// JSON), else the payload as a string; nil when there is no data.
//
// Data is parsed lazily, only when an expression reads it, and at most once.
// `time` is a time.Time; extensions are plain Go values (string, bool, int,
// time.Time; URIs as strings, binary values as base64 strings). An absent
// attribute is nil.
//
// An Env is safe for concurrent use. It keeps a reference to the event,
// which must not be modified while the Env is in use.
type Env struct {
	v vars
}

// vars is the value expressions run against (expr's environment). The
// exported fields are the attributes known at compile time, named by their
// expr tags; extensions and data are reached through the functions that the
// compiler substitutes for other names (see patcher).
type vars struct {
	ID              string `expr:"id"`
	Source          string `expr:"source"`
	Type            string `expr:"type"`
	Specversion     string `expr:"specversion"`
	Subject         any    `expr:"subject"`
	Datacontenttype any    `expr:"datacontenttype"`
	Dataschema      any    `expr:"dataschema"`
	Time            any    `expr:"time"`

	ev       *event.Event
	exts     map[string]any
	ct       string // datacontenttype, "" when absent
	b64      bool   // CloudEvents 0.3 data with datacontentencoding base64
	dataOnce sync.Once
	data     any
	parses   int // times data was parsed (tests check laziness)
}

// contextAttrs are the context attributes with a field in vars.
var contextAttrs = map[string]bool{
	"id": true, "source": true, "type": true, "specversion": true,
	"subject": true, "datacontenttype": true, "dataschema": true, "time": true,
}

// NewEnv returns the evaluation environment of e. A nil event, or one without
// a context, gives an environment in which every name is nil or empty.
func NewEnv(e *event.Event) *Env {
	env := &Env{}
	v := &env.v
	v.ev = e
	if e == nil || e.Context == nil {
		return env
	}
	switch c := e.Context.(type) {
	case *event.EventContextV1:
		v.ID, v.Type, v.Specversion = c.ID, c.Type, event.CloudEventsVersionV1
		v.Source = c.Source.String()
		v.setOptional(c.Subject, c.DataContentType, c.Time)
		if c.DataSchema != nil {
			v.Dataschema = c.DataSchema.String()
		}
		v.exts = c.Extensions
	case *event.EventContextV03:
		v.ID, v.Type, v.Specversion = c.ID, c.Type, event.CloudEventsVersionV03
		v.Source = c.Source.String()
		v.setOptional(c.Subject, c.DataContentType, c.Time)
		if c.SchemaURL != nil {
			v.Dataschema = c.SchemaURL.String()
		}
		v.b64 = c.DataContentEncoding != nil && *c.DataContentEncoding == event.Base64
		v.exts = c.Extensions
	default:
		v.ID, v.Source, v.Type, v.Specversion = c.GetID(), c.GetSource(), c.GetType(), c.GetSpecVersion()
		if s := c.GetSubject(); s != "" {
			v.Subject = s
		}
		if s := c.GetDataContentType(); s != "" {
			v.ct = s
			v.Datacontenttype = s
		}
		if s := c.GetDataSchema(); s != "" {
			v.Dataschema = s
		}
		if t := c.GetTime(); !t.IsZero() {
			v.Time = t
		}
		v.exts = c.GetExtensions()
	}
	return env
}

// setOptional sets the optional attributes that the 1.0 and 0.3 contexts
// both hold as pointers (nil when absent).
func (v *vars) setOptional(subject, ct *string, t *types.Timestamp) {
	if subject != nil {
		v.Subject = *subject
	}
	if ct != nil {
		v.ct = *ct
		v.Datacontenttype = v.ct
	}
	if t != nil {
		v.Time = t.Time
	}
}

// Event returns the event the environment was made from.
func (env *Env) Event() *event.Event { return env.v.ev }

// Data returns the event's data as expressions see it (see Env).
func (env *Env) Data() any { return env.v.getData() }

// Get returns the value of a top-level name (an attribute, an extension or
// data) as expressions see it; nil when absent.
func (env *Env) Get(name string) any { return env.v.get(name) }

func (v *vars) getData() any {
	v.dataOnce.Do(func() {
		v.data = parseData(v.ev, v.ct, v.b64)
		v.parses++
	})
	return v.data
}

func (v *vars) get(name string) any {
	switch name {
	case "id":
		return v.ID
	case "source":
		return v.Source
	case "type":
		return v.Type
	case "specversion":
		return v.Specversion
	case "subject":
		return v.Subject
	case "datacontenttype":
		return v.Datacontenttype
	case "dataschema":
		return v.Dataschema
	case "time":
		return v.Time
	case "data":
		return v.getData()
	}
	return v.ext(name)
}

// ext returns the extension name as a plain Go value, nil when absent.
func (v *vars) ext(name string) any {
	x, ok := v.exts[name]
	if !ok {
		return nil
	}
	return plainValue(x)
}

// plainValue converts sdk-go's attribute types to the values expressions see.
func plainValue(x any) any {
	switch x := x.(type) {
	case string, bool, int, time.Time:
		return x
	case int32:
		return int(x)
	case int64:
		return int(x)
	case types.Timestamp:
		return x.Time
	case *types.Timestamp:
		if x == nil {
			return nil
		}
		return x.Time
	case types.URI:
		return x.String()
	case *types.URI:
		if x == nil {
			return nil
		}
		return x.String()
	case types.URIRef:
		return x.String()
	case *types.URIRef:
		if x == nil {
			return nil
		}
		return x.String()
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	}
	return x
}

// attrString returns the canonical string form of an attribute or
// extension, and false when the event does not have it.
func (v *vars) attrString(name string) (string, bool) {
	switch name {
	case "id":
		return v.ID, v.ID != ""
	case "source":
		return v.Source, v.Source != ""
	case "type":
		return v.Type, v.Type != ""
	case "specversion":
		return v.Specversion, v.Specversion != ""
	case "subject", "datacontenttype", "dataschema":
		return v.exprString(name)
	case "time":
		t, ok := v.Time.(time.Time)
		if !ok {
			return "", false
		}
		return types.FormatTime(t), true
	}
	x, ok := v.exts[name]
	if !ok || x == nil {
		return "", false
	}
	if s, ok := x.(string); ok {
		return s, true
	}
	s, err := types.Format(x)
	if err != nil {
		return "", false
	}
	return s, true
}

// parseData returns the payload as expressions see it.
func parseData(e *event.Event, ct string, b64 bool) any {
	if e == nil || len(e.DataEncoded) == 0 {
		return nil
	}
	b := e.DataEncoded
	if b64 {
		if d, err := base64.StdEncoding.DecodeString(string(b)); err == nil {
			b = d
		}
	}
	if cejson.IsJSON(ct) {
		var x any
		if err := json.Unmarshal(b, &x); err == nil {
			return x
		}
	}
	return string(b)
}

// formatNumber formats a float the way JSON shows it, without exponent.
func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// member returns base.key or base[key] as expressions see it: nil when base
// is nil, the key is missing, the index is out of range or base has no
// members. Negative indexes count from the end of a list.
func member(base, key any) (out any) {
	switch b := base.(type) {
	case nil:
		return nil
	case map[string]any:
		k, ok := key.(string)
		if !ok {
			return nil
		}
		return b[k]
	case []any:
		i, ok := index(key, len(b))
		if !ok {
			return nil
		}
		return b[i]
	case string:
		// Strings have no fields; an index gives the character.
		i, ok := index(key, len(b))
		if !ok {
			return nil
		}
		return string(b[i])
	case *vars:
		k, ok := key.(string)
		if !ok {
			return nil
		}
		return b.get(k)
	case *meter:
		k, ok := key.(string)
		if !ok || b.vars == nil {
			return nil
		}
		return b.get(k)
	case bool, float64, int, time.Time:
		return nil
	}
	// Other values (typed maps, slices, structs) through expr's own lookup,
	// which panics on a missing member.
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	return runtime.Fetch(base, key)
}

// index converts an index value to a position in a list of length n.
func index(key any, n int) (int, bool) {
	var i int
	switch k := key.(type) {
	case int:
		i = k
	case float64:
		if k != math.Trunc(k) || k > math.MaxInt32 || k < math.MinInt32 {
			return 0, false
		}
		i = int(k)
	case int64:
		if k > math.MaxInt32 || k < math.MinInt32 {
			return 0, false
		}
		i = int(k)
	default:
		return 0, false
	}
	if i < 0 {
		i += n
	}
	if i < 0 || i >= n {
		return 0, false
	}
	return i, true
}
