package natssource

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/s3event/s3eventtest"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// s3Records is a notification with two records: AWSPut's and a second
// one for another key of the same request.
func s3Records(t testing.TB) string {
	t.Helper()
	r, err := s3eventtest.Record0(s3eventtest.AWSPut)
	if err != nil {
		t.Fatal(err)
	}
	r2 := strings.Replace(strings.Replace(r, "ObjectCreated:Put", "ObjectRemoved:Delete", 1), "incoming/file+name.json", "incoming/old.json", 1)
	return `{"Records":[` + r + `,` + r2 + `]}`
}

// TestJetStreamFormatS3: with format s3, MinIO and AWS notifications become
// S3 CloudEvents (a two-record message in one Ingest call), a test event
// is acked and dropped, and a body that is not a notification is
// dead-lettered and terminated as malformed.
func TestJetStreamFormatS3(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	dlqStream, dlqPrefix := natstest.NewStream(t, js)
	// MinIO's NATS target publishes the bare JSON body, no headers.
	publish(t, js, prefix+".minio", s3eventtest.MinIOPut)
	publish(t, js, prefix+".aws", s3Records(t))
	publish(t, js, prefix+".test", s3eventtest.AWSTest)
	publish(t, js, prefix+".bad", `{"specversion":"1.0","id":"x","source":"/s","type":"t"}`, "content-type", "application/cloudevents+json")
	rec := &sourcetest.Recorder{}
	c := decoded(t, jsConfig(natstest.URL(), stream)+"format: s3\nconcurrency: 1\ndeadLetterSubject: "+dlqPrefix+".dead\n")
	run(t, c, rec)
	plugintest.Eventually(t, 10*time.Second, "3 events", func() bool { return rec.Count() == 3 })
	plugintest.Eventually(t, 10*time.Second, "every message settled", func() bool { return consumerSettled(t, js, stream, c.Durable) })
	calls, events, rejected := rec.Snapshot()
	if calls != 2 {
		t.Errorf("%d Ingest calls, want 2 (one per notification)", calls)
	}
	want := []string{
		s3eventtest.MinIOPutID + "|" + s3eventtest.MinIOPutSource + "|" + s3eventtest.PutType + "|" + s3eventtest.PutSubject,
		s3eventtest.AWSPutID + "|" + s3eventtest.AWSPutSource + "|" + s3eventtest.PutType + "|" + s3eventtest.PutSubject,
		"|" + s3eventtest.AWSPutSource + "|com.amazonaws.s3.ObjectRemoved:Delete|incoming/old.json",
	}
	for i, e := range events {
		got := e.ID() + "|" + e.Source() + "|" + e.Type() + "|" + e.Subject()
		if i == 2 {
			got = strings.TrimPrefix(got, e.ID()) // a request id and a key hash
		}
		if got != want[i] {
			t.Errorf("event %d: %s\nwant %s", i, got, want[i])
		}
		if e.DataContentType() != "application/json" || e.Validate() != nil {
			t.Errorf("event %d: %s", i, e)
		}
	}
	if rejected["malformed"] != 1 || len(rejected) != 1 {
		t.Errorf("rejected %v, want 1 malformed", rejected)
	}
	dm := lastDeadLetter(t, js, dlqStream, dlqPrefix+".dead")
	if dm.Header.Get("Junction-Error") != "not an S3 event notification: no Records" || dm.Header.Get("Junction-Original-Subject") != prefix+".bad" {
		t.Errorf("dead letter: %q %v", dm.Data, dm.Header)
	}
}

// TestCoreFormatS3: format s3 on a core NATS subscription.
func TestCoreFormatS3(t *testing.T) {
	nc, _ := natstest.Connect(t)
	subject := "core" + natstest.Suffix()
	rec := &sourcetest.Recorder{}
	run(t, decoded(t, fmt.Sprintf("url: %s\nsubject: %s.>\nformat: s3\n", natstest.URL(), subject)), rec)
	// The subscription is live once a message gets through (test events
	// are dropped, malformed ones counted).
	plugintest.Eventually(t, 10*time.Second, "the subscription", func() bool {
		nc.Publish(subject+".probe", []byte("probe"))
		nc.Flush()
		_, _, rejected := rec.Snapshot()
		return rejected["malformed"] > 0
	})
	nc.Publish(subject+".test", []byte(s3eventtest.AWSTest))
	nc.PublishMsg(&nats.Msg{Subject: subject + ".put", Data: []byte(s3eventtest.MinIOPut)})
	nc.Flush()
	plugintest.Eventually(t, 10*time.Second, "the event", func() bool { return rec.Count() == 1 })
	calls, events, _ := rec.Snapshot()
	e := events[0]
	if calls != 1 || e.ID() != s3eventtest.MinIOPutID || e.Type() != s3eventtest.PutType || e.Subject() != s3eventtest.PutSubject || e.Source() != s3eventtest.MinIOPutSource {
		t.Errorf("%d calls, event %s", calls, e)
	}
}
