package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/cloudevents/sdk-go/v2/event"
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
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("minio output:\n%s", out.String())
		}
	})
	m := &s3Minio{url: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(m.url + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("minio exited during start-up:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not ready after 60s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	c := context.Background()
	if _, err := m.client.CreateBucket(c, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	_, err := m.client.PutBucketNotificationConfiguration(c, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(name),
		NotificationConfiguration: &s3types.NotificationConfiguration{
			QueueConfigurations: []s3types.QueueConfiguration{{
				QueueArn: aws.String("arn:minio:sqs::" + s3MinioTarget + ":webhook"),
				Events:   []s3types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
			}},
		},
	})
	if err != nil {
		t.Fatalf("enable notifications on %s: %v", name, err)
	}
}

func (m *s3Minio) put(t testing.TB, bucket, key, body string) {
	t.Helper()
	_, err := m.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body), ContentType: aws.String("application/json"),
	})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// s3Config is a junction config with an s3 source (its keys: source) and
// two routes: object creations under incoming/ in bucket uploads to
// created, removals to removed.
func s3Config(source, created, removed string) string {
	return fmt.Sprintf(`
http: {listen: "{{HTTP}}"}
admin: {listen: "{{ADMIN}}"}
journal: {dir: "{{DATA}}"}
sources:
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

// s3Subject is the subject of an event received by a newSink: the sink
// reads binary mode with sdk-go, which leaves the header's percent-encoding
// (that the CloudEvents HTTP binding and junction's webhook sink apply) in.
func s3Subject(e event.Event) string {
	s, err := url.PathUnescape(e.Subject())
	if err != nil {
		return e.Subject()
	}
	return s
}

func s3Subjects(events []event.Event) []string {
	var s []string
	for _, e := range events {
		s = append(s, s3Subject(e))
	}
	sort.Strings(s)
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

	eventually(t, 20*time.Second, "2 creations", func() bool { return created.count() >= 2 })
	eventually(t, 20*time.Second, "1 removal", func() bool { return removed.count() >= 1 })
	// The other uploads were received and not routed.
	eventually(t, 10*time.Second, "5 events received", func() bool {
		return j.metric("junction_events_received_total", `source="uploads"`) == 5
	})
	if got, want := s3Subjects(created.received()), []string{"incoming/a+b/ü.json", "incoming/file name.json"}; !slices.Equal(got, want) {
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
		if err := json.Unmarshal(e.Data(), &rec); err != nil || rec.EventName != "s3:ObjectCreated:Put" || rec.S3.Object.Key == s3Subject(e) {
			t.Errorf("created event data (the record, key still encoded): %+v %v", rec, err)
		}
		if !strings.Contains(e.ID(), ".") {
			t.Errorf("id %q is not <x-amz-request-id>.<x-amz-id-2>", e.ID())
		}
	}
	rm := removed.received()[0]
	if rm.Type() != "com.amazonaws.s3.ObjectRemoved:Delete" || s3Subject(rm) != "incoming/file name.json" {
		t.Errorf("removed event: type %q subject %q", rm.Type(), s3Subject(rm))
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
		return `{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1","eventTime":"2024-05-01T12:34:56.789Z",` +
			`"eventName":"` + name + `","userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.7"},` +
			`"responseElements":{"x-amz-request-id":"` + reqID + `","x-amz-id-2":"EXAMPLE123/abc="},` +
			`"s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"uploads","ownerIdentity":{"principalId":"A3NL1KOZZKEXAMPLE"},"arn":"arn:aws:s3:::uploads"},` +
			`"object":{"key":"` + key + `","size":12,"eTag":"0123456789abcdef","sequencer":"0055AED6DCD90281E5"}}}`
	}
	notification := func(records ...string) string { return `{"Records":[` + strings.Join(records, ",") + `]}` }
	sns := func(msg string) string {
		b, _ := json.Marshal(msg)
		return `{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324","TopicArn":"arn:aws:sns:eu-west-1:123456789012:uploads",` +
			`"Subject":"Amazon S3 Notification","Message":` + string(b) + `,"Timestamp":"2024-05-01T12:34:57.001Z","SignatureVersion":"1",` +
			`"Signature":"EXAMPLE","SigningCertURL":"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem"}`
	}
	bodies := []string{
		`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z","Bucket":"uploads","RequestId":"5582815E1AEA5ADF","HostId":"EXAMPLE"}`,
		notification(record("ObjectCreated:Put", "incoming/report+2024.csv", "REQ1")),
		sns(notification(record("ObjectCreated:CompleteMultipartUpload", "incoming/video%281%29.mp4", "REQ2"))),
		notification(record("ObjectCreated:Put", "elsewhere/x.csv", "REQ3"), record("ObjectRemoved:Delete", "incoming/old.csv", "REQ4")),
	}
	for _, b := range bodies {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	created, removed := newSink(t, nil), newSink(t, nil)
	j := start(t, s3Config(fmt.Sprintf("    queueUrl: %q\n    endpoint: %q\n    region: us-east-1\n    waitTime: 1s\n    visibilityTimeout: 3s", q, sqsEndpoint()), created.url, removed.url))

	eventually(t, 20*time.Second, "2 creations and 1 removal", func() bool { return created.count() >= 2 && removed.count() >= 1 })
	eventually(t, 10*time.Second, "the queue drained", func() bool { return sqsDepth(t, c, q) == 0 })
	if got, want := s3Subjects(created.received()), []string{"incoming/report 2024.csv", "incoming/video(1).mp4"}; !slices.Equal(got, want) {
		t.Errorf("created subjects %q, want %q", got, want)
	}
	ids := map[string]string{}
	for _, e := range created.received() {
		ids[s3Subject(e)] = e.ID()
		if e.Source() != "aws:s3.eu-west-1.uploads" {
			t.Errorf("source %q", e.Source())
		}
	}
	if !strings.HasPrefix(ids["incoming/report 2024.csv"], "REQ1.EXAMPLE123/abc=.") {
		t.Errorf("ids %v", ids)
	}
	if rm := removed.received()[0]; rm.Type() != "com.amazonaws.s3.ObjectRemoved:Delete" || s3Subject(rm) != "incoming/old.csv" {
		t.Errorf("removed: type %q subject %q", rm.Type(), s3Subject(rm))
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
	var (
		mu      sync.Mutex
		arrived = map[string]time.Time{}
	)
	hook := newSink(b, func(_ int, e *event.Event) int {
		mu.Lock()
		arrived[e.Subject()] = time.Now()
		mu.Unlock()
		return http.StatusOK
	})
	j := start(b, s3Config("    transport: webhook\n    path: /s3/minio\n    authToken: tok", hook.url, hook.url))
	m := s3StartMinio(b, j.ingest+"/s3/minio", "tok")
	m.bucket(b, "uploads")
	// Warm up connections.
	m.put(b, "uploads", "incoming/warm-up.json", "{}")
	eventually(b, 20*time.Second, "the warm-up event", func() bool { return hook.count() == 1 })

	lat := make([]time.Duration, 0, b.N)
	early := 0
	fromStart := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		key := fmt.Sprintf("incoming/obj-%d.json", i)
		putStart := time.Now()
		m.put(b, "uploads", key, `{"i":1}`)
		putDone := time.Now()
		var at time.Time
		eventually(b, 20*time.Second, key, func() bool {
			mu.Lock()
			defer mu.Unlock()
			at = arrived[key]
			return !at.IsZero()
		})
		// An event may arrive before PutObject returns to the client:
		// counted as 0.
		if at.Before(putDone) {
			early++
		}
		lat = append(lat, max(at.Sub(putDone), 0))
		fromStart = append(fromStart, at.Sub(putStart))
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(fromStart)
	pct := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	b.ReportMetric(float64(pct(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.Logf("%d uploads: PutObject returned → event at the sink: p50 %v, p99 %v, max %v (%d arrived before PutObject returned); "+
		"from the PutObject call: p50 %v, p99 %v", len(lat), pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1], early,
		pct(fromStart, 0.5), pct(fromStart, 0.99))
}
