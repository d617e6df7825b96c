package cehttp

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/internal/text"
)

// Media types of the CloudEvents JSON formats, without parameters.
const (
	mediaStructured = "application/cloudevents+json"
	mediaBatch      = "application/cloudevents-batch+json"
)

// ErrNotEvent is returned by ParseEvent for a message that is not a
// CloudEvent: no ce-specversion header and not the CloudEvents JSON format.
var ErrNotEvent = errors.New("not a CloudEvent")

// IsEvent reports whether a message with header h carries a CloudEvent: in
// binary mode (a ce-specversion header), structured mode or batch mode (by
// its Content-Type). ParseEvent decides whether it is a valid one.
func IsEvent(h http.Header) bool {
	if len(h.Values(HeaderSpecVersion)) > 0 {
		return true
	}
	mt := cejson.MediaType(h.Get(HeaderContentType))
	return mt == mediaStructured || mt == mediaBatch
}

// ParseEvent reads the CloudEvent of an HTTP message (a request or a
// response) from its header and body, in binary mode (ce-* headers,
// percent-decoded, the body as data and Content-Type as datacontenttype) or
// structured mode (application/cloudevents+json). It returns ErrNotEvent
// when the message is not a CloudEvent, and otherwise an error saying what
// is wrong (one line) unless the event is valid. A batch is refused: one
// event is expected.
func ParseEvent(h http.Header, body []byte) (*event.Event, error) {
	if sv := h.Values(HeaderSpecVersion); len(sv) > 0 {
		return parseBinary(h, sv[0], body)
	}
	switch cejson.MediaType(h.Get(HeaderContentType)) {
	case mediaStructured:
		return ParseStructured(body)
	case mediaBatch:
		return nil, errors.New("a CloudEvents batch (application/cloudevents-batch+json); one event was expected")
	}
	return nil, ErrNotEvent
}

// ParseStructured reads one event in the CloudEvents JSON format and
// returns an error saying what is wrong (one line) unless it is valid. An
// extension value that is not a CloudEvents value (1.5, 1e400, an object)
// is an error, not truncated, and so is input that makes the SDK panic
// (see cejson.Unmarshal).
func ParseStructured(body []byte) (*event.Event, error) {
	if len(body) == 0 {
		return nil, errors.New("empty body with Content-Type application/cloudevents+json")
	}
	e := event.New()
	if err := cejson.Unmarshal(&e, body); err != nil {
		return nil, fmt.Errorf("invalid CloudEvents JSON: %s", text.OneLine(err.Error(), 200))
	}
	if err := validate(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

// parseBinary reads an event in binary mode: its attributes with
// cebinding.Reader, from ce- headers, percent-decoded.
func parseBinary(h http.Header, specversion string, body []byte) (*event.Event, error) {
	r, err := cebinding.NewReader(specversion)
	if err != nil {
		return nil, cebinding.At(err, "header ce-specversion")
	}
	for k, name := range cebinding.SortedHeaders(h, "ce-") {
		if len(h[k]) == 0 {
			continue
		}
		where := "header " + strings.ToLower(k)
		v, err := cebinding.HeaderValue(h[k][0])
		if err != nil {
			return nil, &cebinding.AttrError{Name: strings.ToLower(name), Where: where, Err: err}
		}
		if err := r.SetString(name, v); err != nil {
			return nil, cebinding.At(err, where)
		}
	}
	ec, err := r.Context("header ce-")
	if err != nil {
		return nil, err
	}
	e := event.Event{Context: ec}
	if ct := h.Get(HeaderContentType); ct != "" {
		e.SetDataContentType(ct)
	}
	if len(body) > 0 {
		e.DataEncoded = body
	}
	if err := validate(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

// validate checks the required attributes in a fixed order, then the rest
// of the spec's rules, so that the error text is stable.
func validate(e *event.Event) error {
	var missing []string
	if strings.TrimSpace(e.ID()) == "" {
		missing = append(missing, "id")
	}
	if strings.TrimSpace(e.Source()) == "" {
		missing = append(missing, "source")
	}
	if strings.TrimSpace(e.Type()) == "" {
		missing = append(missing, "type")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required attribute %s", strings.Join(missing, ", "))
	}
	err := e.Validate()
	if err == nil {
		err = cejson.Check(e)
	}
	if err == nil {
		return nil
	}
	var ve event.ValidationError
	if errors.As(err, &ve) {
		keys := make([]string, 0, len(ve))
		for k := range ve {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ": " + ve[k].Error()
		}
		return errors.New(text.OneLine(strings.Join(parts, "; "), 200))
	}
	return errors.New(text.OneLine(err.Error(), 200))
}
