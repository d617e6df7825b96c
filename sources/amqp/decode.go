package amqpsource

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/internal/s3event"
	"github.com/junctionhq/junction/internal/text"
	"github.com/junctionhq/junction/sources"
)

// Media types of the CloudEvents JSON event formats.
const (
	ContentTypeStructured = "application/cloudevents+json"
	ContentTypeBatch      = "application/cloudevents-batch+json"
)

// HeaderPrefix is the prefix of the application properties (headers) that
// carry the attributes in binary mode, as the CloudEvents AMQP binding
// names it. "cloudEvents_" (used by JMS-style clients) is accepted too, and
// both case-insensitively.
const HeaderPrefix = "cloudEvents:"

// MaxBatchEvents is the largest number of events one batch message may
// hold.
const MaxBatchEvents = 1000

// maxReason bounds the reason logged for a rejected message.
const maxReason = 300

// decode turns a delivery into events: structured, batch or binary mode, or
// a wrapped message; with format s3, the records of the S3 notification in
// the body (none for an s3:TestEvent). An error means the message claims
// to be a CloudEvent (or with format s3, an S3 notification) but is not a
// valid one; it reads as one line.
func (s *Source) decode(d *amqp.Delivery) ([]*event.Event, error) {
	if s.s3 {
		events, test, err := s3event.Convert(d.Body, false)
		if err != nil {
			return nil, err
		}
		if test != nil {
			s.log.Debug("s3:TestEvent acknowledged and dropped", "queue", s.queue, "bucket", test.Bucket, "delivery_tag", d.DeliveryTag)
			return nil, nil
		}
		return events, nil
	}
	mt := cejson.MediaType(d.ContentType)
	switch {
	case strings.EqualFold(mt, ContentTypeStructured):
		e, err := parseStructured(d.Body)
		if err != nil {
			return nil, err
		}
		return []*event.Event{e}, nil
	case strings.EqualFold(mt, ContentTypeBatch):
		return parseBatch(d.Body)
	case hasPrefixFold(mt, "application/cloudevents"):
		return nil, fmt.Errorf("unsupported event format %q: only %s and %s are read", bound(mt, 64), ContentTypeStructured, ContentTypeBatch)
	}
	if cebinding.HasHeaders(d.Headers, headerPrefixes...) {
		e, err := parseBinary(d.Headers, d.ContentType, d.Body)
		if err != nil {
			return nil, err
		}
		return []*event.Event{e}, nil
	}
	return []*event.Event{s.wrap(d)}, nil
}

// headerPrefixes are the prefixes of binary-mode headers: the binding's
// and the one JMS-style clients use.
var headerPrefixes = []string{HeaderPrefix, "cloudEvents_"}

// parseBinary builds an event from cloudEvents: headers with
// cebinding.Reader; ct is the content-type property (datacontenttype) and
// body the data. Values may be in their native AMQP type (boolean,
// integer, timestamp, binary) or their canonical string form.
func parseBinary(h amqp.Table, ct string, body []byte) (*event.Event, error) {
	svKey, err := cebinding.SpecVersionKey(h, "header", headerPrefixes...)
	if err != nil {
		return nil, err
	}
	if svKey == "" {
		return nil, &cebinding.AttrError{Name: "specversion", Where: "header " + HeaderPrefix + "specversion", Err: cebinding.ErrMissing}
	}
	var sv string
	switch v := h[svKey].(type) {
	case string:
		sv = v
	case []byte:
		sv = string(v)
	default:
		return nil, &cebinding.AttrError{Name: "specversion", Where: "header " + svKey, Err: errors.New("must be a string")}
	}
	r, err := cebinding.NewReader(sv)
	if err != nil {
		return nil, cebinding.At(err, "header "+svKey)
	}
	for k, name := range cebinding.SortedHeaders(h, headerPrefixes...) {
		if err := r.Set(name, h[k]); err != nil {
			return nil, cebinding.At(err, "header "+k)
		}
	}
	ec, err := r.Context("header " + HeaderPrefix)
	if err != nil {
		return nil, err
	}
	if ct != "" {
		if err := cejson.CheckMediaType(ct); err != nil {
			return nil, errors.New(`invalid attribute "datacontenttype" (content-type property): not a media type (RFC 2046)`)
		}
		_ = ec.SetDataContentType(ct)
	}
	e := &event.Event{Context: ec}
	setData(e, ct, body)
	if err := validate(e); err != nil {
		return nil, errors.New(sdkReason(err))
	}
	return e, nil
}

// parseStructured reads one event in the JSON format.
func parseStructured(body []byte) (*event.Event, error) {
	if !json.Valid(body) {
		return nil, errors.New("structured mode: the body is not valid JSON")
	}
	b := trimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("structured mode: the body is not a JSON object")
	}
	return unmarshalEvent(b)
}

// parseBatch reads a JSON array of structured events.
func parseBatch(body []byte) ([]*event.Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, errors.New("batch: the body is not a JSON array of events")
	}
	// JSON format 4.3: an empty batch is "also valid in a request": the
	// message is acknowledged with nothing to ingest.
	if len(raws) > MaxBatchEvents {
		return nil, fmt.Errorf("batch: %d events, more than %d", len(raws), MaxBatchEvents)
	}
	events := make([]*event.Event, len(raws))
	for i, raw := range raws {
		if len(raw) == 0 || raw[0] != '{' {
			return nil, fmt.Errorf("event[%d]: not a JSON object", i)
		}
		e, err := unmarshalEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("event[%d]: %v", i, err)
		}
		events[i] = e
	}
	return events, nil
}

// unmarshalEvent is event.UnmarshalJSON and Validate, made safe (some
// malformed input makes the SDK panic) and strict (an extension value that
// is not a CloudEvents value is an error, see cejson.Unmarshal).
func unmarshalEvent(raw []byte) (e *event.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, errors.New("invalid event: cannot read it")
		}
	}()
	e = new(event.Event)
	if err := cejson.Unmarshal(e, raw); err != nil {
		return nil, errors.New(sdkReason(err))
	}
	if err := validate(e); err != nil {
		return nil, errors.New(sdkReason(err))
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

// sdkReason turns an error of the SDK into a bounded reason.
func sdkReason(err error) string {
	return text.OneLine(sources.EventError(err, "invalid event: "), maxReason)
}

// wrap makes a CloudEvent of a message that is not one: id is the
// message-id property or a hash of the message, source
// "amqp://host:port/queue", type the configured type, subject the routing
// key, time the timestamp property, datacontenttype the content-type
// property and data the body.
func (s *Source) wrap(d *amqp.Delivery) *event.Event {
	e := event.New()
	id := d.MessageId
	if strings.TrimSpace(id) == "" || !utf8.ValidString(id) {
		id = messageHash(d)
	}
	e.SetID(id)
	e.SetSource(s.source)
	e.SetType(s.typ)
	if d.RoutingKey != "" && utf8.ValidString(d.RoutingKey) {
		e.SetSubject(d.RoutingKey)
	}
	if !d.Timestamp.IsZero() {
		e.SetTime(d.Timestamp)
	}
	ct := d.ContentType
	if ct != "" {
		if err := cejson.CheckMediaType(ct); err != nil {
			ct = ""
		} else {
			e.SetDataContentType(ct)
		}
	}
	setData(&e, ct, d.Body)
	return &e
}

// setData sets body as e's data so that it survives the journal's JSON
// encoding unchanged: as JSON when the media type is JSON and the body is
// valid JSON, as a string when it is text, else base64.
func setData(e *event.Event, ct string, body []byte) {
	if len(body) == 0 {
		return
	}
	e.DataEncoded = body
	if isJSON(cejson.MediaType(ct)) {
		e.DataBase64 = !json.Valid(body)
		return
	}
	e.DataBase64 = !utf8.Valid(body)
}

// isJSON reports the media types whose data the SDK writes as raw JSON
// (mt is a cejson.MediaType). cejson.IsJSON is wider (*/*+json), and
// cejson.Marshal writes such data raw when it is valid JSON; other bodies
// of those types are kept as text, as they always were here.
func isJSON(mt string) bool {
	switch mt {
	case "", event.ApplicationJSON, event.TextJSON:
		return true
	}
	return false
}

// messageHash is a stable id for a message without a message-id: the same
// message redelivered gets the same id. It covers the exchange, routing key,
// properties, headers and body, not the delivery tag nor the redelivered
// flag.
func messageHash(d *amqp.Delivery) string {
	h := sha256.New()
	for _, s := range []string{d.Exchange, d.RoutingKey, d.ContentType, d.ContentEncoding, d.CorrelationId,
		d.ReplyTo, d.Expiration, d.Type, d.UserId, d.AppId} {
		writeField(h, []byte(s))
	}
	var ts [8]byte
	if !d.Timestamp.IsZero() {
		binary.BigEndian.PutUint64(ts[:], uint64(d.Timestamp.UnixNano()))
	}
	h.Write(ts[:])
	// fmt prints maps with sorted keys, so a table prints the same each time.
	writeField(h, []byte(fmt.Sprint(map[string]any(d.Headers))))
	writeField(h, d.Body)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// bound cuts s to n bytes for use in a reason.
func bound(s string, n int) string {
	return text.OneLine(s, n)
}
