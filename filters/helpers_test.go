package filters

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
)

// evOpt changes a test event.
type evOpt func(e *event.Event)

func withType(s string) evOpt       { return func(e *event.Event) { e.SetType(s) } }
func withSubject(s string) evOpt    { return func(e *event.Event) { e.SetSubject(s) } }
func withTime(t time.Time) evOpt    { return func(e *event.Event) { e.SetTime(t) } }
func withSchema(s string) evOpt     { return func(e *event.Event) { e.SetDataSchema(s) } }
func withExt(k string, v any) evOpt { return func(e *event.Event) { e.SetExtension(k, v) } }

// clearCT removes the datacontenttype.
func clearCT(e *event.Event) { e.SetDataContentType("") }

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// withData sets the raw payload and its content type ("" for none).
func withData(ct, body string) evOpt {
	return func(e *event.Event) {
		if ct != "" {
			e.SetDataContentType(ct)
		}
		e.DataEncoded = []byte(body)
	}
}

// newEvent returns a valid event: id 1, source /orders, type
// com.example.order.created, JSON data {"amount":150,...}, plus opts.
func newEvent(t testing.TB, opts ...evOpt) *event.Event {
	t.Helper()
	e := event.New()
	e.SetID("1")
	e.SetSource("/orders")
	e.SetType("com.example.order.created")
	withData("application/json", `{"amount":150,"orderId":"o-1","customer":{"id":"c-7","tags":["vip","eu"]},"items":[{"sku":"a","qty":2},{"sku":"b","qty":1}]}`)(&e)
	for _, o := range opts {
		o(&e)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("test event is invalid: %v", err)
	}
	return &e
}

// yamlNode parses src and returns the value of key in its top mapping.
func yamlNode(t testing.TB, src, key string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("parse YAML: %v", err)
	}
	n := config.Locate(&doc, key)
	if n == nil || n == doc.Content[0] {
		t.Fatalf("no %q in YAML", key)
	}
	return n
}

// errText returns err's text, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func oneLine(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}
