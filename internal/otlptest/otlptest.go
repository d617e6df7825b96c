// Package otlptest is an OpenTelemetry collector for tests: an HTTP server
// on loopback that takes OTLP/HTTP trace exports (ExportTraceServiceRequest
// in protobuf, as otlptracehttp sends them) and keeps the spans. Only tests
// import it.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, its ids in hex.
type Span struct {
	Name    string
	Service string
	TraceID string
	SpanID  string
	// Parent is the parent span's id, "" for a root.
	Parent string
	// Links are the span contexts it links to, as "traceid-spanid".
	Links []string
	// Attrs are its attributes in their string form.
	Attrs map[string]string
	// Error is set when its status is an error.
	Error bool
}

func (s Span) String() string {
	return fmt.Sprintf("%s trace=%s span=%s parent=%s attrs=%v error=%v", s.Name, s.TraceID, s.SpanID, s.Parent, s.Attrs, s.Error)
}

// Receiver is a running collector.
type Receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []Span
	bad   []string
	// discard has requests read but not decoded (benchmarks).
	discard bool
	bytes   int64
}

// StartDiscarding starts a collector that reads requests without decoding
// them, so that a benchmark measures the sender; Bytes tells how much it
// read.
func StartDiscarding(t testing.TB) *Receiver {
	r := Start(t)
	r.mu.Lock()
	r.discard = true
	r.mu.Unlock()
	return r
}

// Bytes is how many bytes of exports a discarding collector read.
func (r *Receiver) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Start starts a collector until the test ends.
func Start(t testing.TB) *Receiver {
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, b := range r.bad {
			t.Errorf("otlptest: %s", b)
		}
	})
	return r
}

// URL is the base URL, as telemetry.otlp.endpoint takes it.
func (r *Receiver) URL() string { return r.srv.URL }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	fail := func(status int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		r.mu.Lock()
		r.bad = append(r.bad, msg)
		r.mu.Unlock()
		http.Error(w, msg, status)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		fail(http.StatusNotFound, "unexpected %s %s", req.Method, req.URL.Path)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		fail(http.StatusUnsupportedMediaType, "content type %q", ct)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			fail(http.StatusBadRequest, "gzip: %v", err)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		fail(http.StatusBadRequest, "read: %v", err)
		return
	}
	r.mu.Lock()
	discard := r.discard
	r.bytes += int64(len(b))
	r.mu.Unlock()
	if discard {
		w.Header().Set("Content-Type", "application/x-protobuf")
		return
	}
	var ex coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &ex); err != nil {
		fail(http.StatusBadRequest, "decode ExportTraceServiceRequest: %v", err)
		return
	}
	var got []Span
	for _, rs := range ex.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				got = append(got, convert(sp, service))
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	io.Copy(w, bytes.NewReader(out))
}

func convert(sp *tracepb.Span, service string) Span {
	s := Span{
		Name:    sp.GetName(),
		Service: service,
		TraceID: hex.EncodeToString(sp.GetTraceId()),
		SpanID:  hex.EncodeToString(sp.GetSpanId()),
		Attrs:   attrs(sp.GetAttributes()),
		Error:   sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
	}
	if p := sp.GetParentSpanId(); len(p) > 0 {
		s.Parent = hex.EncodeToString(p)
	}
	for _, l := range sp.GetLinks() {
		s.Links = append(s.Links, hex.EncodeToString(l.GetTraceId())+"-"+hex.EncodeToString(l.GetSpanId()))
	}
	return s
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Named returns the spans received so far whose name starts with prefix,
// in the trace traceID ("" for any).
func (r *Receiver) Named(prefix, traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if strings.HasPrefix(s.Name, prefix) && (traceID == "" || s.TraceID == traceID) {
			out = append(out, s)
		}
	}
	return out
}
