package sqssink

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/internal/cebinding"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/internal/text"
)

// maxAttributes is the most message attributes SQS takes per message.
const maxAttributes = 10

// Binary-mode message attributes: ce-<name> for every context attribute
// and extension, content-type for datacontenttype (as the HTTP and Kafka
// bindings carry it apart from the ce- attributes).
const (
	attrPrefix      = "ce-"
	attrContentType = "content-type"
)

// encode makes the SQS entry of e (without its batch id) and its payload
// size as SQS counts it. Errors are the event's fault: permanent.
func (s *Sink) encode(e *event.Event) (types.SendMessageBatchRequestEntry, int, error) {
	var entry types.SendMessageBatchRequestEntry
	var body string
	size := 0
	if s.binary {
		attrs, n, err := binaryAttributes(e)
		if err != nil {
			return entry, 0, err
		}
		data := e.Data()
		if len(data) == 0 {
			return entry, 0, errors.New("binary format: the event has no data and an SQS body cannot be empty; use format: structured")
		}
		if !validSQSText(data) {
			return entry, 0, errors.New("binary format: the data is not text SQS accepts in a body (UTF-8 without control characters); use format: structured, which base64-encodes binary data")
		}
		body = string(data)
		entry.MessageAttributes = attrs
		size += n
	} else {
		b, err := cejson.Marshal(e)
		if err != nil {
			return entry, 0, fmt.Errorf("encode event: %w", err)
		}
		if !validSQSText(b) {
			return entry, 0, errors.New("the event's JSON has characters SQS does not accept in a body (U+FFFE, U+FFFF)")
		}
		body = string(b)
	}
	size += len(body)
	entry.MessageBody = aws.String(body)
	if s.group != nil {
		g, err := s.group.Eval(filters.NewEnv(e))
		if err != nil {
			return entry, 0, err
		}
		if !validSQSID(g) {
			return entry, 0, fmt.Errorf("messageGroupId %q: must be 1 to 128 characters, letters, digits and punctuation", text.Bounded(g, maxErrLen))
		}
		entry.MessageGroupId = aws.String(g)
	}
	if s.fifo {
		entry.MessageDeduplicationId = aws.String(dedupID(e.ID()))
	}
	return entry, size, nil
}

// dedupID is the FIFO deduplication id of an event: its id when SQS
// accepts it as one, else the SHA-256 of the id in hex.
func dedupID(id string) string {
	if validSQSID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// validSQSID reports whether s can be a message group or deduplication id:
// 1 to 128 characters among a-z, A-Z, 0-9 and ASCII punctuation.
func validSQSID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7F {
			return false
		}
	}
	return true
}

// validSQSText reports whether b is text SQS accepts in a body or a string
// attribute: valid UTF-8 of #x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD and
// #x10000-#x10FFFF.
func validSQSText(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < ' ' && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += n
	}
	return true
}

// binaryAttributes maps e's attributes to message attributes (see the
// package README), walking e as cebinding.WriteTyped does, and returns
// them with their size as SQS counts it.
func binaryAttributes(e *event.Event) (map[string]types.MessageAttributeValue, int, error) {
	attrs := make(map[string]types.MessageAttributeValue, 8)
	size := 0
	add := func(name, dataType, value string) error {
		if value == "" {
			return nil // SQS refuses empty values; an absent attribute reads the same
		}
		if !validSQSText([]byte(value)) {
			return fmt.Errorf("binary format: attribute %s has characters SQS does not accept in a message attribute", name)
		}
		attrs[name] = types.MessageAttributeValue{DataType: aws.String(dataType), StringValue: aws.String(value)}
		size += len(name) + len(dataType) + len(value)
		return nil
	}
	err := cebinding.WriteTyped(e, func(name, v string) error {
		if name == cebinding.DataContentType {
			return add(attrContentType, "String", v)
		}
		return add(attrName(name), "String", v)
	}, func(name string, v any) error {
		v, err := cetypes.Validate(v)
		if err != nil {
			return fmt.Errorf("binary format: extension %s: %w", name, err)
		}
		dataType := "String"
		if _, ok := v.(int32); ok {
			dataType = "Number"
		}
		str, err := cetypes.Format(v)
		if err != nil {
			return fmt.Errorf("binary format: extension %s: %w", name, err)
		}
		return add(attrPrefix+name, dataType, str)
	})
	if err != nil {
		return nil, 0, err
	}
	if len(attrs) > maxAttributes {
		return nil, 0, fmt.Errorf("binary format: the event has %d attributes and SQS takes at most %d message attributes; use format: structured", len(attrs), maxAttributes)
	}
	return attrs, size, nil
}

// attrName is the message attribute of attribute name: ce-<name>, without
// an allocation for the context attributes.
func attrName(name string) string {
	switch name {
	case "specversion":
		return attrPrefix + "specversion"
	case "id":
		return attrPrefix + "id"
	case "source":
		return attrPrefix + "source"
	case "type":
		return attrPrefix + "type"
	case "subject":
		return attrPrefix + "subject"
	case "time":
		return attrPrefix + "time"
	case "dataschema":
		return attrPrefix + "dataschema"
	}
	return attrPrefix + name
}
