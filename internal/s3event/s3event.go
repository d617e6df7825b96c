// Package s3event turns Amazon S3 (and MinIO) event notifications into
// CloudEvents, one per record, following the CloudEvents AWS S3 adapter:
//
//	id              x-amz-request-id "." x-amz-id-2 "." 8 hex digits of the
//	                key's SHA-256 (responseElements), else a hash of the record
//	source          eventSource "." awsRegion "." bucket (aws:s3.us-east-1.uploads);
//	                without a region: eventSource "." bucket (minio:s3.uploads)
//	type            "com.amazonaws.s3." + eventName without MinIO's "s3:" prefix
//	subject         the object key, URL-decoded ("incoming/file name.json")
//	time            eventTime
//	datacontenttype application/json
//	data            the record
//
// The s3 source uses it for its transports (SQS, SNS, MinIO's webhook), the
// nats and amqp sources for their format s3 (MinIO's NATS and AMQP
// targets).
package s3event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sources"
)

// TypePrefix starts the CloudEvents type of every S3 event:
// TypePrefix + the record's eventName without MinIO's "s3:" prefix, such as
// com.amazonaws.s3.ObjectCreated:Put.
const TypePrefix = "com.amazonaws.s3."

// TestEventName is the Event of the test message that S3 sends when a
// notification configuration is saved.
const TestEventName = "s3:TestEvent"

// message is the JSON of what arrives: an S3 event notification (Records),
// MinIO's webhook body (the same with EventName and Key beside Records), an
// s3:TestEvent, or an SNS envelope around one of these (Type, TopicArn and
// Message).
type message struct {
	Records []json.RawMessage `json:"Records"`

	// s3:TestEvent
	Event  string `json:"Event"`
	Bucket string `json:"Bucket"`

	// SNS envelope
	Type     string  `json:"Type"`
	TopicArn string  `json:"TopicArn"`
	Message  *string `json:"Message"`
}

// record is what the conversion reads of one S3 event record; the whole
// record becomes the event's data.
type record struct {
	EventSource      string `json:"eventSource"`
	AwsRegion        string `json:"awsRegion"`
	EventTime        string `json:"eventTime"`
	EventName        string `json:"eventName"`
	ResponseElements struct {
		RequestID string `json:"x-amz-request-id"`
		ID2       string `json:"x-amz-id-2"`
	} `json:"responseElements"`
	S3 struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key string `json:"key"`
		} `json:"object"`
	} `json:"s3"`
}

// TestEvent describes an s3:TestEvent: the message S3 sends when a
// notification configuration is saved. Callers acknowledge and drop it.
type TestEvent struct {
	// Bucket is the bucket whose configuration was saved.
	Bucket string
}

// ErrSNSNested is the error of an SNS envelope where it is not unwrapped
// (inside another, or without unwrapSNS).
var ErrSNSNested = errors.New("an SNS message where an S3 event notification was expected")

// Convert makes the CloudEvents of a notification body: one per record, in
// order, each valid. It returns a non-nil TestEvent (and no events) for an
// s3:TestEvent. With
// unwrapSNS, a body that is an SNS Notification envelope (as SNS writes to
// an SQS queue without raw message delivery) is unwrapped first. Errors are
// one-line reasons that do not quote the body.
func Convert(body []byte, unwrapSNS bool) ([]*event.Event, *TestEvent, error) {
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, nil, fmt.Errorf("not an S3 event notification: %s", JSONReason(err))
	}
	if m.Type != "" && m.TopicArn != "" && m.Message != nil && m.Records == nil {
		if !unwrapSNS {
			return nil, nil, ErrSNSNested
		}
		if m.Type != "Notification" {
			return nil, nil, fmt.Errorf("SNS message of type %q is not a Notification", sources.OneLine(m.Type))
		}
		events, test, err := Convert([]byte(*m.Message), false)
		if err != nil {
			return nil, nil, fmt.Errorf("SNS message: %w", err)
		}
		return events, test, nil
	}
	if m.Records == nil {
		if m.Event == TestEventName {
			return nil, &TestEvent{Bucket: m.Bucket}, nil
		}
		return nil, nil, errors.New("not an S3 event notification: no Records")
	}
	if len(m.Records) == 0 {
		return nil, nil, errors.New("not an S3 event notification: Records is empty")
	}
	events := make([]*event.Event, len(m.Records))
	for i, raw := range m.Records {
		e, err := recordEvent(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("Records[%d]: %w", i, err)
		}
		events[i] = e
	}
	return events, nil, nil
}

// recordEvent makes the CloudEvent of one record, following the CloudEvents
// AWS S3 adapter (see the package comment for each attribute).
func recordEvent(raw json.RawMessage) (*event.Event, error) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, errors.New(JSONReason(err))
	}
	switch {
	case r.EventName == "":
		return nil, errors.New("eventName is missing")
	case r.EventSource == "":
		return nil, errors.New("eventSource is missing")
	case r.S3.Bucket.Name == "":
		return nil, errors.New("s3.bucket.name is missing")
	}
	ec := &event.EventContextV1{}
	if err := ec.SetID(recordID(&r, raw)); err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	if src := recordSource(&r); ec.SetSource(src) != nil {
		return nil, fmt.Errorf("source %q (eventSource.awsRegion.bucket) is not a URI reference", sources.OneLine(src))
	}
	if err := ec.SetType(TypePrefix + strings.TrimPrefix(r.EventName, "s3:")); err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	if r.S3.Object.Key != "" {
		_ = ec.SetSubject(decodeKey(r.S3.Object.Key))
	}
	if r.EventTime != "" {
		t, err := time.Parse(time.RFC3339Nano, r.EventTime)
		if err != nil {
			return nil, fmt.Errorf("eventTime %q is not an RFC 3339 time", sources.OneLine(r.EventTime))
		}
		_ = ec.SetTime(t)
	}
	_ = ec.SetDataContentType(event.ApplicationJSON)
	// id, source and type are set and not empty (their setters refuse
	// that), so the event is valid without the cost of Validate; the fuzz
	// test checks it.
	return &event.Event{Context: ec, DataEncoded: raw}, nil
}

// recordID is the event id: x-amz-request-id "." x-amz-id-2 from the
// record's responseElements as the adapter says, then "." and the first 8
// hex digits of the SHA-256 of the object key: one request can touch many
// objects (a multi-object delete gives one record per key, all with the
// same request ids), and CloudEvents needs (source, id) unique per event.
// Without request ids, the hex SHA-256 of the record (its first 16 bytes).
// Both are the same each time the same record is delivered again. The
// object's sequencer is not used: it orders the events of one key and is
// not unique across keys.
func recordID(r *record, raw []byte) string {
	if rid, id2 := r.ResponseElements.RequestID, r.ResponseElements.ID2; rid != "" && id2 != "" {
		key := sha256.Sum256([]byte(r.S3.Object.Key))
		return rid + "." + id2 + "." + hex.EncodeToString(key[:4])
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// recordSource is the event source: eventSource "." awsRegion "." bucket as
// the adapter says (aws:s3.us-east-1.uploads); without a region (MinIO's
// default) the region part is left out: minio:s3.uploads.
func recordSource(r *record) string {
	if r.AwsRegion == "" {
		return r.EventSource + "." + r.S3.Bucket.Name
	}
	return r.EventSource + "." + r.AwsRegion + "." + r.S3.Bucket.Name
}

// decodeKey decodes an object key as S3 writes it in notifications: form
// encoded, "+" for a space (incoming%2Ffile+name.json is
// "incoming/file name.json"). A key that is not validly encoded (from a
// service that does not encode keys) is taken as it is.
func decodeKey(key string) string {
	if !strings.ContainsAny(key, "%+") {
		return key
	}
	k, err := url.QueryUnescape(key)
	if err != nil {
		return key
	}
	return k
}

// JSONReason describes an encoding/json error in one line without quoting
// the input: "invalid JSON at byte 11: ...", "expected a JSON object, got
// array", "Records: expected a list, got object".
func JSONReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, sources.OneLine(se.Error()))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "expected a JSON object, got " + sources.OneLine(te.Value)
		}
		return fmt.Sprintf("%s: expected %s, got %s", sources.OneLine(te.Field), kindName(te.Type), sources.OneLine(te.Value))
	}
	return sources.OneLine(err.Error())
}

// kindName names the JSON kind that a Go type decodes from.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.Kind().String()
}
