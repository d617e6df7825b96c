package s3source

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

// Notifications as the services write them.
const (
	// awsPut is an S3 notification as AWS writes it to SQS (one record).
	awsPut = `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2",` +
		`"eventTime":"2024-05-01T12:34:56.789Z","eventName":"ObjectCreated:Put",` +
		`"userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.7"},` +
		`"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},` +
		`"s3":{"s3SchemaVersion":"1.0","configurationId":"uploads-created","bucket":{"name":"uploads","ownerIdentity":{"principalId":"A3NL1KOZZKEXAMPLE"},"arn":"arn:aws:s3:::uploads"},` +
		`"object":{"key":"incoming/file+name.json","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}]}`

	// minioPut is MinIO's webhook body: EventName and Key beside the
	// record; the key is form encoded, "/" included; no region.
	minioPut = `{"EventName":"s3:ObjectCreated:Put","Key":"uploads/incoming/file name.json","Records":[{"eventVersion":"2.0",` +
		`"eventSource":"minio:s3","awsRegion":"","eventTime":"2026-02-12T10:00:00.123Z","eventName":"s3:ObjectCreated:Put",` +
		`"userIdentity":{"principalId":"minioadmin"},"requestParameters":{"principalId":"minioadmin","region":"","sourceIPAddress":"127.0.0.1"},` +
		`"responseElements":{"x-amz-id-2":"dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8","x-amz-request-id":"1822F2B9B8C8D1A0",` +
		`"x-minio-deployment-id":"9f2a1c3e-0000-4000-8000-000000000000","x-minio-origin-endpoint":"http://127.0.0.1:9000"},` +
		`"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"uploads","ownerIdentity":{"principalId":"minioadmin"},"arn":"arn:aws:s3:::uploads"},` +
		`"object":{"key":"incoming%2Ffile+name.json","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592","contentType":"application/json",` +
		`"userMetadata":{"content-type":"application/json"},"sequencer":"1822F2B9B8F6C1E2"}},` +
		`"source":{"host":"127.0.0.1","port":"","userAgent":"aws-sdk-go-v2"}}]}`

	// awsTest is the message S3 sends when a notification configuration
	// is saved.
	awsTest = `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z","Bucket":"uploads",` +
		`"RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`
)

// snsEnvelope wraps body as SNS writes it to SQS without raw message
// delivery.
func snsEnvelope(body string) string {
	b, _ := jsonString(body)
	return `{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",` +
		`"TopicArn":"arn:aws:sns:us-west-2:123456789012:uploads","Subject":"Amazon S3 Notification","Message":` + b +
		`,"Timestamp":"2024-05-01T12:34:57.001Z","SignatureVersion":"1","Signature":"EXAMPLE",` +
		`"SigningCertURL":"https://sns.us-west-2.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",` +
		`"UnsubscribeURL":"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=EXAMPLE"}`
}

// recorder is an Ingester that records events; fail decides per call
// whether Ingest fails.
type recorder struct {
	mu       sync.Mutex
	events   []*event.Event
	calls    int
	rejected map[string]int
	fail     func(call int, events []*event.Event) error
}

var _ sources.Ingester = (*recorder)(nil)

func (r *recorder) Ingest(_ context.Context, events []*event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(r.calls, events); err != nil {
			return err
		}
	}
	r.events = append(r.events, events...)
	return nil
}

func (r *recorder) Rejected(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rejected == nil {
		r.rejected = map[string]int{}
	}
	r.rejected[reason]++
}

func (r *recorder) got() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) rejects(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected[reason]
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls ok until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// check decodes a source's own keys like the loader does and returns every
// problem as FILE:LINE:COL lines.
func check(t testing.TB, src string) (*Config, string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	node := doc.Content[0]
	c := NewConfig()
	var errs config.Errors
	if err := config.Decode(node, c); err != nil {
		errs.Add(node, `source "uploads"`, err)
	} else {
		errs.Add(node, `source "uploads"`, c.Validate())
	}
	if err := errs.Err(); err != nil {
		return c, err.Error()
	}
	return c, ""
}

// buildEndpoint builds an HTTP transport from YAML keys.
func buildEndpoint(t testing.TB, src string, logs *logBuffer) *Endpoint {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatalf("config:\n%s", errs)
	}
	if logs == nil {
		logs = &logBuffer{}
	}
	s, err := c.Build(context.Background(), sources.Deps{Name: "uploads", Logger: logs.logger(), MaxBodySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := s.(*Endpoint)
	if !ok {
		t.Fatalf("Build returned %T, want *Endpoint", s)
	}
	return e
}

// serve mounts the source on a real HTTP server, as the router does.
func serve(t testing.TB, e *Endpoint, in sources.Ingester) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(e.Path(), e.Handler(in))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	body   string
	header http.Header
}

func do(t testing.TB, method, url string, header map[string]string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: strings.TrimSpace(string(b)), header: resp.Header}
}
