package filters

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/config"
)

// decodeTransform decodes `transform:` from YAML through the config package.
func decodeTransform(t *testing.T, src string) *config.Transform {
	t.Helper()
	var tr config.Transform
	if err := config.Decode(yamlNode(t, src, "transform"), &tr); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &tr
}

func TestTransformApply(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		yaml  string
		opts  []evOpt
		check func(t *testing.T, out *event.Event)
	}{
		{
			name: "set type and subject from data",
			yaml: `
transform:
  attributes:
    type: '"com.example.order.big"'
    subject: data.customer.id`,
			check: func(t *testing.T, out *event.Event) {
				eq(t, "type", out.Type(), "com.example.order.big")
				eq(t, "subject", out.Subject(), "c-7")
				eq(t, "data", string(out.Data()), string(newEvent(t).Data()))
			},
		},
		{
			name: "every expression sees the original event",
			yaml: `
transform:
  attributes:
    type: subject
    subject: type`,
			opts: []evOpt{withSubject("com.example.swapped")},
			check: func(t *testing.T, out *event.Event) {
				eq(t, "type", out.Type(), "com.example.swapped")
				eq(t, "subject", out.Subject(), "com.example.order.created")
			},
		},
		{
			name: "remove with null and with nil",
			yaml: `
transform:
  attributes:
    subject: null
    tenant: nope
    dataschema: ~`,
			opts: []evOpt{withSubject("s"), withExt("tenant", "acme"), withSchema("https://example.com/s")},
			check: func(t *testing.T, out *event.Event) {
				eq(t, "subject", out.Subject(), "")
				eq(t, "dataschema", out.DataSchema(), "")
				if _, ok := out.Extensions()["tenant"]; ok {
					t.Error("tenant was not removed")
				}
			},
		},
		{
			name: "numbers and bools formatted for string attributes",
			yaml: `
transform:
  attributes:
    subject: data.amount
    id: data.amount > 100`,
			check: func(t *testing.T, out *event.Event) {
				eq(t, "subject", out.Subject(), "150")
				eq(t, "id", out.ID(), "true")
			},
		},
		{
			name: "extension types",
			yaml: `
transform:
  attributes:
    tenant: '"acme"'
    urgent: data.amount > 100
    amount: data.amount
    ratio: data.amount / 7
    big: 3000000000
    seen: time`,
			opts: []evOpt{withTime(t0)},
			check: func(t *testing.T, out *event.Event) {
				ext := out.Extensions()
				eq(t, "tenant", ext["tenant"], any("acme"))
				eq(t, "urgent", ext["urgent"], any(true))
				eq(t, "amount", ext["amount"], any(int32(150)))
				eq(t, "ratio", ext["ratio"], any("21.428571428571427"))
				eq(t, "big", ext["big"], any("3000000000"))
				eq(t, "seen", ext["seen"], any(types.Timestamp{Time: t0}))
			},
		},
		{
			name: "time from a string and from a time",
			yaml: `
transform:
  attributes:
    time: data.at
    later: time + duration("1h")`,
			opts: []evOpt{withTime(t0), withData("application/json", `{"at":"2024-05-01T10:00:00.5+02:00"}`)},
			check: func(t *testing.T, out *event.Event) {
				eq(t, "time", out.Time().UTC(), time.Date(2024, 5, 1, 8, 0, 0, 5e8, time.UTC))
				eq(t, "later", out.Extensions()["later"], any(types.Timestamp{Time: t0.Add(time.Hour)}))
			},
		},
		{
			name: "time removed",
			yaml: "transform:\n  attributes:\n    time: null",
			opts: []evOpt{withTime(t0)},
			check: func(t *testing.T, out *event.Event) {
				if !out.Time().IsZero() {
					t.Errorf("time = %v, want none", out.Time())
				}
			},
		},
		{
			name: "data replaced with JSON",
			yaml: `
transform:
  data: '{"id": data.orderId, "total": data.amount, "html": "<b>"}'`,
			opts: []evOpt{withData("text/plain", "x"), withData("application/json", `{"orderId":"o-1","amount":150}`)},
			check: func(t *testing.T, out *event.Event) {
				eq(t, "data", string(out.Data()), `{"html":"<b>","id":"o-1","total":150}`)
				eq(t, "datacontenttype", out.DataContentType(), "application/json")
			},
		},
		{
			name: "text data becomes JSON",
			yaml: "transform:\n  data: data",
			opts: []evOpt{withData("text/plain", "hello")},
			check: func(t *testing.T, out *event.Event) {
				eq(t, "data", string(out.Data()), `"hello"`)
				eq(t, "datacontenttype", out.DataContentType(), "application/json")
			},
		},
		{
			name: "data with an explicit content type",
			yaml: `
transform:
  attributes:
    datacontenttype: '"application/vnd.example+json"'
  data: '{"n": 1}'`,
			check: func(t *testing.T, out *event.Event) {
				eq(t, "data", string(out.Data()), `{"n":1}`)
				eq(t, "datacontenttype", out.DataContentType(), "application/vnd.example+json")
			},
		},
		{
			name: "data removed",
			yaml: "transform:\n  data: null",
			check: func(t *testing.T, out *event.Event) {
				if out.Data() != nil {
					t.Errorf("data = %q, want none", out.Data())
				}
				eq(t, "datacontenttype", out.DataContentType(), "")
			},
		},
		{
			name: "data nil removes it",
			yaml: "transform:\n  data: data.nope",
			check: func(t *testing.T, out *event.Event) {
				if out.Data() != nil {
					t.Errorf("data = %q, want none", out.Data())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := CompileTransform(decodeTransform(t, tt.yaml))
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			in := newEvent(t, tt.opts...)
			before := in.Clone()
			out, err := tr.Apply(NewEnv(in))
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if err := out.Validate(); err != nil {
				t.Fatalf("result is invalid: %v", err)
			}
			tt.check(t, out)
			if in.String() != before.String() {
				t.Errorf("the input event was modified:\n%s\nwas:\n%s", in, before)
			}
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestTransformApplyErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		opts []evOpt
		want string
	}{
		{name: "remove id by nil", yaml: "transform:\n  attributes:\n    id: data.nope", want: "transform attribute id: id cannot be removed (the expression gave nil)"},
		{name: "empty type", yaml: "transform:\n  attributes:\n    type: '\"\"'", want: "transform attribute type: type cannot be empty"},
		{name: "map as attribute", yaml: "transform:\n  attributes:\n    subject: data.customer", want: "transform attribute subject: expected a string, number or bool, got a map"},
		{name: "list as extension", yaml: "transform:\n  attributes:\n    tags: data.customer.tags", want: "transform attribute tags: expected a string, number, bool or time, got a list"},
		{name: "bad time string", yaml: "transform:\n  attributes:\n    time: data.orderId", want: `transform attribute time: "o-1" is not an RFC 3339 time`},
		{name: "map as time", yaml: "transform:\n  attributes:\n    time: data.customer", want: "transform attribute time: expected a time, an RFC 3339 string or Unix seconds, got a map"},
		{name: "NaN as time", yaml: "transform:\n  attributes:\n    time: 0.0 / 0.0", want: "transform attribute time: NaN is not a Unix time in seconds"},
		{name: "huge Unix time", yaml: "transform:\n  attributes:\n    time: 1e13", want: "transform attribute time: 1e+13 is not a Unix time in seconds"},
		{name: "NaN as string", yaml: "transform:\n  attributes:\n    subject: 0.0 / 0.0", want: "transform attribute subject: cannot use NaN as a string"},
		{name: "NaN as extension", yaml: "transform:\n  attributes:\n    ratio: 0.0 / 0.0", want: "transform attribute ratio: cannot use NaN as a string"},
		{name: "run-time error", yaml: "transform:\n  attributes:\n    subject: data.amount + data.orderId", want: "evaluate transform attribute subject: invalid operation: float64 + string (1:13)"},
		{name: "bad source", yaml: "transform:\n  attributes:\n    source: '\"%zz\"'", want: `transform attribute source: parse "%zz": invalid URL escape "%zz"`},
		{name: "data not encodable", yaml: "transform:\n  data: '0.0 / 0.0'", want: "transform data: encode JSON: json: unsupported value: NaN"},
		{name: "data run-time error", yaml: "transform:\n  data: 'date(data.orderId)'", want: "evaluate transform data: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := CompileTransform(decodeTransform(t, tt.yaml))
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			out, err := tr.Apply(NewEnv(newEvent(t, tt.opts...)))
			if err == nil {
				t.Fatalf("applied (%v), want error %q", out, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			oneLine(t, err)
			if out != nil {
				t.Error("got an event with the error")
			}
		})
	}
}

func TestCompileTransformErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{
			name: "specversion",
			yaml: "transform:\n  attributes:\n    specversion: '\"0.3\"'",
			want: "config:3:5: transform.attributes.specversion: specversion cannot be set",
		},
		{
			name: "invalid names",
			yaml: "transform:\n  attributes:\n    Tenant: '\"a\"'\n    my-ext: '\"b\"'\n    averyveryverylongname1: '\"c\"'",
			want: "config:3:5: transform.attributes.Tenant: invalid attribute name \"Tenant\" (use lower-case letters a-z and digits 0-9, at most 20 characters)\n" +
				"config:4:5: transform.attributes.my-ext: invalid attribute name \"my-ext\" (use lower-case letters a-z and digits 0-9, at most 20 characters)\n" +
				"config:5:5: transform.attributes.averyveryverylongname1: invalid attribute name \"averyveryverylongname1\" (use lower-case letters a-z and digits 0-9, at most 20 characters)",
		},
		{
			name: "data as an attribute",
			yaml: "transform:\n  attributes:\n    data: '1'",
			want: "config:3:5: transform.attributes.data: data is not an attribute; use transform.data",
		},
		{
			name: "remove id, source, type",
			yaml: "transform:\n  attributes:\n    id: null\n    source: ~\n    type:",
			want: "config:3:9: transform.attributes.id: id cannot be removed\n" +
				"config:4:13: transform.attributes.source: source cannot be removed\n" +
				"config:5:10: transform.attributes.type: type cannot be removed",
		},
		{
			name: "syntax error in an attribute",
			yaml: "transform:\n  attributes:\n    subject: data.customer.",
			want: "config:3:14: transform.attributes.subject: unexpected end of expression (1:14)\n | data.customer.\n | .............^",
		},
		{
			name: "syntax error in data",
			yaml: "transform:\n  data: '{\"a\": }'",
			want: "config:2:9: transform.data: unexpected token Bracket(\"}\") (1:7)\n | {\"a\": }\n | ......^",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := CompileTransform(decodeTransform(t, tt.yaml))
			if err == nil {
				t.Fatalf("compiled, want error %q", tt.want)
			}
			if tr != nil {
				t.Error("got a transform with the error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Errorf("error is not config.Errors: %T", err)
			}
		})
	}
}

func TestTransformNil(t *testing.T) {
	tr, err := CompileTransform(nil)
	if tr != nil || err != nil {
		t.Fatalf("CompileTransform(nil) = %v, %v", tr, err)
	}
	in := newEvent(t)
	out, err := tr.Apply(NewEnv(in))
	if err != nil {
		t.Fatal(err)
	}
	if out == in || out.String() != in.String() {
		t.Errorf("nil transform did not return a copy")
	}
	if _, err := tr.Apply(NewEnv(nil)); err == nil {
		t.Error("Apply without an event did not fail")
	}
}

func TestTransformV03(t *testing.T) {
	in := newEvent(t)
	in.SetSpecVersion("0.3")
	in.SetDataContentEncoding("base64")
	in.DataEncoded = []byte("eyJhbW91bnQiOjE1MH0=") // {"amount":150}
	tr, err := CompileTransform(decodeTransform(t, "transform:\n  attributes:\n    dataschema: '\"https://example.com/s\"'\n  data: '{\"total\": data.amount}'"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := tr.Apply(NewEnv(in))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "data", string(out.Data()), `{"total":150}`)
	eq(t, "encoding", out.DeprecatedDataContentEncoding(), "")
	eq(t, "dataschema", out.DataSchema(), "https://example.com/s")
	eq(t, "input encoding", in.DeprecatedDataContentEncoding(), "base64")
}

// TestSetAttributeTime: the time attribute takes a time, an RFC 3339 string
// or Unix seconds (as the webhook source's attributes do: one conversion).
func TestSetAttributeTime(t *testing.T) {
	want := time.Date(2023, 11, 14, 22, 13, 20, 500_000_000, time.UTC)
	for _, v := range []any{want, "2023-11-14T22:13:20.5Z", 1700000000.5} {
		ctx := &event.EventContextV1{}
		if err := SetAttribute(ctx, "time", v); err != nil {
			t.Fatalf("SetAttribute(time, %#v): %v", v, err)
		}
		if got := ctx.GetTime(); !got.Equal(want) {
			t.Errorf("SetAttribute(time, %#v) = %v, want %v", v, got, want)
		}
	}
	ctx := &event.EventContextV1{}
	for _, v := range []any{1700000000, int64(1700000000), uint32(1700000000)} {
		if err := SetAttribute(ctx, "time", v); err != nil || !ctx.GetTime().Equal(want.Truncate(time.Second)) {
			t.Errorf("SetAttribute(time, %#v): %v, %v", v, ctx.GetTime(), err)
		}
	}
	if err := SetAttribute(ctx, "time", nil); err != nil || !ctx.GetTime().IsZero() {
		t.Errorf("SetAttribute(time, nil): %v, %v; want it removed", ctx.GetTime(), err)
	}
}
