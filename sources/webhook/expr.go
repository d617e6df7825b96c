package webhooksource

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/google/uuid"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/sources"
)

// Names in the expression environment.
const (
	envHeaders = "headers"
	envBody    = "body"
	envRawBody = "rawBody"
	envPath    = "path"
	envQuery   = "query"
	envMethod  = "method"
)

// uses records which names of the environment the expressions read, so
// that a request builds (and parses) only those.
type uses uint8

const (
	useHeaders uses = 1 << iota
	useBody
	useRawBody
	usePath
	useQuery
	useMethod
	useAll = useHeaders | useBody | useRawBody | usePath | useQuery | useMethod
)

func (u *uses) mark(name string) {
	switch name {
	case envHeaders:
		*u |= useHeaders
	case envBody:
		*u |= useBody
	case envRawBody:
		*u |= useRawBody
	case envPath:
		*u |= usePath
	case envQuery:
		*u |= useQuery
	case envMethod:
		*u |= useMethod
	case "$env":
		*u |= useAll
	}
}

// compileEnv types the environment for the checker: headers and query are
// maps, body is anything.
var compileEnv = types.Map{
	envHeaders: types.TypeOf(map[string]any{}),
	envBody:    types.Any,
	envRawBody: types.String,
	envPath:    types.String,
	envQuery:   types.TypeOf(map[string]any{}),
	envMethod:  types.String,
}

type program struct {
	name string // attribute name; "" for data
	prog *filters.Program
	null bool // the YAML value was null: leave the attribute unset
}

// compiled is what Validate makes of the expressions.
type compiled struct {
	attrs []program
	data  *program
	uses  uses
	// setID and setContentType record whether the config gives these
	// attributes (the defaults apply otherwise).
	setID, setContentType bool
}

// compileOne compiles one expression through filters (the cost budget,
// nil-safe member access) and marks the names it reads.
func compileOne(e config.Expr, key string, u *uses) (*filters.Program, error) {
	p, err := filters.CompileExprWith(key, e, compileEnv)
	if err != nil {
		return nil, err
	}
	for _, name := range p.Names() {
		u.mark(name)
	}
	return p, nil
}

// Core CloudEvents attributes. specversion is always 1.0.
var required = map[string]bool{"id": true, "source": true, "type": true}

// maxAttrName is the longest attribute name accepted (the CloudEvents
// spec's recommended limit).
const maxAttrName = 20

func validAttrName(s string) bool {
	if s == "" || len(s) > maxAttrName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func compile(attrs config.ExprMap, data config.Expr) (*compiled, []error) {
	var errs []error
	c := &compiled{}
	for _, a := range attrs {
		key := "attributes." + a.Name
		switch {
		case !validAttrName(a.Name):
			errs = append(errs, &config.Error{Pos: a.NamePos, Msg: fmt.Sprintf("%s: %q is not a CloudEvents attribute name (lower-case letters a-z and digits, at most %d)", key, a.Name, maxAttrName)})
			continue
		case a.Name == "specversion":
			errs = append(errs, &config.Error{Pos: a.NamePos, Msg: key + ": cannot be set (it is always 1.0)"})
			continue
		case a.Name == "data":
			errs = append(errs, &config.Error{Pos: a.NamePos, Msg: key + ": data is not an attribute; use the data key"})
			continue
		case a.Expr.Null && required[a.Name]:
			errs = append(errs, &config.Error{Pos: a.Expr.Pos, Msg: fmt.Sprintf("%s: cannot be null (%s is required; leave the key out for the default)", key, a.Name)})
			continue
		}
		c.setID = c.setID || a.Name == "id"
		c.setContentType = c.setContentType || a.Name == "datacontenttype"
		p := program{name: a.Name, null: a.Expr.Null}
		if !a.Expr.Null {
			prog, err := compileOne(a.Expr, key, &c.uses)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.prog = prog
		}
		c.attrs = append(c.attrs, p)
	}
	if data.IsSet() {
		p := program{null: data.Null}
		if !data.Null {
			prog, err := compileOne(data, "data", &c.uses)
			if err != nil {
				errs = append(errs, err)
			}
			p.prog = prog
		}
		c.data = &p
	}
	return c, errs
}

// runError is a run-time expression error as one line without the snippet.
func runError(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

// env builds the expression environment of one request. isJSON reports
// whether body was parsed as JSON (and so is valid JSON).
func (c *compiled) env(r *http.Request, body []byte, mediaType string) (env map[string]any, isJSON bool) {
	env = make(map[string]any, 6)
	if c.uses&useHeaders != 0 {
		h := make(map[string]any, len(r.Header))
		for k, v := range r.Header {
			if len(v) > 0 {
				h[strings.ToLower(k)] = v[0]
			}
		}
		env[envHeaders] = h
	}
	if c.uses&useBody != 0 {
		env[envBody], isJSON = parseBody(body, mediaType)
	}
	if c.uses&useRawBody != 0 {
		env[envRawBody] = string(body)
	}
	if c.uses&usePath != 0 {
		env[envPath] = r.URL.Path
	}
	if c.uses&useQuery != 0 {
		q := map[string]any{}
		for k, v := range r.URL.Query() {
			if len(v) > 0 {
				q[k] = v[0]
			}
		}
		env[envQuery] = q
	}
	if c.uses&useMethod != 0 {
		env[envMethod] = r.Method
	}
	return env, isJSON
}

// parseBody is the body parsed as JSON when it is JSON (sources.ValidJSON:
// strict, in valid UTF-8), else the body as a string.
func parseBody(body []byte, mediaType string) (v any, isJSON bool) {
	if len(body) == 0 {
		return "", false
	}
	if (cejson.IsJSON(mediaType) || looksLikeJSON(body)) && sources.ValidJSON(body) {
		if err := json.Unmarshal(body, &v); err == nil {
			return v, true
		}
	}
	return string(body), false
}

func looksLikeJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[', '"', '-', 't', 'f', 'n', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return true
		}
		return false
	}
	return false
}

// embedsJSON reports whether the CloudEvents SDK writes data of this media
// type into structured JSON unquoted, so that it must be valid JSON ("" is
// an absent datacontenttype, which the SDK takes as JSON).
func embedsJSON(mt string) bool {
	switch mt {
	case "", event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON:
		return true
	}
	return false
}

const defaultContentType = "application/octet-stream"

// event makes the CloudEvent of one request.
func (w *Webhook) event(r *http.Request, body []byte) (*event.Event, error) {
	c := w.compiled
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = defaultContentType
	}
	mt := cejson.MediaType(ct)

	ec := &event.EventContextV1{Source: w.source, Type: DefaultEventType}
	e := &event.Event{Context: ec}
	if !c.setID {
		if w.idFromHeader {
			ec.ID = r.Header.Get(headerWebhookID)
		}
		if ec.ID == "" {
			ec.ID = uuid.NewString()
		}
	}

	var env map[string]any
	bodyIsJSON := false // known to be valid JSON
	if c.uses != 0 {
		env, bodyIsJSON = c.env(r, body, mt)
	}

	// Data first, so that the attributes can override its content type.
	data, dataCT := body, ct
	if c.data != nil {
		var err error
		data, dataCT, err = evalData(c.data, env)
		if err != nil {
			return nil, err
		}
		bodyIsJSON = false
	}
	if len(data) > 0 {
		e.DataEncoded = data
		if !c.setContentType {
			_ = ec.SetDataContentType(dataCT)
		}
	}

	for i := range c.attrs {
		a := &c.attrs[i]
		var v any
		if !a.null {
			var err error
			v, err = a.prog.Run(env)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %s", a.name, runError(err))
			}
		}
		if err := setAttr(e, a.name, v); err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.name, err)
		}
	}

	if e.DataEncoded != nil {
		if embedsJSON(cejson.MediaType(e.DataContentType())) {
			if !bodyIsJSON && !sources.ValidJSON(e.DataEncoded) {
				what := "body"
				if c.data != nil {
					what = "data"
				}
				return nil, fmt.Errorf("%s is not valid JSON, but its content type is %s", what, orJSON(e.DataContentType()))
			}
		} else {
			// Bytes that are not UTF-8 travel base64-encoded in structured mode.
			e.DataBase64 = !utf8.Valid(e.DataEncoded)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, errors.New(sources.EventReason(err))
	}
	return e, nil
}

func orJSON(ct string) string {
	if ct == "" {
		return "absent (taken as application/json)"
	}
	return ct
}

// evalData runs the data expression: nil gives no data, a string is taken
// as text, bytes as octets, anything else is encoded as JSON.
func evalData(p *program, env map[string]any) ([]byte, string, error) {
	if p.null {
		return nil, "", nil
	}
	v, err := p.prog.Run(env)
	if err != nil {
		return nil, "", fmt.Errorf("data: %s", runError(err))
	}
	switch v := v.(type) {
	case nil:
		return nil, "", nil
	case string:
		return []byte(v), "text/plain; charset=utf-8", nil
	case []byte:
		return v, defaultContentType, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("data: encode as JSON: %w", err)
	}
	return b, event.ApplicationJSON, nil
}

// setAttr sets attribute name of e to v; nil (or "") leaves it unset, which
// is an error for id, source and type. The values are converted as
// transforms convert them (filters.SetAttribute: the same time, number and
// NaN rules); a datacontenttype must be a media type.
func setAttr(e *event.Event, name string, v any) error {
	ec := e.Context
	if v == nil {
		if required[name] {
			return fmt.Errorf("the expression gave nil, but %s is required", name)
		}
		unset(e, name)
		return nil
	}
	switch name {
	case "id", "source", "type", "subject", "datacontenttype", "dataschema":
		s, err := filters.ToString(v)
		if err != nil {
			return err
		}
		if strings.TrimSpace(s) == "" {
			if required[name] {
				return fmt.Errorf("the expression gave an empty string, but %s is required", name)
			}
			unset(e, name)
			return nil
		}
		if name == "datacontenttype" {
			if _, _, err := mime.ParseMediaType(s); err != nil {
				return fmt.Errorf("%q is not a media type", s)
			}
		}
		return filters.SetStringAttribute(ec, name, s)
	case "time":
	default:
		if s, ok := v.(string); ok && s == "" {
			return nil
		}
	}
	return filters.SetAttribute(ec, name, v)
}

func unset(e *event.Event, name string) {
	ec := e.Context
	switch name {
	case "subject":
		_ = ec.SetSubject("")
	case "datacontenttype":
		_ = ec.SetDataContentType("")
	case "dataschema":
		_ = ec.SetDataSchema("")
	case "time":
		_ = ec.SetTime(time.Time{})
	default:
		_ = ec.SetExtension(name, nil)
	}
}
