package natssink

import (
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/junctionhq/junction/internal/cebinding"
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
// cejson.ContentType), and the data as the payload. The walk is
// cebinding.Write's.
func encodeBinary(subject string, e *event.Event) (*nats.Msg, error) {
	m := &nats.Msg{Subject: subject, Header: make(nats.Header, 8), Data: e.Data()}
	err := cebinding.Write(e, func(name, v string) error {
		if err := checkValue(name, v); err != nil {
			return err
		}
		if name == cebinding.DataContentType {
			m.Header[hdrContentType] = []string{v}
		} else {
			m.Header[headerKey(name)] = []string{v}
		}
		return nil
	})
	return m, err
}

// headerKey is the header of attribute name: ce-<name>, without an
// allocation for the context attributes.
func headerKey(name string) string {
	switch name {
	case "specversion":
		return "ce-specversion"
	case "id":
		return "ce-id"
	case "source":
		return "ce-source"
	case "type":
		return "ce-type"
	case "subject":
		return "ce-subject"
	case "time":
		return "ce-time"
	case "dataschema":
		return "ce-dataschema"
	}
	return hdrPrefix + name
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
