// Package cebinding is the binary content mode of the CloudEvents protocol
// bindings, written once for every transport: the walk over an event's
// context attributes and extensions that a writer puts into headers (HTTP,
// NATS), application properties (AMQP) or message attributes, the
// percent-encoding of header values (HTTP, NATS), and the reading side:
// prefix matching (Headers, SortedHeaders), unquoting and percent-decoding
// (HeaderValue), and Reader, which sets each attribute from its name and
// value with one set of rules and builds the event context. The prefix
// ("ce-", "cloudEvents:") and the value encoding are the transport's: the
// callbacks apply them, and the transport says where an attribute was
// (At) in the errors.
package cebinding

import (
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/cejson"
)

// DataContentType is the name Write gives datacontenttype, which bindings
// carry apart from the other attributes (Content-Type, content-type).
const DataContentType = "datacontenttype"

// Write calls put with the name (lower case, without prefix) and the
// canonical string form of each context attribute of e that is set and
// each extension. specversion comes first; time is RFC 3339 in UTC with
// its fraction; datacontenttype is e's, or the type the JSON format
// implies when it is unset and the data is JSON (see cejson.ContentType),
// and is left out when neither. Extensions come in map order. The first
// error stops it.
func Write(e *event.Event, put func(name, value string) error) error {
	return walk(e, put, nil)
}

// WriteTyped is Write for transports whose headers hold typed values
// (AMQP): context attributes go to put as strings, as Write gives them,
// and extensions to ext with the value sdk-go holds (string, bool, int32,
// []byte, types.URI, types.URIRef, types.Timestamp).
func WriteTyped(e *event.Event, put func(name, value string) error, ext func(name string, v any) error) error {
	return walk(e, put, ext)
}

// walk is Write when ext is nil, else WriteTyped.
func walk(e *event.Event, put func(name, value string) error, ext func(name string, v any) error) error {
	if e == nil || e.Context == nil {
		return fmt.Errorf("event has no context")
	}
	var err error
	var exts map[string]any
	if c, ok := e.Context.(*event.EventContextV1); ok {
		err, exts = writeV1(c, put), c.Extensions // GetExtensions copies the map
	} else {
		err, exts = writeGeneric(e.Context, put), e.Context.GetExtensions()
	}
	if err != nil {
		return err
	}
	if ct := cejson.ContentType(e); ct != "" {
		if err := put(DataContentType, ct); err != nil {
			return err
		}
	}
	return eachExtension(exts, put, ext)
}

// writeV1 is the allocation-lean path for CloudEvents 1.0 contexts.
func writeV1(c *event.EventContextV1, put func(name, value string) error) error {
	if err := put("specversion", event.CloudEventsVersionV1); err != nil {
		return err
	}
	if err := put("id", c.ID); err != nil {
		return err
	}
	if err := put("source", c.Source.String()); err != nil {
		return err
	}
	if err := put("type", c.Type); err != nil {
		return err
	}
	if c.Subject != nil {
		if err := put("subject", *c.Subject); err != nil {
			return err
		}
	}
	if c.Time != nil && !c.Time.IsZero() {
		if err := put("time", c.Time.Time.UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
	}
	if c.DataSchema != nil {
		return put("dataschema", c.DataSchema.String())
	}
	return nil
}

// writeGeneric handles any spec version sdk-go knows (0.3 ...), in the
// order of its attributes, all but datacontenttype.
func writeGeneric(c event.EventContext, put func(name, value string) error) error {
	sv := spec.VS.Version(c.GetSpecVersion())
	if sv == nil {
		return fmt.Errorf("unsupported specversion %q", c.GetSpecVersion())
	}
	for _, a := range sv.Attributes() {
		if a.Kind() == spec.DataContentType {
			continue
		}
		v := a.Get(c)
		if v == nil {
			continue
		}
		s, err := types.Format(v)
		if err != nil {
			return fmt.Errorf("format attribute %s: %w", a.Name(), err)
		}
		if err := put(a.Name(), s); err != nil {
			return err
		}
	}
	return nil
}

// eachExtension checks the name of each extension in ext and calls typed
// with it and the value, or put with the value's string form when typed
// is nil. The first error stops it.
func eachExtension(exts map[string]any, put func(name, value string) error, typed func(name string, v any) error) error {
	for name, v := range exts {
		if !ValidName(name) {
			return fmt.Errorf("extension name %q is not valid (lower-case letters and digits only)", name)
		}
		var err error
		if typed != nil {
			err = typed(name, v)
		} else {
			var s string
			if s, err = types.Format(v); err != nil {
				return fmt.Errorf("format extension %s: %w", name, err)
			}
			err = put(name, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ValidName reports whether s is a possible attribute name: one or more
// ASCII letters and digits. (Readers lower-case header names first; the
// spec's names are lower case.)
func ValidName(s string) bool {
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
