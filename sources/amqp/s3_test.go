package amqpsource

import (
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/s3event/s3eventtest"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// minioMsg is a notification as MinIO's AMQP target publishes it.
func minioMsg(body string) amqp.Publishing {
	return amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		Headers:      amqp.Table{"minio-bucket": "uploads", "minio-event": "s3:ObjectCreated:Put"},
		Body:         []byte(body),
	}
}

// TestFormatS3 publishes MinIO and AWS shaped notifications, a test event
// and a message that is not a notification to a real queue with format s3:
// each record becomes an S3 CloudEvent (a message's events in one Ingest
// call), the test event is acked and dropped, and the other message is
// rejected without requeue into the queue's dead-letter exchange.
func TestFormatS3(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	dlx := a.Exchange(amqptest.Unique("dlx"), "fanout")
	dlq := a.Queue(amqptest.Unique("dead"), nil)
	if err := a.Ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	q := a.Queue(amqptest.Unique("s3"), amqp.Table{"x-dead-letter-exchange": dlx})
	r, err := s3eventtest.Record0(s3eventtest.AWSPut)
	if err != nil {
		t.Fatal(err)
	}
	r2 := strings.Replace(strings.Replace(r, "ObjectCreated:Put", "ObjectRemoved:Delete", 1), "incoming/file+name.json", "incoming/old.json", 1)
	a.Publish(q, minioMsg(s3eventtest.MinIOPut))
	a.Publish(q, minioMsg(`{"Records":[`+r+`,`+r2+`]}`))
	a.Publish(q, minioMsg(s3eventtest.AWSTest))
	a.Publish(q, amqp.Publishing{MessageId: "ce-1", ContentType: "application/cloudevents+json", Body: []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t"}`)})

	in := &sourcetest.Recorder{}
	stop := run(t, build(t, consume(u, q, 1)+"format: s3\n", nil), in) // one delivery per Ingest call
	plugintest.Eventually(t, 10*time.Second, "3 events and 1 rejection", func() bool {
		return in.Count() == 3 && in.Rejections(ReasonMalformed) == 1
	})
	plugintest.Eventually(t, 10*time.Second, "the dead letter", func() bool { return a.Count(dlq) == 1 })
	stop()
	if n := a.Count(q); n != 0 {
		t.Errorf("%d messages left in the queue, want 0 (all settled)", n)
	}
	if in.Calls() != 2 {
		t.Errorf("%d Ingest calls, want 2 (one per notification)", in.Calls())
	}
	want := []string{
		s3eventtest.MinIOPutID + "|" + s3eventtest.MinIOPutSource + "|" + s3eventtest.PutType + "|" + s3eventtest.PutSubject,
		s3eventtest.AWSPutID + "|" + s3eventtest.AWSPutSource + "|" + s3eventtest.PutType + "|" + s3eventtest.PutSubject,
		"|" + s3eventtest.AWSPutSource + "|com.amazonaws.s3.ObjectRemoved:Delete|incoming/old.json",
	}
	for i, e := range in.Events() {
		got := e.ID() + "|" + e.Source() + "|" + e.Type() + "|" + e.Subject()
		if i == 2 {
			got = strings.TrimPrefix(got, e.ID()) // request ids and a key hash
		}
		if got != want[i] {
			t.Errorf("event %d: %s\nwant %s", i, got, want[i])
		}
		if e.DataContentType() != "application/json" || e.Validate() != nil {
			t.Errorf("event %d: %s", i, e)
		}
	}
	if d, ok := a.Get(dlq); !ok || d.MessageId != "ce-1" {
		t.Errorf("dead letter %q %v", d.MessageId, ok)
	}
}

// TestFormatS3TestEventsOnly: a batch of nothing but test events is acked
// without an Ingest call.
func TestFormatS3TestEventsOnly(t *testing.T) {
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	q := a.Queue(amqptest.Unique("s3test"), nil)
	a.Publish(q, minioMsg(s3eventtest.AWSTest))
	a.Publish(q, minioMsg(s3eventtest.AWSTest))
	in := &sourcetest.Recorder{}
	stop := run(t, build(t, fmt.Sprintf("url: %s\nqueue: %s\nformat: s3\n", u, q), nil), in)
	a.Publish(q, minioMsg(s3eventtest.MinIOPut)) // after the test events
	plugintest.Eventually(t, 10*time.Second, "the event", func() bool { return in.Count() == 1 })
	stop()
	if n := a.Count(q); n != 0 {
		t.Errorf("%d messages left in the queue, want 0", n)
	}
	if e := in.Events()[0]; e.ID() != s3eventtest.MinIOPutID || in.Calls() != 1 {
		t.Errorf("%d Ingest calls (want 1), event %s", in.Calls(), e)
	}
}
