package e2e

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// mtTarget is the id of the NATS and AMQP notification targets of the
// tests' MinIO: their ARNs are arn:minio:sqs::MT:nats and
// arn:minio:sqs::MT:amqp.
const mtTarget = "MT"

// mtConfig is a junction config with source (its YAML lines) routing
// object creations under incoming/ to the webhook sink hook.
func mtConfig(source, hook string) string {
	return configHead + fmt.Sprintf(`sources:
%s
sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - name: uploads
    filter: type == "com.amazonaws.s3.ObjectCreated:Put" && subject startsWith "incoming/"
    to: [hook]
`, source, hook)
}

// mtCheck waits for the one event of the upload of incoming/photo 1.jpg to
// bucket and checks it.
func mtCheck(t *testing.T, j *junction, hook *sink, source, bucket string) {
	t.Helper()
	plugintest.Eventually(t, 30*time.Second, "the upload's event at the webhook", func() bool { return hook.count() >= 1 })
	plugintest.Eventually(t, 10*time.Second, "2 events received", func() bool {
		return j.metric("junction_events_received_total", `source="`+source+`"`) == 2
	})
	got := hook.received()
	if len(got) != 1 {
		t.Fatalf("%d events at the webhook, want 1 (skipped/ is not routed)", len(got))
	}
	e := got[0]
	if e.Type() != "com.amazonaws.s3.ObjectCreated:Put" || e.Subject() != "incoming/photo 1.jpg" || e.Source() != "minio:s3."+bucket ||
		e.DataContentType() != "application/json" || e.Time().IsZero() {
		t.Errorf("event: type %q subject %q source %q datacontenttype %q time %v", e.Type(), e.Subject(), e.Source(), e.DataContentType(), e.Time())
	}
}

// TestMinIONATSTarget: a real MinIO publishes its bucket notifications to
// JetStream (its NATS target, jetstream on); the nats source with format
// s3 makes them S3 CloudEvents that reach a webhook.
func TestMinIONATSTarget(t *testing.T) {
	s3MinioBinary(t)
	_, js := natstest.Connect(t)
	stream, prefix := natstest.Stream(t, js, "MINIO_", "minio", jetstream.FileStorage)
	subject := prefix + ".events"
	hook := newSink(t, nil)
	j := start(t, mtConfig(fmt.Sprintf("  - {name: uploads, type: nats, url: %q, stream: %s, subject: %s, format: s3}", natstest.URL(), stream, subject), hook.url))
	u, err := url.Parse(natstest.URL())
	if err != nil {
		t.Fatal(err)
	}
	m := s3StartMinio(t, "", "",
		"MINIO_NOTIFY_NATS_ENABLE_"+mtTarget+"=on",
		"MINIO_NOTIFY_NATS_ADDRESS_"+mtTarget+"="+u.Host,
		"MINIO_NOTIFY_NATS_SUBJECT_"+mtTarget+"="+subject,
		"MINIO_NOTIFY_NATS_JETSTREAM_"+mtTarget+"=on",
	)
	m.notifyBucket(t, "photos", "arn:minio:sqs::"+mtTarget+":nats", "s3:ObjectCreated:*")
	m.put(t, "photos", "incoming/photo 1.jpg", `{"n":1}`)
	m.put(t, "photos", "skipped/x.jpg", `{"n":2}`)
	mtCheck(t, j, hook, "uploads", "photos")
}

// TestMinIOAMQPTarget: a real MinIO publishes its bucket notifications to
// a RabbitMQ exchange (its AMQP target) bound to a queue; the amqp source
// with format s3 makes them S3 CloudEvents that reach a webhook.
func TestMinIOAMQPTarget(t *testing.T) {
	s3MinioBinary(t)
	u := amqptest.URL(t)
	a := amqptest.NewAdmin(t, u)
	exchange := a.Exchange(amqptest.Unique("minio"), "direct")
	q := a.Queue(amqptest.Unique("minio-events"), nil)
	if err := a.Ch.QueueBind(q, "uploads", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	hook := newSink(t, nil)
	j := start(t, mtConfig(fmt.Sprintf("  - {name: uploads, type: amqp, url: %q, queue: %q, format: s3}", u, q), hook.url))
	m := s3StartMinio(t, "", "",
		"MINIO_NOTIFY_AMQP_ENABLE_"+mtTarget+"=on",
		"MINIO_NOTIFY_AMQP_URL_"+mtTarget+"="+u,
		"MINIO_NOTIFY_AMQP_EXCHANGE_"+mtTarget+"="+exchange,
		"MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_"+mtTarget+"=direct",
		"MINIO_NOTIFY_AMQP_ROUTING_KEY_"+mtTarget+"=uploads",
		"MINIO_NOTIFY_AMQP_DURABLE_"+mtTarget+"=on",
		"MINIO_NOTIFY_AMQP_DELIVERY_MODE_"+mtTarget+"=2",
		"MINIO_NOTIFY_AMQP_PUBLISHING_CONFIRMS_"+mtTarget+"=on",
	)
	m.notifyBucket(t, "photos", "arn:minio:sqs::"+mtTarget+":amqp", "s3:ObjectCreated:*")
	m.put(t, "photos", "incoming/photo 1.jpg", `{"n":1}`)
	m.put(t, "photos", "skipped/x.jpg", `{"n":2}`)
	mtCheck(t, j, hook, "uploads", "photos")
	if n := a.Count(q); n != 0 {
		t.Errorf("%d messages left in the queue, want 0", n)
	}
}
