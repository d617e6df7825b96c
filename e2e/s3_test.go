package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/s3event/s3eventtest"
	"github.com/junctionhq/junction/internal/sqstest"
)

// s3MinioBinary finds the minio server binary: $JUNCTION_MINIO, else
// .cache/bin/minio (installed by scripts/services.sh), else minio on PATH.
// Outside CI the test is skipped when there is none.
func s3MinioBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("JUNCTION_MINIO"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../.cache/bin/minio"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("minio not installed (run scripts/services.sh)")
	}
	t.Skip("minio not installed (run scripts/services.sh, or set JUNCTION_MINIO)")
	return ""
}

// s3Minio is a MinIO server started by a test.
type s3Minio struct {
	url    string // http://127.0.0.1:port
	client *s3.Client
}

const (
	s3MinioUser     = "junction"
	s3MinioPassword = "junction-secret"
	// s3MinioTarget is the id of the webhook target: its ARN is
	// arn:minio:sqs::JUNCTION:webhook.
	s3MinioTarget = "JUNCTION"
)

// s3StartMinio starts MinIO on free loopback ports with a temporary data
// directory and a webhook notification target posting to webhook with
// token (none when webhook is empty), and env (NAME=value, such as other
// MINIO_NOTIFY_* targets) in its environment; it waits until MinIO is
// ready and stops it (by its PID) when the test ends. MinIO checks at
// start that the webhook answers: start junction first.
func s3StartMinio(t testing.TB, webhook, token string, env ...string) *s3Minio {
	t.Helper()
	bin := s3MinioBinary(t)
	dir := t.TempDir()
	addr, console := freePort(t), freePort(t)
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", addr, "--console-address", console, "--quiet")
	cmd.Env = append(os.Environ(),
		"HOME="+dir,
		"MINIO_ROOT_USER="+s3MinioUser,
		"MINIO_ROOT_PASSWORD="+s3MinioPassword,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	if webhook != "" {
		cmd.Env = append(cmd.Env,
			"MINIO_NOTIFY_WEBHOOK_ENABLE_"+s3MinioTarget+"=on",
			"MINIO_NOTIFY_WEBHOOK_ENDPOINT_"+s3MinioTarget+"="+webhook,
			"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_"+s3MinioTarget+"="+token,
		)
	}
	cmd.Env = append(cmd.Env, env...)
	out := &plugintest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	exited := watchProcess(t, "minio", cmd, out, 10*time.Second, false)
	m := &s3Minio{url: "http://" + addr}
	waitReady(t, "minio", 60*time.Second, exited, out, httpOK(m.url+"/minio/health/ready"))
	m.client = s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(m.url),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s3MinioUser, s3MinioPassword, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return m
}

// bucket creates a bucket whose object creations and removals are sent
// to the webhook target.
func (m *s3Minio) bucket(t testing.TB, name string) {
	t.Helper()
	m.notifyBucket(t, name, "arn:minio:sqs::"+s3MinioTarget+":webhook", "s3:ObjectCreated:*", "s3:ObjectRemoved:*")
}

// notifyBucket creates a bucket whose events are sent to the target arn.
// MinIO reports ready before its notification targets are registered and
// refuses a target's ARN until then: the configuration is put again for
// up to 10 s while MinIO answers that the ARN does not exist.
func (m *s3Minio) notifyBucket(t testing.TB, name, arn string, events ...s3types.Event) {
	t.Helper()
	c := context.Background()
	if _, err := m.client.CreateBucket(c, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	in := &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(name),
		NotificationConfiguration: &s3types.NotificationConfiguration{
			QueueConfigurations: []s3types.QueueConfiguration{{QueueArn: aws.String(arn), Events: events}},
		},
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := m.client.PutBucketNotificationConfiguration(c, in)
		if err == nil {
			return
		}
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != "InvalidArgument" || time.Now().After(deadline) {
			t.Fatalf("enable notifications on %s to %s: %v", name, arn, err)
		}
	}
}

// put uploads a JSON object.
func (m *s3Minio) put(t testing.TB, bucket, key, body string) {
	t.Helper()
	m.putObject(t, bucket, key, []byte(body), "application/json")
}

// putObject uploads an object, with contentType unless it is empty, and
// returns its ETag.
func (m *s3Minio) putObject(t testing.TB, bucket, key string, body []byte, contentType string) string {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	out, err := m.client.PutObject(context.Background(), in)
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`)
}

// s3Config is a junction config with an s3 source (its keys: source) and
// two routes: object creations under incoming/ in bucket uploads to
// created, removals to removed.
func s3Config(source, created, removed string) string {
	return configHead + fmt.Sprintf(`sources:
  - name: uploads
    type: s3
%s
sinks:
  - name: created
    type: webhook
    url: %s
  - name: removed
    type: webhook
    url: %s
routes:
  - name: new-uploads
    filter: type startsWith "com.amazonaws.s3.ObjectCreated:" && subject startsWith "incoming/" && data.s3.bucket.name == "uploads"
    to: [created]
  - name: removals
    filter: type startsWith "com.amazonaws.s3.ObjectRemoved:"
    to: [removed]
`, source, created, removed)
}

// s3SQSKeys are the keys of an s3 source reading queue q of the test SQS
// server.
func s3SQSKeys(q string) string {
	return fmt.Sprintf("    queueUrl: %q\n    endpoint: %q\n    region: us-east-1\n    waitTime: 1s\n    visibilityTimeout: 3s", q, sqstest.Endpoint())
}

// s3AWSRecord is a notification record in AWS's format for an object in
// bucket uploads; key is as S3 writes it there (form-encoded).
func s3AWSRecord(region, eventName, key string, size int, etag, reqID string) string {
	return `{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"` + region + `","eventTime":"2024-05-01T12:34:56.789Z",` +
		`"eventName":"` + eventName + `","userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.7"},` +
		`"responseElements":{"x-amz-request-id":"` + reqID + `","x-amz-id-2":"EXAMPLE123/abc="},` +
		`"s3":{"s3SchemaVersion":"1.0","configurationId":"analyze-uploads","bucket":{"name":"uploads","ownerIdentity":{"principalId":"A3NL1KOZZKEXAMPLE"},"arn":"arn:aws:s3:::uploads"},` +
		fmt.Sprintf(`"object":{"key":%q,"size":%d,"eTag":%q,"sequencer":"0055AED6DCD90281E5"}}}`, key, size, etag)
}

// s3Notification is an S3 notification message holding records.
func s3Notification(records ...string) string {
	return `{"Records":[` + strings.Join(records, ",") + `]}`
}

// subjects are the subjects of events, sorted.
func subjects(events []event.Event) []string {
	var s []string
	for _, e := range events {
		s = append(s, e.Subject())
	}
	slices.Sort(s)
	return s
}

// TestS3MinIOWebhook: objects uploaded to a real MinIO reach the sinks as
// S3 CloudEvents through MinIO's webhook target, filtered by the routes.
func TestS3MinIOWebhook(t *testing.T) {
	s3MinioBinary(t)
	created, removed := newSink(t, nil), newSink(t, nil)
	j := start(t, s3Config("    transport: webhook\n    path: /s3/minio\n    authToken: tok-123", created.url, removed.url))
	m := s3StartMinio(t, j.ingest+"/s3/minio", "tok-123")
	m.bucket(t, "uploads")
	m.bucket(t, "other")

	m.put(t, "uploads", "incoming/file name.json", `{"n":1}`)
	m.put(t, "uploads", "incoming/a+b/ü.json", `{"n":2}`)
	m.put(t, "uploads", "skipped/x.json", `{"n":3}`)
	m.put(t, "other", "incoming/y.json", `{"n":4}`)
	if _, err := m.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("uploads"), Key: aws.String("incoming/file name.json")}); err != nil {
		t.Fatal(err)
	}

	plugintest.Eventually(t, 20*time.Second, "2 creations", func() bool { return created.count() >= 2 })
	plugintest.Eventually(t, 20*time.Second, "1 removal", func() bool { return removed.count() >= 1 })
	// The other uploads were received and not routed.
	plugintest.Eventually(t, 10*time.Second, "5 events received", func() bool {
		return j.metric("junction_events_received_total", `source="uploads"`) == 5
	})
	if got, want := subjects(created.received()), []string{"incoming/a+b/ü.json", "incoming/file name.json"}; !slices.Equal(got, want) {
		t.Errorf("created subjects %q, want %q", got, want)
	}
	for _, e := range created.received() {
		if e.Type() != "com.amazonaws.s3.ObjectCreated:Put" || e.Source() != "minio:s3.uploads" || e.DataContentType() != "application/json" || e.Time().IsZero() {
			t.Errorf("created event: type %q source %q datacontenttype %q time %v", e.Type(), e.Source(), e.DataContentType(), e.Time())
		}
		var rec struct {
			EventName string `json:"eventName"`
			S3        struct {
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		}
		if err := json.Unmarshal(e.Data(), &rec); err != nil || rec.EventName != "s3:ObjectCreated:Put" || rec.S3.Object.Key == e.Subject() {
			t.Errorf("created event data (the record, key still encoded): %+v %v", rec, err)
		}
		if !strings.Contains(e.ID(), ".") {
			t.Errorf("id %q is not <x-amz-request-id>.<x-amz-id-2>", e.ID())
		}
	}
	rm := removed.received()[0]
	if rm.Type() != "com.amazonaws.s3.ObjectRemoved:Delete" || rm.Subject() != "incoming/file name.json" {
		t.Errorf("removed event: type %q subject %q", rm.Type(), rm.Subject())
	}

	// A request without the token is refused.
	if code, body := post(t, j.ingest+"/s3/minio", "application/json", nil, `{"Records":[]}`); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d %s, want 401", code, body)
	}
}

// TestS3SQS: hand-written S3 notifications (as AWS writes them: direct,
// SNS-wrapped, the test event) through an SQS queue (fauxqs) reach the
// sinks; the queue is drained.
func TestS3SQS(t *testing.T) {
	c := sqsClient(t)
	q := sqsQueue(t, c, "e2e-s3")
	record := func(name, key, reqID string) string {
		return s3AWSRecord("eu-west-1", name, key, 12, "0123456789abcdef", reqID)
	}
	bodies := []string{
		s3eventtest.AWSTest,
		s3Notification(record("ObjectCreated:Put", "incoming/report+2024.csv", "REQ1")),
		s3eventtest.SNSEnvelope(s3Notification(record("ObjectCreated:CompleteMultipartUpload", "incoming/video%281%29.mp4", "REQ2"))),
		s3Notification(record("ObjectCreated:Put", "elsewhere/x.csv", "REQ3"), record("ObjectRemoved:Delete", "incoming/old.csv", "REQ4")),
	}
	sqsSendBodies(t, c, q, bodies...)
	created, removed := newSink(t, nil), newSink(t, nil)
	j := start(t, s3Config(s3SQSKeys(q), created.url, removed.url))

	plugintest.Eventually(t, 20*time.Second, "2 creations and 1 removal", func() bool { return created.count() >= 2 && removed.count() >= 1 })
	plugintest.Eventually(t, 10*time.Second, "the queue drained", func() bool { return sqstest.Depth(t, c, q) == 0 })
	if got, want := subjects(created.received()), []string{"incoming/report 2024.csv", "incoming/video(1).mp4"}; !slices.Equal(got, want) {
		t.Errorf("created subjects %q, want %q", got, want)
	}
	ids := map[string]string{}
	for _, e := range created.received() {
		ids[e.Subject()] = e.ID()
		if e.Source() != "aws:s3.eu-west-1.uploads" {
			t.Errorf("source %q", e.Source())
		}
	}
	if !strings.HasPrefix(ids["incoming/report 2024.csv"], "REQ1.EXAMPLE123/abc=.") {
		t.Errorf("ids %v", ids)
	}
	if rm := removed.received()[0]; rm.Type() != "com.amazonaws.s3.ObjectRemoved:Delete" || rm.Subject() != "incoming/old.csv" {
		t.Errorf("removed: type %q subject %q", rm.Type(), rm.Subject())
	}
	if n := j.metric("junction_events_received_total", `source="uploads"`); n != 4 {
		t.Errorf("%v events received, want 4 (the test event is dropped)", n)
	}
}

// BenchmarkS3MinIOLatency measures the time from PutObject returning to the
// event arriving at the sink, one upload at a time through MinIO's webhook
// target and junction (journal with fsync interval). It reports the median
// and p99; run it with -benchtime=200x for at least 100 uploads.
func BenchmarkS3MinIOLatency(b *testing.B) {
	var arrived arrivals
	hook := newSink(b, func(_ int, e *event.Event) int {
		arrived.mark(e.Subject())
		return http.StatusOK
	})
	j := start(b, s3Config("    transport: webhook\n    path: /s3/minio\n    authToken: tok", hook.url, hook.url))
	m := s3StartMinio(b, j.ingest+"/s3/minio", "tok")
	m.bucket(b, "uploads")
	// Warm up connections.
	m.put(b, "uploads", "incoming/warm-up.json", "{}")
	plugintest.Eventually(b, 20*time.Second, "the warm-up event", func() bool { return hook.count() == 1 })

	lat, fromStart, early := uploadLatencies(b, &arrived, "incoming/obj-%d.json", func(key string) { m.put(b, "uploads", key, `{"i":1}`) })
	b.ReportMetric(ms(percentile(lat, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
	b.Logf("%d uploads: PutObject returned → event at the sink: p50 %v, p99 %v, max %v (%d arrived before PutObject returned); "+
		"from the PutObject call: p50 %v, p99 %v", len(lat), percentile(lat, 0.5), percentile(lat, 0.99), lat[len(lat)-1], early,
		percentile(fromStart, 0.5), percentile(fromStart, 0.99))
}

// arrivals records when the event of each key reached a sink; it is safe
// for concurrent use.
type arrivals struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (a *arrivals) mark(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[string]time.Time{}
	}
	a.at[key] = time.Now()
}

func (a *arrivals) get(key string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.at[key]
}

// uploadLatencies times b.N uploads, one at a time: put uploads the object
// named by keyFormat and the upload's number, whose event a records. It
// waits up to 20s for each event and returns, sorted, the times from put
// returning to the event and from calling put. An event may arrive before
// put returns: its time after put is 0, and early counts those.
func uploadLatencies(b *testing.B, a *arrivals, keyFormat string, put func(key string)) (afterPut, fromCall []time.Duration, early int) {
	afterPut = make([]time.Duration, 0, b.N)
	fromCall = make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		key := fmt.Sprintf(keyFormat, i)
		called := time.Now()
		put(key)
		returned := time.Now()
		var at time.Time
		plugintest.Eventually(b, 20*time.Second, key, func() bool {
			at = a.get(key)
			return !at.IsZero()
		})
		if at.Before(returned) {
			early++
		}
		afterPut = append(afterPut, max(at.Sub(returned), 0))
		fromCall = append(fromCall, at.Sub(called))
	}
	b.StopTimer()
	slices.Sort(afterPut)
	slices.Sort(fromCall)
	return afterPut, fromCall, early
}

// percentile is the p quantile (0 to 1) of the sorted durations d.
func percentile(d []time.Duration, p float64) time.Duration {
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
