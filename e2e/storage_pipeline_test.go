package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/s3event/s3eventtest"
	"github.com/junctionhq/junction/internal/sqstest"
)

// spExample is the example these tests run.
const spExample = "../examples/storage-pipeline/junction.yaml"

var (
	spBuildOnce sync.Once
	spBinary    string
	spBuildErr  error
)

// spAnalyzerBinary builds examples/storage-pipeline/analyzer once, next to
// the junction binary (TestMain removes that directory).
func spAnalyzerBinary(t testing.TB) string {
	t.Helper()
	spBuildOnce.Do(func() {
		spBinary = filepath.Join(filepath.Dir(binary), "analyzer")
		out, err := exec.Command("go", "build", "-o", spBinary, "../examples/storage-pipeline/analyzer").CombinedOutput()
		if err != nil {
			spBuildErr = fmt.Errorf("build analyzer: %v\n%s", err, out)
		}
	})
	if spBuildErr != nil {
		t.Fatal(spBuildErr)
	}
	return spBinary
}

// spAnalyzer is a running analyzer process.
type spAnalyzer struct {
	url string // http://addr/
	out *plugintest.LogBuffer
}

// spStartAnalyzer runs the analyzer on addr, reading objects from the S3
// endpoint s3URL with the test MinIO's credentials and answering in reply
// mode (binary or structured), with extra environment variables env; it
// waits until /healthz answers and stops the process (by its PID) when the
// test ends.
func spStartAnalyzer(t testing.TB, addr, s3URL, reply string, env ...string) *spAnalyzer {
	t.Helper()
	cmd := exec.Command(spAnalyzerBinary(t), "-listen", addr, "-s3-endpoint", s3URL, "-reply", reply)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+s3MinioUser,
		"AWS_SECRET_ACCESS_KEY="+s3MinioPassword,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	)
	cmd.Env = append(cmd.Env, env...)
	a := &spAnalyzer{url: "http://" + addr + "/", out: &plugintest.LogBuffer{}}
	cmd.Stdout, cmd.Stderr = a.out, a.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start analyzer: %v", err)
	}
	exited := watchProcess(t, "analyzer", cmd, a.out, 10*time.Second, true)
	waitReady(t, "analyzer", 10*time.Second, exited, a.out, httpOK(a.url+"healthz"))
	return a
}

// spObject is an object the tests upload, with what the analyzer must
// find.
type spObject struct {
	key      string
	body     []byte
	upload   string // the Content-Type given to PutObject, or none
	wantType string // the contentType the analyzer reports
}

// spPNG is a real PNG image.
func spPNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 24, 16))
	for x := range 24 {
		for y := range 16 {
			img.Set(x, y, color.RGBA{R: uint8(x * 10), G: uint8(y * 15), B: 200, A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// spObjects are the uploads under incoming/: a text file (MinIO stores a
// type from the extension: text/plain; charset=utf-8), JSON uploaded with
// its Content-Type (sniffing would say text/plain), a PNG without an
// extension and 64 KiB of random bytes (both stored as octet-stream, so
// the analyzer sniffs them), and a key with spaces and non-ASCII letters.
func spObjects(t testing.TB) []spObject {
	random := make([]byte, 64<<10)
	rand.Read(random)
	return []spObject{
		{key: "incoming/notes.txt", body: []byte("shopping list:\n- milk\n- bread\n"), wantType: "text/plain; charset=utf-8"},
		{key: "incoming/order-17.json", body: []byte(`{"order":17,"items":["a","b"]}`), upload: "application/json", wantType: "application/json"},
		{key: "incoming/scans/scan-0001", body: spPNG(t), wantType: "image/png"},
		{key: "incoming/blob", body: random, wantType: "application/octet-stream"},
		{key: "incoming/Relevé de compte – été 2024 ☀.txt", body: []byte("Relevé: 42,00 €\n"), wantType: "text/plain; charset=utf-8"},
	}
}

// spResult is the data of a com.example.object.analyzed event.
type spResult struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
	SHA256      string `json:"sha256"`
}

// spCheckResults checks that results holds exactly one analyzed event per
// object, with the right data, subject and hop count.
func spCheckResults(t *testing.T, results []event.Event, objects []spObject) {
	t.Helper()
	byKey := map[string][]event.Event{}
	for _, e := range results {
		byKey[e.Subject()] = append(byKey[e.Subject()], e)
	}
	for _, o := range objects {
		got := byKey[o.key]
		delete(byKey, o.key)
		if len(got) != 1 {
			t.Errorf("%q: %d analyzed events, want 1", o.key, len(got))
			continue
		}
		e := got[0]
		if e.Type() != "com.example.object.analyzed" || e.Source() != "/functions/analyzer" || !strings.HasSuffix(e.ID(), "-analyzed") ||
			e.DataContentType() != "application/json" {
			t.Errorf("%q: type %q source %q id %q datacontenttype %q", o.key, e.Type(), e.Source(), e.ID(), e.DataContentType())
		}
		if h := fnHops(e); h != 1 {
			t.Errorf("%q: junctionhops = %d, want 1", o.key, h)
		}
		var r spResult
		if err := json.Unmarshal(e.Data(), &r); err != nil {
			t.Errorf("%q: data %s: %v", o.key, e.Data(), err)
			continue
		}
		sum := sha256.Sum256(o.body)
		want := spResult{Bucket: "uploads", Key: o.key, Size: int64(len(o.body)), ContentType: o.wantType, SHA256: hex.EncodeToString(sum[:])}
		if r != want {
			t.Errorf("%q: data\n got %+v\nwant %+v", o.key, r, want)
		}
	}
	for k, es := range byKey {
		t.Errorf("unexpected analyzed event(s) for %q: %d", k, len(es))
	}
}

// spConsoleReplies counts the analyzed events the console sink printed.
func spConsoleReplies(j *junction) int {
	return len(consoleMatches(j.stdout.String(), "type", "com.example.object.analyzed", "source", "/functions/analyzer"))
}

// TestStoragePipelineMinIO runs examples/storage-pipeline: uploads to a
// real MinIO → its webhook target → the s3 source → the analyzer function
// (which reads each object back from MinIO) → its replies to the results
// webhook and the console. The object outside incoming/ is not analyzed.
func TestStoragePipelineMinIO(t *testing.T) {
	s3MinioBinary(t)
	results := newSink(t, nil)
	analyzerAddr := freePort(t)
	j := startFile(t, spExample, "MINIO_WEBHOOK_TOKEN=tok-sp", "ANALYZER_URL=http://"+analyzerAddr+"/", "RESULTS_URL="+results.url)
	m := s3StartMinio(t, j.ingest+"/s3/minio", "tok-sp")
	m.bucket(t, "uploads")
	spStartAnalyzer(t, analyzerAddr, m.url, "binary")

	objects := spObjects(t)
	for _, o := range objects {
		m.putObject(t, "uploads", o.key, o.body, o.upload)
	}
	m.putObject(t, "uploads", "archive/old.txt", []byte("not analyzed"), "")

	plugintest.Eventually(t, 30*time.Second, "the analyzed events at the results webhook", func() bool { return results.count() >= len(objects) })
	// All 6 notifications are in and the one outside incoming/ matched no
	// route: nothing else can arrive.
	plugintest.Eventually(t, 10*time.Second, "6 events received, 1 unrouted", func() bool {
		return j.metric("junction_events_received_total", `source="uploads"`) == 6 && j.metric("junction_events_unrouted_total") == 1
	})
	spCheckResults(t, results.received(), objects)
	plugintest.Eventually(t, 5*time.Second, "the analyzed events on the console", func() bool { return spConsoleReplies(j) == len(objects) })
	if n := j.metric("junction_replies_total", `sink="analyzer"`, `outcome="routed"`); n != float64(len(objects)) {
		t.Errorf("replies routed = %v, want %d", n, len(objects))
	}
}

// spAWSKey form-encodes a key as S3 writes it in notifications: spaces as
// '+', '/' kept.
func spAWSKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

// spAWSRecord is an S3 notification record in AWS's format (us-east-1)
// for key.
func spAWSRecord(eventName, key string, size int, etag, reqID string) string {
	return s3AWSRecord("us-east-1", eventName, spAWSKey(key), size, etag, reqID)
}

// spSQSConfig is the example's config with its source replaced by an s3
// source reading queue q (the README's "through SQS" variant); routes and
// sinks are the example's.
func spSQSConfig(t *testing.T, q string) string {
	t.Helper()
	b, err := os.ReadFile(spExample)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i, k := strings.Index(text, "\nsources:\n"), strings.Index(text, "\nsinks:\n")
	if i < 0 || k < i {
		t.Fatalf("%s: no \"sources:\" section followed by \"sinks:\"", spExample)
	}
	source := "  - name: uploads\n    type: s3\n    transport: sqs\n" + s3SQSKeys(q) + "\n"
	path := filepath.Join(t.TempDir(), "junction.yaml")
	if err := os.WriteFile(path, []byte(text[:i]+"\nsources:\n"+source+text[k:]), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStoragePipelineSQS: the same pipeline fed by S3 notifications (AWS's
// format, hand-written) through an SQS queue (fauxqs), for objects that
// exist in a real MinIO; the analyzer answers in structured mode. A
// notification for a missing object is dead-lettered at once (404), and
// the removal and the object outside incoming/ are not analyzed.
func TestStoragePipelineSQS(t *testing.T) {
	s3MinioBinary(t)
	c := sqsClient(t)
	q := sqsQueue(t, c, "e2e-storage")
	// MinIO's webhook target is not used here (no bucket notifications),
	// but MinIO checks at start that it answers.
	unused := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(unused.Close)
	m := s3StartMinio(t, unused.URL, "unused")
	if _, err := m.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("uploads")}); err != nil {
		t.Fatal(err)
	}

	objects := spObjects(t)
	var records []string
	for i, o := range objects {
		etag := m.putObject(t, "uploads", o.key, o.body, o.upload)
		records = append(records, spAWSRecord("ObjectCreated:Put", o.key, len(o.body), etag, fmt.Sprintf("REQ%d", i)))
	}
	outside := m.putObject(t, "uploads", "archive/old.txt", []byte("not analyzed"), "")
	bodies := []string{
		s3eventtest.AWSTest,
		// Two records in one message.
		s3Notification(records[0], records[1]),
		s3Notification(spAWSRecord("ObjectCreated:Put", "archive/old.txt", 12, outside, "REQ-OUT")),
		s3Notification(spAWSRecord("ObjectRemoved:Delete", "incoming/gone.txt", 0, "", "REQ-DEL")),
		s3Notification(spAWSRecord("ObjectCreated:Put", "incoming/never uploaded.txt", 3, "abc", "REQ-MISSING")),
	}
	for _, r := range records[2:] {
		bodies = append(bodies, s3Notification(r))
	}
	sqsSendBodies(t, c, q, bodies...)

	results := newSink(t, nil)
	analyzerAddr := freePort(t)
	spStartAnalyzer(t, analyzerAddr, m.url, "structured")
	j := startFile(t, spSQSConfig(t, q), "ANALYZER_URL=http://"+analyzerAddr+"/", "RESULTS_URL="+results.url)

	plugintest.Eventually(t, 30*time.Second, "the analyzed events at the results webhook", func() bool { return results.count() >= len(objects) })
	var dl map[string]any
	plugintest.Eventually(t, 10*time.Second, "the missing object dead-lettered on stderr", func() bool {
		dl = consoleLine(j.stderr.String(), "subject", "incoming/never uploaded.txt")
		return dl != nil
	})
	if dl["junctionsink"] != "analyzer" || fmt.Sprint(dl["junctionattempts"]) != "1" ||
		!strings.Contains(fmt.Sprint(dl["junctionerror"]), "HTTP 404 Not Found: s3://uploads/incoming/never uploaded.txt: no such object") {
		t.Errorf("dead letter: %v", dl)
	}
	// 8 records (the test event is dropped): 5 analyzed, 1 missing, and
	// the removal and archive/old.txt matched no route.
	plugintest.Eventually(t, 10*time.Second, "8 events received, 2 unrouted", func() bool {
		return j.metric("junction_events_received_total", `source="uploads"`) == 8 && j.metric("junction_events_unrouted_total") == 2
	})
	spCheckResults(t, results.received(), objects)
	plugintest.Eventually(t, 10*time.Second, "the queue drained", func() bool { return sqstest.Depth(t, c, q) == 0 })

	// With wrong credentials, S3 answers an error: 502, retried.
	wrong := spStartAnalyzer(t, freePort(t), m.url, "binary", "AWS_SECRET_ACCESS_KEY=wrong")
	code, body := post(t, wrong.url, "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "minio:s3.uploads", "ce-type": "com.amazonaws.s3.ObjectCreated:Put", "ce-subject": "incoming/notes.txt",
	}, `{"s3":{"bucket":{"name":"uploads"},"object":{"key":"incoming/notes.txt"}}}`)
	if want := "get s3://uploads/incoming/notes.txt: S3 answered SignatureDoesNotMatch: "; code != http.StatusBadGateway || !strings.HasPrefix(body, want) {
		t.Errorf("wrong credentials: %d %q, want 502 %q...", code, body, want)
	}
}

// TestStoragePipelineValidates: the example passes junction validate.
func TestStoragePipelineValidates(t *testing.T) {
	out, err := exec.Command(binary, "validate", "--config", spExample).CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), ": ok: 1 source, 4 sinks, 2 routes\n") {
		t.Fatalf("junction validate: %v\n%s", err, out)
	}
}

// TestStoragePipelineAnalyzerAnswers calls the analyzer directly: what
// Junction gets when S3 is unreachable (503, retried) or the request is
// not an S3 CloudEvent (400, permanent).
func TestStoragePipelineAnalyzerAnswers(t *testing.T) {
	closed := freePort(t) // nothing listens there
	a := spStartAnalyzer(t, freePort(t), "http://"+closed, "binary")
	s3Event := map[string]string{
		"ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "minio:s3.uploads",
		"ce-type": "com.amazonaws.s3.ObjectCreated:Put", "ce-subject": "incoming/a%20b.txt",
	}
	tests := []struct {
		name        string
		contentType string
		header      map[string]string
		body        string
		code        int
		msg         string
	}{
		{"S3 unreachable", "application/json", s3Event, `{"s3":{"bucket":{"name":"uploads"},"object":{"key":"incoming/a+b.txt"}}}`,
			http.StatusServiceUnavailable, "get s3://uploads/incoming/a b.txt: S3 unreachable: dial tcp " + closed + ": connect: connection refused\n"},
		{"not a CloudEvent", "application/json", nil, `{}`,
			http.StatusBadRequest, "not a CloudEvent: no ce-specversion header and not application/cloudevents+json"},
		{"not an S3 record", "application/json", s3Event, `{"order":1}`,
			http.StatusBadRequest, "event e-1 (com.amazonaws.s3.ObjectCreated:Put) is not an S3 object event: data has no s3.bucket.name"},
		{"bad structured event", "application/cloudevents+json", nil, `{"specversion":"1.0","id":"x"}`,
			http.StatusBadRequest, "not a CloudEvent: "},
	}
	for _, tt := range tests {
		code, body := post(t, a.url, tt.contentType, tt.header, tt.body)
		if code != tt.code || !strings.HasPrefix(body, tt.msg) || strings.Count(body, "\n") != 1 {
			t.Errorf("%s: %d %q, want %d %q...", tt.name, code, body, tt.code, tt.msg)
		}
	}
}

// BenchmarkStoragePipelineLatency measures, one upload at a time through
// the example (MinIO webhook → junction → analyzer, which reads the object
// back → results webhook), the time from PutObject returning, and from
// calling it, to the analyzed event arriving at the results webhook. It
// reports the median and p99; run it with -benchtime=200x for at least 100
// uploads:
//
//	go test -run '^$' -bench StoragePipelineLatency -benchtime 200x ./e2e
func BenchmarkStoragePipelineLatency(b *testing.B) {
	s3MinioBinary(b)
	var arrived arrivals
	results := newSink(b, func(_ int, e *event.Event) int {
		arrived.mark(e.Subject())
		return http.StatusOK
	})
	analyzerAddr := freePort(b)
	j := startFile(b, spExample, "MINIO_WEBHOOK_TOKEN=tok", "ANALYZER_URL=http://"+analyzerAddr+"/", "RESULTS_URL="+results.url)
	m := s3StartMinio(b, j.ingest+"/s3/minio", "tok")
	m.bucket(b, "uploads")
	spStartAnalyzer(b, analyzerAddr, m.url, "binary")
	body := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	m.putObject(b, "uploads", "incoming/warm-up", body, "")
	plugintest.Eventually(b, 20*time.Second, "the warm-up result", func() bool { return results.count() == 1 })

	afterPut, fromCall, early := uploadLatencies(b, &arrived, "incoming/obj-%d", func(key string) { m.putObject(b, "uploads", key, body, "") })
	b.ReportMetric(ms(percentile(afterPut, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(afterPut, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(fromCall, 0.5)), "p50-from-call-ms")
	b.ReportMetric(ms(percentile(fromCall, 0.99)), "p99-from-call-ms")
	b.Logf("%d uploads (4 KiB): PutObject returned → analyzed event at the results webhook: p50 %v, p99 %v, max %v "+
		"(%d arrived before PutObject returned); from the PutObject call: p50 %v, p99 %v, max %v",
		len(afterPut), percentile(afterPut, 0.5), percentile(afterPut, 0.99), afterPut[len(afterPut)-1], early,
		percentile(fromCall, 0.5), percentile(fromCall, 0.99), fromCall[len(fromCall)-1])
}
