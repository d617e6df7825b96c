package natssink

import (
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/internal/cejson"
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
// datacontenttype as content-type (application/json when it is unset and
// the data is JSON, the type the JSON format implies; see
// cejson.ContentType), and the data as the payload.
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
		} else if ct := cejson.ContentType(e); ct != "" {
			m.Header[hdrContentType] = []string{ct}
		}
		return m, putExtensions(m.Header, c.Extensions)
	}
	if err := putGeneric(m.Header, e.Context); err != nil {
		return m, err
	}
	if _, ok := m.Header[hdrContentType]; !ok {
		if ct := cejson.ContentType(e); ct != "" {
			m.Header[hdrContentType] = []string{ct}
		}
	}
	return m, nil
}

// putGeneric writes the attributes of any spec version sdk-go knows (0.3).
func putGeneric(h nats.Header, c event.EventContext) error {
	return cehttp.EachAttribute(c, func(name, s string, contentType bool) error {
		if err := checkValue(name, s); err != nil {
			return err
		}
		switch {
		case !contentType:
			h[hdrPrefix+name] = []string{s}
		case s != "":
			h[hdrContentType] = []string{s}
		}
		return nil
	})
}

func putExtensions(h nats.Header, ext map[string]any) error {
	return cehttp.EachExtension(ext, func(name, s string) error {
		if err := checkValue(name, s); err != nil {
			return err
		}
		h[hdrPrefix+name] = []string{s}
		return nil
	})
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

// encodeStructured makes a structured-mode message: the event in the JSON
// format with content-type application/cloudevents+json.
func encodeStructured(subject string, e *event.Event) (*nats.Msg, error) {
	b, err := cejson.Marshal(e)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: subject, Header: nats.Header{hdrContentType: {ContentTypeStructured}}, Data: b}, nil
}
