package cehttp

import (
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cebinding"
)

// StructuredContentType is the media type of a structured-mode request (the
// CloudEvents JSON format).
const StructuredContentType = "application/cloudevents+json; charset=utf-8"

// Header names of the CloudEvents 1.0 context attributes, in the canonical
// form net/http uses, so that http.Header lookups find them.
const (
	// HeaderSpecVersion marks a binary-mode message.
	HeaderSpecVersion = "Ce-Specversion"
	hdrID             = "Ce-Id"
	hdrSource         = "Ce-Source"
	hdrType           = "Ce-Type"
	hdrSubject        = "Ce-Subject"
	hdrTime           = "Ce-Time"
	hdrDataSchema     = "Ce-Dataschema"
	// HeaderContentType carries datacontenttype in binary mode.
	HeaderContentType = "Content-Type"
)

// SetBinaryHeaders writes the context attributes and extensions of e into h
// as the CloudEvents HTTP binding's binary content mode asks: one ce-<name>
// header per attribute, percent-encoded, and datacontenttype as
// Content-Type, or application/json when e has JSON data and no
// datacontenttype (the JSON format's implied type, 3.1.2: it "SHOULD be
// set explicitly" when re-serialized). The walk is cebinding.Write's.
// sdk-go's binding writes the values without the percent encoding that
// the spec requires (a space or a non-ASCII character in a subject would
// arrive mangled or be refused by net/http), hence this writer.
func SetBinaryHeaders(h http.Header, e *event.Event) error {
	// One backing array for the single-value slices of the headers: eight
	// attributes at most, and the extensions.
	n := 8
	if c, ok := e.Context.(*event.EventContextV1); ok {
		n += len(c.Extensions)
	}
	vals := make([]string, 0, n)
	return cebinding.Write(e, func(name, v string) error {
		k := HeaderContentType
		if name != cebinding.DataContentType {
			k, v = headerName(name), cebinding.PctEncode(v)
		}
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		return nil
	})
}

// headerName returns the canonical header name of the attribute name:
// "Ce-" and the name with its first letter upper-cased.
func headerName(name string) string {
	switch name {
	case "specversion":
		return HeaderSpecVersion
	case "id":
		return hdrID
	case "source":
		return hdrSource
	case "type":
		return hdrType
	case "subject":
		return hdrSubject
	case "time":
		return hdrTime
	case "dataschema":
		return hdrDataSchema
	}
	b := make([]byte, 0, 3+len(name))
	b = append(b, "Ce-"...)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case i == 0 && c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case i > 0 && c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}
