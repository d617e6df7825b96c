package cehttp

import (
	"fmt"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/cejson"
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
// set explicitly" when re-serialized). sdk-go's binding writes the values without the percent
// encoding that the spec requires (a space or a non-ASCII character in a
// subject would arrive mangled or be refused by net/http), hence this
// writer.
func SetBinaryHeaders(h http.Header, e *event.Event) error {
	if c, ok := e.Context.(*event.EventContextV1); ok {
		return setV1Headers(h, c, e)
	}
	if err := setGenericHeaders(h, e.Context); err != nil {
		return err
	}
	if _, ok := h[HeaderContentType]; !ok {
		if ct := cejson.ContentType(e); ct != "" {
			h[HeaderContentType] = []string{ct}
		}
	}
	return nil
}

// setV1Headers is the allocation-lean path for CloudEvents 1.0 contexts.
func setV1Headers(h http.Header, c *event.EventContextV1, e *event.Event) error {
	// One backing array for the single-value slices of the fixed attributes.
	vals := make([]string, 0, 7)
	put := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	put(HeaderSpecVersion, event.CloudEventsVersionV1)
	put(hdrID, PctEncode(c.ID))
	put(hdrSource, PctEncode(c.Source.String()))
	put(hdrType, PctEncode(c.Type))
	if c.Subject != nil {
		put(hdrSubject, PctEncode(*c.Subject))
	}
	if c.Time != nil && !c.Time.IsZero() {
		put(hdrTime, c.Time.Time.UTC().Format(time.RFC3339Nano))
	}
	if c.DataSchema != nil {
		put(hdrDataSchema, PctEncode(c.DataSchema.String()))
	}
	if c.DataContentType != nil && *c.DataContentType != "" {
		h[HeaderContentType] = []string{*c.DataContentType}
	} else if ct := cejson.ContentType(e); ct != "" {
		h[HeaderContentType] = []string{ct}
	}
	return setExtensionHeaders(h, c.Extensions)
}

// setGenericHeaders handles any spec version sdk-go knows (0.3 ...).
func setGenericHeaders(h http.Header, c event.EventContext) error {
	return EachAttribute(c, func(name, s string, contentType bool) error {
		switch {
		case !contentType:
			h[headerName(name)] = []string{PctEncode(s)}
		case s != "":
			h[HeaderContentType] = []string{s}
		}
		return nil
	})
}

func setExtensionHeaders(h http.Header, ext map[string]any) error {
	return EachExtension(ext, func(name, s string) error {
		h[headerName(name)] = []string{PctEncode(s)}
		return nil
	})
}

// EachAttribute calls put with the name and string form of each attribute
// of c that is set, in the order of c's spec version (any that sdk-go
// knows), then as EachExtension does for c's extensions. contentType marks
// datacontenttype, which bindings carry apart. The first error stops it.
func EachAttribute(c event.EventContext, put func(name, s string, contentType bool) error) error {
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
		if err := put(a.Name(), s, a.Kind() == spec.DataContentType); err != nil {
			return err
		}
	}
	return EachExtension(c.GetExtensions(), func(name, s string) error { return put(name, s, false) })
}

// EachExtension checks the name of each extension in ext and calls put
// with it and the value's string form. The first error stops it.
func EachExtension(ext map[string]any, put func(name, s string) error) error {
	for name, v := range ext {
		if !validExtensionName(name) {
			return fmt.Errorf("extension name %q is not valid (lower-case letters and digits only)", name)
		}
		s, err := types.Format(v)
		if err != nil {
			return fmt.Errorf("format extension %s: %w", name, err)
		}
		if err := put(name, s); err != nil {
			return err
		}
	}
	return nil
}

// headerName returns the canonical header name of the attribute name:
// "Ce-" and the name with its first letter upper-cased.
func headerName(name string) string {
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

// PctEncode percent-encodes s as the CloudEvents HTTP binding requires for
// header values: space, '"', '%' and every byte outside the printable ASCII
// range U+0021-U+007E (so each byte of a non-ASCII character's UTF-8
// encoding) become %XY with upper-case hex digits. s is returned as is when
// nothing needs encoding.
func PctEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEncode(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEncode(c) {
			b = append(b, '%', hex[c>>4], hex[c&0xF])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func mustEncode(c byte) bool {
	return c <= ' ' || c >= 0x7F || c == '"' || c == '%'
}
