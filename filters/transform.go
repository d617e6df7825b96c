package filters

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
)

// transformNameRE is a CloudEvents attribute name a transform may set.
var transformNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// Transform rewrites the attributes and data of an event. It is compiled
// once by CompileTransform and safe for concurrent use.
type Transform struct {
	attrs []attrOp
	data  *program // nil: data unchanged
	// dataSet is true when data is replaced (dataNull: removed).
	dataSet, dataNull bool
	// ctSet is true when the transform sets datacontenttype itself.
	ctSet bool
}

// attrOp sets one attribute; p is nil when the attribute is removed.
type attrOp struct {
	name string
	p    *program
}

// CompileTransform compiles a route's transform: each attribute expression
// and the data expression, once. Attribute names must be valid CloudEvents
// attribute names (lower-case a-z and 0-9, at most 20 characters);
// specversion cannot be set, and id, source and type cannot be removed (set
// to null). Errors are config.Errors at their YAML positions. A nil t gives
// (nil, nil). Each expression's evaluation has a cost budget, as filters do
// (see CompileFilter): a transform that exceeds it fails with an error that
// wraps ErrBudget.
func CompileTransform(t *config.Transform, opts ...Option) (*Transform, error) {
	if t == nil {
		return nil, nil
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	var errs config.Errors
	out := &Transform{}
	for _, a := range t.Attributes {
		where := "transform.attributes." + a.Name
		switch {
		case a.Name == "specversion":
			errs.Addf(a.NamePos, "", "%s: specversion cannot be set", where)
			continue
		case a.Name == "data":
			errs.Addf(a.NamePos, "", "%s: data is not an attribute; use transform.data", where)
			continue
		case !transformNameRE.MatchString(a.Name):
			errs.Addf(a.NamePos, "", "%s: invalid attribute name %q (use lower-case letters a-z and digits 0-9, at most 20 characters)", where, a.Name)
			continue
		}
		op := attrOp{name: a.Name}
		if a.Expr.Null {
			if required(a.Name) {
				errs.Addf(a.Expr.Pos, "", "%s: %s cannot be removed", where, a.Name)
				continue
			}
		} else {
			p, err := compile(a.Expr.Src, false, o)
			if err != nil {
				errs.Add(nil, "", compileError(a.Expr, where, err))
				continue
			}
			op.p = p
		}
		if a.Name == "datacontenttype" {
			out.ctSet = true
		}
		out.attrs = append(out.attrs, op)
	}
	if t.Data.IsSet() {
		out.dataSet = true
		if t.Data.Null {
			out.dataNull = true
		} else {
			p, err := compile(t.Data.Src, false, o)
			if err != nil {
				errs.Add(nil, "", compileError(t.Data, "transform.data", err))
			}
			out.data = p
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func required(name string) bool {
	return name == "id" || name == "source" || name == "type"
}

// Apply returns a new event made from env's event, with each attribute set
// to its expression's result and the data replaced when the transform says
// so. Every expression sees the original event, not the results of the
// others. A nil result removes the attribute (id, source and type cannot be
// removed). Strings are taken as they are, numbers and booleans formatted;
// time takes a time.Time or an RFC 3339 string; extensions keep string,
// bool and integer values. New data is encoded as JSON with datacontenttype
// application/json (unless the transform sets datacontenttype); a nil
// result removes the data. The input event is not modified; the new event
// shares its data bytes when data is unchanged. Errors are one line and
// name the attribute.
func (t *Transform) Apply(env *Env) (*event.Event, error) {
	if env == nil || env.v.ev == nil || env.v.ev.Context == nil {
		return nil, errors.New("transform: no event")
	}
	src := env.v.ev
	out := &event.Event{
		Context:     src.Context.Clone(),
		DataEncoded: src.DataEncoded,
		DataBase64:  src.DataBase64,
	}
	if t == nil {
		return out, nil
	}
	ctx := out.Context
	for _, a := range t.attrs {
		var val any
		if a.p != nil {
			v, err := a.p.run(env)
			if err != nil {
				return nil, &evalError{what: "transform attribute " + a.name, err: err}
			}
			val = v
		}
		if err := setAttr(ctx, a.name, val); err != nil {
			return nil, fmt.Errorf("transform attribute %s: %w", a.name, err)
		}
	}
	if t.dataSet {
		var val any
		if t.data != nil {
			v, err := t.data.run(env)
			if err != nil {
				return nil, &evalError{what: "transform data", err: err}
			}
			val = v
		}
		if err := setData(out, val, t.ctSet); err != nil {
			return nil, fmt.Errorf("transform data: %w", err)
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("transform: invalid event: %s", validationMessage(err))
	}
	return out, nil
}

// SetAttribute sets (or removes, for nil) the attribute name of ctx to an
// expression's result val, converted as transforms convert it: string
// attributes take strings, numbers (NaN and infinities refused) and bools;
// time takes a time, an RFC 3339 string or Unix seconds (a number); an
// extension takes a string, bool, integer or time, other numbers formatted
// as strings. The webhook source sets its attributes with it.
func SetAttribute(ctx event.EventContext, name string, val any) error { return setAttr(ctx, name, val) }

// setAttr sets (or removes, for nil) one attribute of ctx.
func setAttr(ctx event.EventContext, name string, val any) error {
	switch name {
	case "id", "source", "type", "subject", "datacontenttype", "dataschema":
		s := ""
		if val != nil {
			var err error
			if s, err = toString(val); err != nil {
				return err
			}
		}
		if s == "" && required(name) {
			if val == nil {
				return fmt.Errorf("%s cannot be removed (the expression gave nil)", name)
			}
			return fmt.Errorf("%s cannot be empty", name)
		}
		return SetStringAttribute(ctx, name, s)
	case "time":
		if val == nil {
			return ctx.SetTime(time.Time{})
		}
		t, err := toTime(val)
		if err != nil {
			return err
		}
		return ctx.SetTime(t)
	}
	if val == nil {
		return ctx.SetExtension(name, nil)
	}
	v, err := extensionValue(val)
	if err != nil {
		return err
	}
	return ctx.SetExtension(name, v)
}

// SetStringAttribute sets the context attribute name of ctx to s: one of
// id, source, type, subject, datacontenttype and dataschema, the attributes
// whose value is a string (or a URI given as one). Setting an optional one to
// "" removes it.
func SetStringAttribute(ctx event.EventContext, name, s string) error {
	switch name {
	case "id":
		return ctx.SetID(s)
	case "source":
		return ctx.SetSource(s)
	case "type":
		return ctx.SetType(s)
	case "subject":
		return ctx.SetSubject(s)
	case "datacontenttype":
		return ctx.SetDataContentType(s)
	case "dataschema":
		return ctx.SetDataSchema(s)
	}
	return fmt.Errorf("%s is not a string attribute", name)
}

// maxUnixSeconds bounds a time given as Unix seconds (about year 33658).
const maxUnixSeconds = 1e12

// toTime converts a result for the time attribute: a time, an RFC 3339
// string, or Unix seconds (a finite number, fractions kept to the
// nanosecond).
func toTime(val any) (time.Time, error) {
	switch v := val.(type) {
	case time.Time:
		return v, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", truncate(v))
		}
		return t, nil
	case float32:
		return toTime(float64(v))
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxUnixSeconds {
			return time.Time{}, fmt.Errorf("%v is not a Unix time in seconds", v)
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	rv := reflect.ValueOf(val)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i := rv.Int(); i >= -maxUnixSeconds && i <= maxUnixSeconds {
			return time.Unix(i, 0).UTC(), nil
		}
		return time.Time{}, fmt.Errorf("%d is not a Unix time in seconds", rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= maxUnixSeconds {
			return time.Unix(int64(u), 0).UTC(), nil
		}
		return time.Time{}, fmt.Errorf("%d is not a Unix time in seconds", rv.Uint())
	}
	return time.Time{}, fmt.Errorf("expected a time, an RFC 3339 string or Unix seconds, got %s", kindOf(val))
}

// toString formats a result for a string attribute.
func toString(val any) (string, error) {
	switch v := val.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", fmt.Errorf("cannot use %v as a string", v)
		}
		return formatNumber(v), nil
	case float32:
		return formatNumber(float64(v)), nil
	}
	rv := reflect.ValueOf(val)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.String:
		return rv.String(), nil
	}
	return "", fmt.Errorf("expected a string, number or bool, got %s", kindOf(val))
}

// extensionValue converts a result to an extension value: strings, bools
// and integers (within CloudEvents' 32 bits) keep their types, times stay
// times, other numbers are formatted.
func extensionValue(val any) (any, error) {
	switch v := val.(type) {
	case string, bool, time.Time:
		return v, nil
	case float64:
		if v == math.Trunc(v) && v >= math.MinInt32 && v <= math.MaxInt32 {
			return int32(v), nil
		}
		return toString(v)
	case float32:
		return extensionValue(float64(v))
	}
	rv := reflect.ValueOf(val)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i := rv.Int(); i >= math.MinInt32 && i <= math.MaxInt32 {
			return int32(i), nil
		}
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= math.MaxInt32 {
			return int32(u), nil
		}
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.String:
		return rv.String(), nil
	}
	return nil, fmt.Errorf("expected a string, number, bool or time, got %s", kindOf(val))
}

// setData replaces the data of e with val encoded as JSON; nil removes it.
func setData(e *event.Event, val any, ctSet bool) error {
	ctx := e.Context
	if v03, ok := ctx.(*event.EventContextV03); ok {
		v03.DataContentEncoding = nil
	}
	e.DataBase64 = false
	if val == nil {
		e.DataEncoded = nil
		if !ctSet {
			return ctx.SetDataContentType("")
		}
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(val); err != nil {
		return fmt.Errorf("encode JSON: %s", firstLine(err.Error()))
	}
	e.DataEncoded = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !ctSet {
		return ctx.SetDataContentType(event.ApplicationJSON)
	}
	return nil
}

// kindOf describes a value's type for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

func validationMessage(err error) string {
	var ve event.ValidationError
	if !errors.As(err, &ve) {
		return firstLine(err.Error())
	}
	keys := make([]string, 0, len(ve))
	for k := range ve {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + firstLine(ve[k].Error())
	}
	return strings.Join(parts, "; ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
