// Command analyzer is the function of the storage pipeline example: an HTTP
// endpoint that Junction's function sink POSTs S3 CloudEvents to (one per
// uploaded object, binary or structured mode). For each it reads the object
// from S3 (or MinIO), computes its size, content type and SHA-256, and
// answers with a CloudEvent com.example.object.analyzed, which Junction
// routes on as an event from the source named after the sink.
//
// Answers: 200 with the reply event; 400 for a request that is not an S3
// CloudEvent and 404 when the object (or bucket) does not exist, which
// Junction treats as permanent (dead-lettered at once); 502 when S3 answers
// with another error and 503 when S3 cannot be reached, which Junction
// retries. GET /healthz answers 200.
//
// Usage:
//
//	AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... analyzer [flags]
//
//	-listen       address to serve on ($ANALYZER_LISTEN, 127.0.0.1:8081)
//	-s3-endpoint  S3-compatible endpoint, path-style ($S3_ENDPOINT,
//	              http://127.0.0.1:9000); empty for AWS S3
//	-region       S3 region ($AWS_REGION, us-east-1)
//	-reply        content mode of replies: binary or structured
//	              ($ANALYZER_REPLY, binary)
//
// Credentials come from the AWS default chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, a profile, a role).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"
)

// Attributes of the reply events.
const (
	ReplyType   = "com.example.object.analyzed"
	ReplySource = "/functions/analyzer"
)

// maxEventSize bounds the request body: an S3 notification record is a few
// KiB.
const maxEventSize = 1 << 20

// Result is the data of a reply event.
type Result struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
	SHA256      string `json:"sha256"`
}

func main() {
	listen := flag.String("listen", envOr("ANALYZER_LISTEN", "127.0.0.1:8081"), "address to serve on")
	endpoint := flag.String("s3-endpoint", envOr("S3_ENDPOINT", "http://127.0.0.1:9000"), "S3-compatible endpoint (path-style); empty for AWS S3")
	region := flag.String("region", envOr("AWS_REGION", "us-east-1"), "S3 region")
	reply := flag.String("reply", envOr("ANALYZER_REPLY", "binary"), "content mode of replies: binary or structured")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *endpoint, *region, *reply, log); err != nil {
		log.Error("analyzer stopped", "err", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func run(listen, endpoint, region, reply string, log *slog.Logger) error {
	if reply != "binary" && reply != "structured" {
		return fmt.Errorf("-reply %q: must be binary or structured", reply)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return fmt.Errorf("load AWS config: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		// Junction retries the event (503): fail fast here.
		o.RetryMaxAttempts = 1
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	a := &analyzer{s3: client, structured: reply == "structured", log: log}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("analyzer listening", "addr", ln.Addr().String(), "s3", orDefault(endpoint, "AWS"), "reply", reply)
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// analyzer is the HTTP function.
type analyzer struct {
	s3         *s3.Client
	structured bool
	log        *slog.Logger
}

// statusError is an error with the HTTP status it is answered with.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

func (a *analyzer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		io.WriteString(w, "ok\n")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a CloudEvent", http.StatusMethodNotAllowed)
		return
	}
	start := time.Now()
	out, err := a.handle(r)
	if err != nil {
		var se *statusError
		if !errors.As(err, &se) {
			se = &statusError{code: http.StatusInternalServerError, msg: err.Error()}
		}
		a.log.Warn("analysis failed", "status", se.code, "err", se.msg)
		http.Error(w, oneLine(se.msg, 300), se.code)
		return
	}
	res := out.res
	a.log.Info("analyzed", "ce_id", out.in.ID(), "bucket", res.Bucket, "key", res.Key, "size", res.Size,
		"content_type", res.ContentType, "took", time.Since(start).Round(time.Microsecond))
	if err := writeReply(w, out.reply, a.structured); err != nil {
		a.log.Warn("write reply", "err", err)
	}
}

type outcome struct {
	in    *event.Event
	res   Result
	reply *event.Event
}

func (a *analyzer) handle(r *http.Request) (*outcome, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventSize+1))
	if err != nil {
		return nil, fail(http.StatusBadRequest, "read request: %v", err)
	}
	if len(body) > maxEventSize {
		return nil, fail(http.StatusRequestEntityTooLarge, "event larger than %d bytes", maxEventSize)
	}
	in, err := readEvent(r.Header, body)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "not a CloudEvent: %v", err)
	}
	bucket, key, err := objectOf(in)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "event %s (%s) is not an S3 object event: %v", in.ID(), in.Type(), err)
	}
	res, err := a.analyze(r.Context(), bucket, key)
	if err != nil {
		return nil, err
	}
	reply := event.New()
	// The same event analyzed again (Junction delivers at least once)
	// gives the same id: consumers can deduplicate.
	reply.SetID(in.ID() + "-analyzed")
	reply.SetSource(ReplySource)
	reply.SetType(ReplyType)
	reply.SetSubject(key)
	reply.SetTime(time.Now().UTC())
	if err := reply.SetData(event.ApplicationJSON, res); err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return &outcome{in: in, res: res, reply: &reply}, nil
}

// analyze reads the object and computes its Result.
func (a *analyzer) analyze(ctx context.Context, bucket, key string) (Result, error) {
	res := Result{Bucket: bucket, Key: key}
	obj, err := a.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return res, s3Error(bucket, key, err)
	}
	defer obj.Body.Close()
	h := sha256.New()
	head := make([]byte, 512)
	n, err := io.ReadFull(obj.Body, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return res, fail(http.StatusServiceUnavailable, "read s3://%s/%s: %v", bucket, key, err)
	}
	head = head[:n]
	h.Write(head)
	rest, err := io.Copy(h, obj.Body)
	if err != nil {
		return res, fail(http.StatusServiceUnavailable, "read s3://%s/%s: %v", bucket, key, err)
	}
	res.Size = int64(n) + rest
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	res.ContentType = contentType(aws.ToString(obj.ContentType), head)
	return res, nil
}

// contentType is the stored Content-Type unless it is missing or says
// only "bytes", and otherwise the type sniffed from the first bytes.
func contentType(stored string, head []byte) string {
	mt, _, err := mime.ParseMediaType(stored)
	if stored == "" || err != nil || mt == "application/octet-stream" || mt == "binary/octet-stream" {
		return http.DetectContentType(head)
	}
	return stored
}

// s3Error maps a GetObject error to the answer: 404 (permanent) when the
// object or bucket does not exist, 502 (retried) for another S3 error, and
// 503 (retried) when S3 could not be reached.
func s3Error(bucket, key string, err error) error {
	var (
		noKey    *s3types.NoSuchKey
		noBucket *s3types.NoSuchBucket
		resp     *awshttp.ResponseError
		api      smithy.APIError
	)
	switch {
	case errors.As(err, &noKey), errors.As(err, &noBucket),
		errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound:
		return fail(http.StatusNotFound, "s3://%s/%s: no such object", bucket, key)
	case errors.As(err, &api):
		return fail(http.StatusBadGateway, "get s3://%s/%s: S3 answered %s: %s", bucket, key, api.ErrorCode(), api.ErrorMessage())
	}
	// The network error says it best (dial tcp ...: connection refused).
	var op *net.OpError
	if errors.As(err, &op) {
		err = op
	}
	return fail(http.StatusServiceUnavailable, "get s3://%s/%s: S3 unreachable: %v", bucket, key, err)
}

// readEvent reads the request's CloudEvent: structured mode
// (application/cloudevents+json) or binary mode (ce-* headers,
// percent-decoded as the CloudEvents HTTP binding says).
func readEvent(h http.Header, body []byte) (*event.Event, error) {
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt == "application/cloudevents+json" {
		e := event.New()
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, err
		}
		return &e, e.Validate()
	}
	sv := h.Get("Ce-Specversion")
	if sv == "" {
		return nil, errors.New("no ce-specversion header and not application/cloudevents+json")
	}
	if sv != event.CloudEventsVersionV1 && sv != event.CloudEventsVersionV03 {
		return nil, fmt.Errorf("unsupported ce-specversion %q", oneLine(sv, 40))
	}
	e := event.New(sv)
	for name, set := range map[string]func(string){
		"Ce-Id": e.SetID, "Ce-Source": e.SetSource, "Ce-Type": e.SetType, "Ce-Subject": e.SetSubject,
	} {
		v, err := pctDecode(h.Get(name))
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		if v != "" {
			set(v)
		}
	}
	e.SetDataContentType(h.Get("Content-Type"))
	e.DataEncoded = body
	return &e, e.Validate()
}

// pctDecode undoes the CloudEvents HTTP binding's percent-encoding of
// header values.
func pctDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	// PathUnescape decodes %XY and nothing else (a '+' stays a '+').
	v, err := url.PathUnescape(s)
	if err != nil {
		return "", errors.New("invalid percent-encoding")
	}
	if !utf8.ValidString(v) {
		return "", errors.New("not UTF-8 once percent-decoded")
	}
	return v, nil
}

// pctEncode percent-encodes a header value as the CloudEvents HTTP binding
// says: space, '"', '%' and bytes outside printable ASCII.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7F || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// s3Record is the part of an S3 notification record (the data of an S3
// CloudEvent) that the analyzer reads.
type s3Record struct {
	S3 struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key string `json:"key"`
		} `json:"object"`
	} `json:"s3"`
}

// objectOf returns the bucket and key of an S3 CloudEvent: the bucket from
// the record, the key from subject (Junction's s3 source sets it to the
// decoded key), or else from the record, form-decoded.
func objectOf(e *event.Event) (bucket, key string, err error) {
	var rec s3Record
	if err := json.Unmarshal(e.Data(), &rec); err != nil {
		return "", "", fmt.Errorf("data is not an S3 record: %v", err)
	}
	if rec.S3.Bucket.Name == "" {
		return "", "", errors.New("data has no s3.bucket.name")
	}
	key = e.Subject()
	if key == "" {
		if key, err = url.QueryUnescape(rec.S3.Object.Key); err != nil {
			key = rec.S3.Object.Key
		}
	}
	if key == "" {
		return "", "", errors.New("no subject and no s3.object.key")
	}
	return rec.S3.Bucket.Name, key, nil
}

// writeReply answers 200 with the event in binary or structured mode.
func writeReply(w http.ResponseWriter, e *event.Event, structured bool) error {
	if structured {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/cloudevents+json")
		_, err = w.Write(b)
		return err
	}
	h := w.Header()
	h.Set("Ce-Specversion", e.SpecVersion())
	h.Set("Ce-Id", pctEncode(e.ID()))
	h.Set("Ce-Source", pctEncode(e.Source()))
	h.Set("Ce-Type", pctEncode(e.Type()))
	h.Set("Ce-Subject", pctEncode(e.Subject()))
	h.Set("Ce-Time", e.Time().Format(time.RFC3339Nano))
	h.Set("Content-Type", e.DataContentType())
	_, err := w.Write(e.Data())
	return err
}

// oneLine shortens s to one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}
