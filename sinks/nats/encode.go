package natssink

import (
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// Header names of the CloudEvents NATS binding.
const (
	hdrContentType = "content-type"
	hdrPrefix      = "ce-"
)

// ContentTypeStructured is the content-type of a structured-mode message.
const ContentTypeStructured = "application/cloudevents+json"

// encodeBinary makes a binary-mode message: every context attribute and
// extension as a ce-<name> header (lower case, the value as is),
// datacontenttype as content-type, and the data as the payload.
func encodeBinary(subject string, e *event.Event) (*nats.Msg, error) {
	m := &nats.Msg{Subject: subject, Header: make(nats.Header, 8), Data: e.Data()}
	if c, ok := e.Context.(*event.EventContextV1); ok {
		put := func(name, v string) error {
			if err := checkValue(name, v); err != nil {
				return err
			}
			m.Header[hdrPrefix+name] = []string{v}
			return nil
		}
		// The required attributes are known to be plain: sdk-go validated
		// them when the event was read.
		m.Header["ce-specversion"] = []string{event.CloudEventsVersionV1}
		if err := put("id", c.ID); err != nil {
			return nil, err
		}
		if err := put("source", c.Source.String()); err != nil {
			return nil, err
		}
		if err := put("type", c.Type); err != nil {
			return nil, err
		}
		if c.Subject != nil {
			if err := put("subject", *c.Subject); err != nil {
				return nil, err
			}
		}
		if c.Time != nil && !c.Time.IsZero() {
			m.Header["ce-time"] = []string{c.Time.Time.UTC().Format(time.RFC3339Nano)}
		}
		if c.DataSchema != nil {
			if err := put("dataschema", c.DataSchema.String()); err != nil {
				return nil, err
			}
		}
		if c.DataContentType != nil && *c.DataContentType != "" {
			if err := checkValue("datacontenttype", *c.DataContentType); err != nil {
				return nil, err
			}
			m.Header[hdrContentType] = []string{*c.DataContentType}
		}
		return m, putExtensions(m.Header, c.Extensions)
	}
	return m, putGeneric(m.Header, e.Context)
}

// putGeneric writes the attributes of any spec version sdk-go knows (0.3).
func putGeneric(h nats.Header, c event.EventContext) error {
	if c == nil {
		return fmt.Errorf("event has no context")
	}
	sv := spec.VS.Version(c.GetSpecVersion())
	if sv == nil {
		return fmt.Errorf("unsupported specversion %q", c.GetSpecVersion())
	}
	for _, a := range sv.Attributes() {
		v := a.Get(c)
		if v == nil {
			continue
		}
		s, err := types.Format(v)
		if err != nil {
			return fmt.Errorf("format attribute %s: %w", a.Name(), err)
		}
		if err := checkValue(a.Name(), s); err != nil {
			return err
		}
		if a.Kind() == spec.DataContentType {
			if s != "" {
				h[hdrContentType] = []string{s}
			}
			continue
		}
		h[hdrPrefix+a.Name()] = []string{s}
	}
	return putExtensions(h, c.GetExtensions())
}

func putExtensions(h nats.Header, ext map[string]any) error {
	for name, v := range ext {
		if !validExtensionName(name) {
			return fmt.Errorf("extension name %q is not valid (lower-case letters and digits only)", name)
		}
		s, err := types.Format(v)
		if err != nil {
			return fmt.Errorf("format extension %s: %w", name, err)
		}
		if err := checkValue(name, s); err != nil {
			return err
		}
		h[hdrPrefix+name] = []string{s}
	}
	return nil
}

// checkValue refuses control characters: NATS headers are lines, and the
// CloudEvents type system has no control characters in strings.
func checkValue(name, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c == 0x7F {
			return fmt.Errorf("attribute %s holds a control character, which a NATS header cannot carry (format: structured can)", name)
		}
	}
	return nil
}

func validExtensionName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// encodeStructured makes a structured-mode message: the event in the JSON
// format with content-type application/cloudevents+json.
func encodeStructured(subject string, e *event.Event) (*nats.Msg, error) {
	b, err := e.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: subject, Header: nats.Header{hdrContentType: {ContentTypeStructured}}, Data: b}, nil
}
