package amqpsink

import (
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
)

// HeaderPrefix is the prefix of the headers (application properties) that
// carry the attributes in binary mode, as the CloudEvents AMQP binding
// names it.
const HeaderPrefix = "cloudEvents:"

// ContentTypeStructured is the content-type of a structured-mode message.
const ContentTypeStructured = "application/cloudevents+json; charset=utf-8"

// message encodes e as a publishing in the sink's content mode. The
// message-id property is the event id in both modes.
func (s *Sink) message(e *event.Event) (amqp.Publishing, error) {
	if e == nil || e.Context == nil {
		return amqp.Publishing{}, errors.New("event has no context")
	}
	p := amqp.Publishing{DeliveryMode: s.mode, MessageId: e.ID()}
	if s.structured {
		b, err := cejson.Marshal(e)
		if err != nil {
			return p, err
		}
		p.ContentType = ContentTypeStructured
		p.Body = b
		return p, nil
	}
	h, err := binaryHeaders(e)
	if err != nil {
		return p, err
	}
	p.Headers = h
	p.ContentType = cejson.ContentType(e)
	p.Body = e.Data()
	return p, nil
}

// binaryHeaders maps every attribute but datacontenttype to a
// cloudEvents:<name> header, walking e as cebinding.WriteTyped does.
// Extensions that are strings, booleans and binary values keep their
// native AMQP type and integers are longs (64-bit); context attributes,
// URIs included, are strings; timestamps are RFC 3339 strings, since an
// AMQP 0-9-1 timestamp has only whole seconds (the binding allows the
// canonical string form).
func binaryHeaders(e *event.Event) (amqp.Table, error) {
	h := make(amqp.Table, 6+len(e.Extensions()))
	err := cebinding.WriteTyped(e, func(name, v string) error {
		if name != cebinding.DataContentType {
			h[propName(name)] = v
		}
		return nil
	}, func(name string, v any) error {
		hv, err := headerValue(v)
		if err != nil {
			return fmt.Errorf("extension %s: %w", name, err)
		}
		h[HeaderPrefix+name] = hv
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// propName is the header of attribute name: cloudEvents:<name>, without
// an allocation for the context attributes.
func propName(name string) string {
	switch name {
	case "specversion":
		return HeaderPrefix + "specversion"
	case "id":
		return HeaderPrefix + "id"
	case "source":
		return HeaderPrefix + "source"
	case "type":
		return HeaderPrefix + "type"
	case "subject":
		return HeaderPrefix + "subject"
	case "time":
		return HeaderPrefix + "time"
	case "dataschema":
		return HeaderPrefix + "dataschema"
	}
	return HeaderPrefix + name
}

// headerValue is the AMQP form of an attribute value.
func headerValue(v any) (any, error) {
	switch x := v.(type) {
	case string, bool, []byte:
		return x, nil
	// AMQP binding 3.1.3.2: an Integer is an AMQP long (64-bit), and an
	// implementation "MUST be strict for outgoing messages".
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int64:
		return x, nil
	case types.Timestamp:
		return x.UTC().Format(time.RFC3339Nano), nil
	case *types.Timestamp:
		return x.UTC().Format(time.RFC3339Nano), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	}
	s, err := types.Format(v)
	if err != nil {
		return nil, err
	}
	return s, nil
}
