package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// SourceCaps are what a source promises; the source suite checks each,
// and that a Readier declares Ready.
type SourceCaps struct {
	// Redelivery: a message whose Ingest failed is not acknowledged and
	// comes back (a broker's redelivery). Without it the producer is told:
	// Send returns an error (an HTTP source answers 5xx).
	Redelivery bool
	// Ready: the source is a sources.Readier (it waits for its broker).
	Ready bool
	// Generated: the source makes its own events from what it reads (an
	// S3 notification): Send's event is only a request for one, and the
	// suite checks that what is ingested is valid, not that it is e.
	Generated bool
}

// SourceTarget is one upstream made for one test: the source's config
// for it and how to produce to it.
type SourceTarget struct {
	// Config is the source's own keys (YAML, as under `sources: NAME:`
	// without `type`) that read from this upstream.
	Config string
	// Send produces e upstream. url is, for a source served on the HTTP
	// ingress, the URL of its path on a server running its handler, else
	// "". Send returns an error when the producer was refused (an HTTP
	// answer that is not 2xx) and fails t on other problems.
	Send func(t testing.TB, url string, e *event.Event) error
	// SendMalformed, if set, produces something the source must reject
	// (counted by Ingester.Rejected) without stopping; it returns an error
	// as Send does.
	SendMalformed func(t testing.TB, url string) error
	// Pending, if set, counts the messages of the upstream that are not
	// acknowledged yet (waiting or in flight): once the source ingested
	// everything it must come to 0.
	Pending func(t testing.TB) int
}

// SourceHarness is what a source package gives RunSourceSuite.
type SourceHarness struct {
	// Type is the source type as registered (sources.Register).
	Type string
	// New makes a fresh upstream (a queue, a stream, a path) for one test.
	New func(t testing.TB) SourceTarget
	// Caps are the source's promises.
	Caps SourceCaps
	// Wait bounds every wait for the source to ingest (default 20s) and
	// for Run to return once its context ended.
	Wait time.Duration
}

// RunSourceSuite runs the source conformance suite as subtests of t:
// events of every kind of data are ingested with every attribute and
// extension intact, a message is acknowledged only after Ingest returned
// nil, Run returns nil once its context ends, Ready behaves, and malformed
// input is rejected and counted without stopping the source.
func RunSourceSuite(t *testing.T, h SourceHarness) {
	t.Helper()
	if h.Wait == 0 {
		h.Wait = 20 * time.Second
	}
	s := &sourceSuite{h: h}
	t.Run("Capabilities", s.capabilities)
	t.Run("Attributes", s.attributes)
	t.Run("AckAfterIngest", s.ackAfterIngest)
	t.Run("Stop", s.stop)
	t.Run("Malformed", s.malformed)
}

type sourceSuite struct{ h SourceHarness }

// BuildSource decodes src, a source's own keys, as the loader does (the
// registered factory of typ, strict decoding, Validate) and builds the
// source: a sources.Source or a sources.HTTPSource.
func BuildSource(t testing.TB, typ, src string) any {
	t.Helper()
	f, ok := sources.Lookup(typ)
	if !ok {
		t.Fatalf("source type %q is not registered", typ)
	}
	c := f()
	if msg := Check(t, src, fmt.Sprintf("source %q", "suite"), c); msg != "" {
		t.Fatalf("source config:\n%s\n%s", src, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Build(ctx, sources.Deps{Name: "suite", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodySize: 1 << 20})
	if err != nil {
		t.Fatalf("build source: %v", err)
	}
	if c, ok := s.(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	return s
}

// running is a source built and running for one test.
type running struct {
	src  any
	rec  *sourcetest.Recorder
	url  string // the HTTP source's URL, else ""
	stop func() // stops a Source and checks Run's result
}

// start builds the source of tg's config and runs it with rec: a Source
// until the test ends, an HTTPSource behind a test server.
func (s *sourceSuite) start(t testing.TB, tg SourceTarget, rec *sourcetest.Recorder) *running {
	t.Helper()
	r := &running{src: BuildSource(t, s.h.Type, tg.Config), rec: rec, stop: func() {}}
	switch src := r.src.(type) {
	case sources.Source:
		r.stop = sourcetest.Run(t, src, rec, s.h.Wait)
	case sources.HTTPSource:
		mux := http.NewServeMux()
		mux.Handle(src.Path(), src.Handler(rec))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		r.url = srv.URL + src.Path()
	default:
		t.Fatalf("Build returned %T: neither a Source nor an HTTPSource", r.src)
	}
	return r
}

// ingested waits until rec has recorded the event id, and returns it. For
// a source of Generated events it waits for the event after the first
// before ones.
func (s *sourceSuite) ingested(t testing.TB, rec *sourcetest.Recorder, id string, before int) *event.Event {
	t.Helper()
	var got *event.Event
	Eventually(t, s.h.Wait, "the source to ingest event "+id, func() bool {
		events := rec.Events()
		if s.h.Caps.Generated {
			if len(events) > before {
				got = events[before]
				return true
			}
			return false
		}
		for _, e := range events {
			if e.ID() == id {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

func (s *sourceSuite) capabilities(t *testing.T) {
	r := s.start(t, s.h.New(t), &sourcetest.Recorder{})
	_, isReadier := r.src.(sources.Readier)
	if isReadier != s.h.Caps.Ready {
		t.Errorf("the source is a Readier: %v; Caps.Ready: %v", isReadier, s.h.Caps.Ready)
	}
	if _, isHTTP := r.src.(sources.HTTPSource); isHTTP && s.h.Caps.Redelivery {
		t.Error("an HTTP source cannot redeliver: its producer retries")
	}
	if rd, ok := r.src.(sources.Readier); ok {
		Eventually(t, s.h.Wait, "the source to be ready", rd.Ready)
	}
}

func (s *sourceSuite) attributes(t *testing.T) {
	tg := s.h.New(t)
	r := s.start(t, tg, &sourcetest.Recorder{})
	kinds := []string{"json", "text", "binary"}
	if s.h.Caps.Generated {
		kinds = kinds[:1] // the source makes its own data
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			want := SuiteEvent(kind)
			before := r.rec.Count()
			if err := tg.Send(t, r.url, want); err != nil {
				t.Fatalf("send: %v", err)
			}
			got := s.ingested(t, r.rec, want.ID(), before)
			// A Generated event is what the source made of the message.
			if d := DiffEvents(got, want); d != "" && !s.h.Caps.Generated {
				t.Errorf("the source ingested another event:\n%s", d)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("the ingested event is not valid: %v", err)
			}
		})
	}
	s.settled(t, tg)
}

// ackAfterIngest: while Ingest fails, the message is not acknowledged: a
// broker redelivers it, an HTTP producer is refused. Once Ingest succeeds
// it is ingested.
func (s *sourceSuite) ackAfterIngest(t *testing.T) {
	tg := s.h.New(t)
	e := SuiteEvent("json")
	var mu sync.Mutex
	failures := 0
	rec := &sourcetest.Recorder{Fail: func(_ int, events []*event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range events {
			if (x.ID() == e.ID() || s.h.Caps.Generated) && failures < 1 {
				failures++
				return sources.ErrUnavailable
			}
		}
		return nil
	}}
	r := s.start(t, tg, rec)
	err := tg.Send(t, r.url, e)
	if s.h.Caps.Redelivery {
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		s.ingested(t, rec, e.ID(), 0)
		s.settled(t, tg)
		mu.Lock()
		defer mu.Unlock()
		if failures != 1 {
			t.Errorf("Ingest failed %d times, want 1", failures)
		}
		return
	}
	if err == nil {
		t.Fatal("the producer was not told that Ingest failed")
	}
	if n := rec.Count(); n != 0 {
		t.Fatalf("the refused event was recorded %d times", n)
	}
	if err := tg.Send(t, r.url, e); err != nil {
		t.Fatalf("send again: %v", err)
	}
	s.ingested(t, rec, e.ID(), 0)
}

// settled waits until the upstream holds no message that is not
// acknowledged, when the harness can tell.
func (s *sourceSuite) settled(t testing.TB, tg SourceTarget) {
	t.Helper()
	if tg.Pending != nil {
		Eventually(t, s.h.Wait, "every message to be acknowledged", func() bool { return tg.Pending(t) == 0 })
	}
}

func (s *sourceSuite) stop(t *testing.T) {
	tg := s.h.New(t)
	r := s.start(t, tg, &sourcetest.Recorder{})
	if _, ok := r.src.(sources.Source); !ok {
		t.Skip("an HTTP source does not run on its own")
	}
	e := SuiteEvent("text")
	if err := tg.Send(t, r.url, e); err != nil {
		t.Fatalf("send: %v", err)
	}
	s.ingested(t, r.rec, e.ID(), 0)
	r.stop() // fails t unless Run returns nil
	// A second stop is harmless; what was ingested stays.
	r.stop()
	if r.rec.Count() == 0 {
		t.Error("the event was lost")
	}
}

func (s *sourceSuite) malformed(t *testing.T) {
	tg := s.h.New(t)
	if tg.SendMalformed == nil {
		t.Skip("the harness cannot send malformed input")
	}
	r := s.start(t, tg, &sourcetest.Recorder{})
	err := tg.SendMalformed(t, r.url)
	if r.url != "" && err == nil {
		t.Error("an HTTP producer of malformed input was not refused")
	}
	Eventually(t, s.h.Wait, "the malformed input to be rejected", func() bool {
		n := 0
		for _, c := range r.rec.Reasons() {
			n += c
		}
		return n > 0
	})
	if n := r.rec.Count(); n != 0 {
		t.Errorf("malformed input gave %d events", n)
	}
	// The source goes on.
	e := SuiteEvent("json")
	if err := tg.Send(t, r.url, e); err != nil {
		t.Fatalf("send after the malformed input: %v", err)
	}
	s.ingested(t, r.rec, e.ID(), 0)
}

// PostEvent posts e to url in binary or structured mode, as a CloudEvents
// producer does, and returns an error unless the answer is 2xx.
func PostEvent(t testing.TB, url, format string, e *event.Event, header http.Header) error {
	t.Helper()
	h := http.Header{}
	var body []byte
	if format == "structured" {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		body = b
		h.Set("Content-Type", event.ApplicationCloudEventsJSON)
	} else {
		if err := cehttp.SetBinaryHeaders(h, e); err != nil {
			t.Fatal(err)
		}
		body = e.Data()
	}
	for k, v := range header {
		h[k] = v
	}
	return Post(t, url, h, body)
}

// Post posts body with header to url and returns an error unless the
// answer is 2xx.
func Post(t testing.TB, url string, header http.Header, body []byte) error {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return errors.New(resp.Status + ": " + string(b))
	}
	return nil
}

// Attributes returns the context attributes and extensions of e by name,
// as strings in their canonical form, without datacontenttype: what a
// producer writes as the headers of a binary-mode message (with its
// transport's prefix, such as "ce-").
func Attributes(e *event.Event) map[string]string {
	m := map[string]string{
		"specversion": e.SpecVersion(),
		"id":          e.ID(),
		"source":      e.Source(),
		"type":        e.Type(),
	}
	if v := e.Subject(); v != "" {
		m["subject"] = v
	}
	if v := e.DataSchema(); v != "" {
		m["dataschema"] = v
	}
	if t := e.Time(); !t.IsZero() {
		m["time"] = t.Format(time.RFC3339Nano)
	}
	for k, v := range e.Extensions() {
		m[k], _ = types.Format(v)
	}
	return m
}
