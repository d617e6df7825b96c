package natssource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/internal/text"
)

// Media types of the CloudEvents JSON format.
const (
	// ContentTypeStructured is the content-type of a structured-mode message.
	ContentTypeStructured = "application/cloudevents+json"
	// DefaultEventType is the type of a wrapped message (one that is not a
	// CloudEvent) when eventType is not set.
	DefaultEventType = "io.nats.message"
)

// maxReason bounds a malformed message's reason (logs, Term reason,
// dead-letter header).
const maxReason = 300

// hdrPrefix is the prefix of the binary-mode headers.
const hdrPrefix = "ce-"

// MalformedError is why a message that claims to be a CloudEvent cannot be
// read. Its text is one bounded line and never holds the payload.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return e.Reason }

func malformed(format string, args ...any) *MalformedError {
	return &MalformedError{Reason: text.OneLine(fmt.Sprintf(format, args...), maxReason)}
}

// wrap is what a message that is not a CloudEvent becomes.
type wrap struct {
	id        string    // a stable id: stream and sequence, or a UUID
	subject   string    // the NATS subject, for source
	eventType string    // type
	time      time.Time // when the broker stored it, or when it arrived
}

// Decode reads the CloudEvent in one NATS message according to the
// CloudEvents NATS protocol binding:
//
//   - structured mode: a content-type header application/cloudevents+json,
//     or no content-type and a payload that is a JSON object with a
//     top-level "specversion";
//   - binary mode: a ce-specversion header; the other attributes are ce-<name>
//     headers, datacontenttype is the content-type header and the payload is
//     the data.
//
// Header names are matched without regard to case. A message that is
// neither is wrapped: id w.id, source nats://<subject>, type w.eventType,
// time w.time, and the payload as data (with the content-type header as
// datacontenttype, else application/json when the payload is JSON, else
// application/octet-stream). The event returned has passed Validate; the
// error is a *MalformedError.
func decode(h nats.Header, data []byte, w wrap) (*event.Event, error) {
	var ct string
	var binary bool
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		switch {
		case strings.EqualFold(k, "content-type"):
			ct = v[0]
		case strings.EqualFold(k, "ce-specversion"):
			binary = true
		}
	}
	mt := cejson.MediaType(ct)
	switch {
	case strings.EqualFold(mt, ContentTypeStructured):
		return decodeStructured(data)
	case hasPrefixFold(mt, "application/cloudevents"):
		return nil, malformed("unsupported event format %q: use %s or binary mode", mt, ContentTypeStructured)
	case binary:
		return decodeBinary(h, ct, data)
	case ct == "" && looksStructured(data):
		return decodeStructured(data)
	}
	return wrapMessage(ct, data, w)
}

// looksStructured reports whether data is a JSON object with a top-level
// "specversion" member.
func looksStructured(data []byte) bool {
	b := bytes.TrimSpace(data)
	if len(b) == 0 || b[0] != '{' || !bytes.Contains(b, []byte(`"specversion"`)) {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, ok := m["specversion"]
	return ok
}

func decodeStructured(data []byte) (*event.Event, error) {
	b := bytes.TrimSpace(data)
	if len(b) == 0 {
		return nil, malformed("structured mode: empty payload")
	}
	if !json.Valid(b) {
		return nil, malformed("structured mode: the payload is not valid JSON")
	}
	if b[0] != '{' {
		return nil, malformed("structured mode: expected a JSON object (one CloudEvent)")
	}
	e := new(event.Event)
	if err := unmarshal(e, b); err != nil {
		return nil, malformed("structured mode: %v", err)
	}
	if err := validate(e); err != nil {
		return nil, malformed("structured mode: %v", err)
	}
	return e, nil
}

// unmarshal is event.UnmarshalJSON made safe (some malformed input makes the
// SDK panic: a number as data_base64, an empty 0.3 datacontentencoding) and
// strict (an extension value that is not a CloudEvents value, such as 1.5
// or 1e400, is an error, not truncated). See cejson.Unmarshal.
func unmarshal(e *event.Event, raw []byte) error { return cejson.Unmarshal(e, raw) }

// decodeBinary reads binary mode: the attributes from ce- headers with
// cebinding.Reader, ct as datacontenttype and data as the data.
func decodeBinary(h nats.Header, ct string, data []byte) (*event.Event, error) {
	svKey, err := cebinding.SpecVersionKey(h, "header", hdrPrefix)
	if err != nil {
		return nil, malformed("binary mode: %v", err)
	}
	var sv string
	if vs := h[svKey]; len(vs) > 0 {
		sv = vs[0]
	}
	r, err := cebinding.NewReader(sv)
	if err != nil {
		return nil, malformed("binary mode: %v", cebinding.At(err, "header "+svKey))
	}
	for k, name := range cebinding.SortedHeaders(h, hdrPrefix) {
		if len(h[k]) == 0 {
			continue
		}
		if err := r.SetString(name, h[k][0]); err != nil {
			return nil, malformed("binary mode: %v", cebinding.At(err, "header "+k))
		}
	}
	ctx, err := r.Context("header " + hdrPrefix)
	if err != nil {
		return nil, malformed("binary mode: %v", err)
	}
	if ct != "" {
		if err := ctx.SetDataContentType(ct); err != nil {
			return nil, malformed("binary mode: content-type: %v", err)
		}
	}
	e := &event.Event{Context: ctx}
	if len(data) > 0 {
		e.DataEncoded = data
	}
	if err := validate(e); err != nil {
		return nil, malformed("binary mode: %v", err)
	}
	return e, nil
}

// validate is e.Validate and the core rules it misses (cejson.Check).
func validate(e *event.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return cejson.Check(e)
}

func wrapMessage(ct string, data []byte, w wrap) (*event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(w.id)
	e.SetSource("nats://" + w.subject)
	e.SetType(w.eventType)
	if !w.time.IsZero() {
		e.SetTime(w.time)
	}
	if len(data) > 0 {
		switch {
		case ct != "":
			e.SetDataContentType(ct)
		case json.Valid(data):
			e.SetDataContentType("application/json")
		default:
			e.SetDataContentType("application/octet-stream")
		}
		e.DataEncoded = data
	}
	if err := e.Validate(); err != nil {
		// Only a broken content-type header can get here.
		return nil, malformed("wrap message: %v", err)
	}
	return &e, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// quote quotes s for an error message, bounded.
func quote(s string) string {
	return fmt.Sprintf("%q", text.OneLine(s, 64))
}
