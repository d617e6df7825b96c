package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/junctionhq/junction/sinks"
)

// SinkCaps are what a sink promises beyond delivering one event; the sink
// suite checks each promise it is given, and that a sink does not do more
// than its flags say (a BatchSink must declare Batch, a ReplySink Reply), so
// that the flags cannot drift from the code.
type SinkCaps struct {
	// Batch: the sink is a sinks.BatchSink and a batch arrives whole and in
	// order.
	Batch bool
	// Reply: the sink is a sinks.ReplySink.
	Reply bool
	// Ordered: events delivered one after the other arrive in that order.
	Ordered bool
}

// SinkFailure is a way a sink's destination can fail.
type SinkFailure int

const (
	// FailRetryable is a destination that refuses for now (HTTP 503, a
	// broker that is down): Deliver must fail with a retryable error.
	FailRetryable SinkFailure = iota
	// FailPermanent is a destination that refuses for good (HTTP 400, a
	// queue that does not exist): Deliver must fail with sinks.Permanent.
	FailPermanent
	// FailStall is a destination that accepts the connection and never
	// answers: Deliver must honour its context's deadline and cancellation.
	FailStall
)

// String names the failure: retryable, permanent or stall.
func (f SinkFailure) String() string {
	return [...]string{"retryable", "permanent", "stall"}[f]
}

// SinkTarget is one destination made for one test: the sink's config for
// it and how to read what it got.
type SinkTarget struct {
	// Config is the sink's own keys (YAML, as under `sinks: NAME:` without
	// `type`) that send to this destination.
	Config string
	// Receive returns the events the destination received so far, in the
	// order it received them, decoded from what came over the wire. nil when
	// the destination cannot be read back (a function whose replies are
	// read instead: SinkHarness.Echoed).
	Receive func(t testing.TB) []event.Event
}

// SinkHarness is what a sink package gives RunSinkSuite: how to make a
// real destination started in the test, how to read it, and how to make it
// fail.
type SinkHarness struct {
	// Type is the sink type as registered (sinks.Register).
	Type string
	// New starts or names a fresh destination for one test.
	New func(t testing.TB) SinkTarget
	// Fail returns the config of a destination that fails as f says, or ""
	// when this sink cannot be made to fail so (the check is skipped).
	// nil: none can.
	Fail func(t testing.TB, f SinkFailure) string
	// Echoed, for a reply sink whose destination cannot be read back,
	// returns the event the destination got as its reply says.
	Echoed func(t testing.TB, reply *event.Event) event.Event
	// CheckReply, for a reply sink, checks the reply to sent.
	CheckReply func(t testing.TB, sent, reply *event.Event)
	// Caps are the sink's promises.
	Caps SinkCaps
	// Wait bounds every wait for a destination to show what was sent
	// (default 10s).
	Wait time.Duration
}

// RunSinkSuite runs the sink conformance suite as subtests of t: events
// of every kind of data arrive with every attribute and extension intact,
// failures are classified, contexts are honoured, Close is idempotent,
// concurrent Delivers are safe (run it under -race), and each capability
// of h.Caps holds.
func RunSinkSuite(t *testing.T, h SinkHarness) {
	t.Helper()
	if h.Wait == 0 {
		h.Wait = 10 * time.Second
	}
	s := &sinkSuite{h: h}
	t.Run("Capabilities", s.capabilities)
	t.Run("Attributes", s.attributes)
	t.Run("Failures", s.failures)
	t.Run("Context", s.context)
	t.Run("Close", s.close)
	t.Run("Concurrent", s.concurrent)
	t.Run("Ordered", s.ordered)
	t.Run("Batch", s.batch)
	t.Run("Reply", s.reply)
}

type sinkSuite struct{ h SinkHarness }

// BuildSink decodes src, a sink's own keys, as the loader does (the
// registered factory of typ, strict decoding, Validate) and builds the
// sink; it is closed when the test ends.
func BuildSink(t testing.TB, typ, src string) sinks.Sink {
	t.Helper()
	f, ok := sinks.Lookup(typ)
	if !ok {
		t.Fatalf("sink type %q is not registered", typ)
	}
	c := f()
	if msg := Check(t, src, fmt.Sprintf("sink %q", "suite"), c); msg != "" {
		t.Fatalf("sink config:\n%s\n%s", src, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Build(ctx, sinks.Deps{Name: "suite", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("build sink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *sinkSuite) build(t testing.TB, src string) sinks.Sink {
	t.Helper()
	return BuildSink(t, s.h.Type, src)
}

// deliverCtx bounds a delivery that should succeed.
func deliverCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var suiteSeq atomic.Int64

// SuiteEvent is an event with every CloudEvents 1.0 attribute and three
// extensions (a string, an integer, a boolean) and data of kind: "json",
// "text" or "binary" (every byte value).
func SuiteEvent(kind string) *event.Event {
	e := event.New()
	e.SetID(fmt.Sprintf("suite-%s-%d-%d", kind, time.Now().UnixNano(), suiteSeq.Add(1)))
	e.SetSource("/plugintest/suite")
	e.SetType("dev.junction.suite." + kind)
	e.SetSubject("sübject ✓ <&>")
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC))
	e.SetDataSchema("https://example.com/schemas/suite.json")
	e.SetExtension("tenant", "acme corp")
	e.SetExtension("attempt", 3)
	e.SetExtension("urgent", true)
	switch kind {
	case "json":
		_ = e.SetData(event.ApplicationJSON, json.RawMessage(`{"n":1,"s":"ü ✓","list":[true,null]}`))
	case "text":
		_ = e.SetData(event.TextPlain, []byte("line one\nline two ✓\n"))
	default:
		data := make([]byte, 256)
		for i := range data {
			data[i] = byte(i)
		}
		_ = e.SetData("application/octet-stream", data)
	}
	return &e
}

// DiffEvents says how got differs from want, or returns "". Extensions are
// compared in their canonical string form, as the binary modes of every
// transport carry them; JSON data is compared as JSON.
func DiffEvents(got, want *event.Event) string {
	var d []string
	add := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, fmt.Sprint(g), fmt.Sprint(w)))
		}
	}
	add("specversion", got.SpecVersion(), want.SpecVersion())
	add("id", got.ID(), want.ID())
	add("source", got.Source(), want.Source())
	add("type", got.Type(), want.Type())
	add("subject", got.Subject(), want.Subject())
	add("dataschema", got.DataSchema(), want.DataSchema())
	add("datacontenttype", got.DataContentType(), want.DataContentType())
	if !got.Time().Equal(want.Time()) {
		d = append(d, fmt.Sprintf("time: got %s, want %s", got.Time().Format(time.RFC3339Nano), want.Time().Format(time.RFC3339Nano)))
	}
	for k, v := range want.Extensions() {
		g, ok := got.Extensions()[k]
		if !ok {
			d = append(d, "extension "+k+" is missing")
			continue
		}
		gs, _ := types.Format(g)
		ws, _ := types.Format(v)
		add("extension "+k, gs, ws)
	}
	for k := range got.Extensions() {
		if _, ok := want.Extensions()[k]; !ok {
			d = append(d, "extension "+k+" was added")
		}
	}
	if !sameData(got, want) {
		d = append(d, fmt.Sprintf("data: got %q, want %q", got.Data(), want.Data()))
	}
	return strings.Join(d, "\n")
}

func sameData(got, want *event.Event) bool {
	if bytes.Equal(got.Data(), want.Data()) {
		return true
	}
	if !strings.HasPrefix(want.DataContentType(), event.ApplicationJSON) {
		return false
	}
	var g, w any
	if json.Unmarshal(got.Data(), &g) != nil || json.Unmarshal(want.Data(), &w) != nil {
		return false
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

// received waits until the destination shows every one of ids and returns
// what it got, in order.
func (s *sinkSuite) received(t testing.TB, tg SinkTarget, ids ...string) []event.Event {
	t.Helper()
	var got []event.Event
	Eventually(t, s.h.Wait, fmt.Sprintf("the destination to receive %d events", len(ids)), func() bool {
		got = tg.Receive(t)
		have := map[string]bool{}
		for _, e := range got {
			have[e.ID()] = true
		}
		for _, id := range ids {
			if !have[id] {
				return false
			}
		}
		return true
	})
	return got
}

// deliverAndRead sends e with sink and returns what the destination got of it:
// from the destination when it can be read, else from the reply.
func (s *sinkSuite) deliverAndRead(t *testing.T, sink sinks.Sink, tg SinkTarget, e *event.Event) *event.Event {
	t.Helper()
	if tg.Receive == nil {
		rs, ok := sink.(sinks.ReplySink)
		if !ok || s.h.Echoed == nil {
			t.Fatal("the harness gives neither Receive nor a reply sink with Echoed")
		}
		r, err := rs.DeliverReply(deliverCtx(t), e)
		if err != nil {
			t.Fatalf("DeliverReply: %v", err)
		}
		if r == nil {
			t.Fatal("DeliverReply: no reply to read the delivered event from")
		}
		got := s.h.Echoed(t, r)
		return &got
	}
	if err := sink.Deliver(deliverCtx(t), e); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	for _, g := range s.received(t, tg, e.ID()) {
		if g.ID() == e.ID() {
			return &g
		}
	}
	t.Fatalf("event %s not received", e.ID())
	return nil
}

func (s *sinkSuite) capabilities(t *testing.T) {
	sink := s.build(t, s.h.New(t).Config)
	_, isBatch := sink.(sinks.BatchSink)
	_, isReply := sink.(sinks.ReplySink)
	if isBatch != s.h.Caps.Batch {
		t.Errorf("the sink is a BatchSink: %v; Caps.Batch: %v", isBatch, s.h.Caps.Batch)
	}
	if isReply != s.h.Caps.Reply {
		t.Errorf("the sink is a ReplySink: %v; Caps.Reply: %v", isReply, s.h.Caps.Reply)
	}
	if s.h.Caps.Reply && s.h.CheckReply == nil {
		t.Error("Caps.Reply without CheckReply")
	}
}

func (s *sinkSuite) attributes(t *testing.T) {
	tg := s.h.New(t)
	sink := s.build(t, tg.Config)
	for _, kind := range []string{"json", "text", "binary"} {
		t.Run(kind, func(t *testing.T) {
			want := SuiteEvent(kind)
			got := s.deliverAndRead(t, sink, tg, want)
			if d := DiffEvents(got, want); d != "" {
				t.Errorf("the destination got another event:\n%s", d)
			}
		})
	}
}

func (s *sinkSuite) failures(t *testing.T) {
	for _, f := range []SinkFailure{FailRetryable, FailPermanent} {
		t.Run(f.String(), func(t *testing.T) {
			src := s.failing(t, f)
			sink := s.build(t, src)
			err := sink.Deliver(deliverCtx(t), SuiteEvent("json"))
			if err == nil {
				t.Fatal("Deliver to a failing destination returned nil")
			}
			if permanent, _ := sinks.Classify(err); permanent != (f == FailPermanent) {
				t.Errorf("Deliver: %v; permanent %v, want %v", err, permanent, f == FailPermanent)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is not one line: %q", err)
			}
		})
	}
}

// failing returns the config of a destination failing as f says, or skips
// t.
func (s *sinkSuite) failing(t *testing.T, f SinkFailure) string {
	t.Helper()
	var src string
	if s.h.Fail != nil {
		src = s.h.Fail(t, f)
	}
	if src == "" {
		t.Skipf("the harness cannot make the destination fail so (%s)", f)
	}
	return src
}

func (s *sinkSuite) context(t *testing.T) {
	src := s.failing(t, FailStall)
	t.Run("deadline", func(t *testing.T) {
		sink := s.build(t, src)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := sink.Deliver(ctx, SuiteEvent("json"))
		if err == nil {
			t.Fatal("Deliver to a destination that never answers returned nil")
		}
		if permanent, _ := sinks.Classify(err); permanent {
			t.Errorf("a timeout is permanent: %v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		sink := s.build(t, src)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sink.Deliver(ctx, SuiteEvent("json")) }()
		cancel()
		if err := <-done; err == nil {
			t.Fatal("a cancelled Deliver to a destination that never answers returned nil")
		}
	})
}

func (s *sinkSuite) close(t *testing.T) {
	tg := s.h.New(t)
	sink := s.build(t, tg.Config)
	if err := sink.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// After Close a delivery may fail; it must not panic nor hang.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = sink.Deliver(ctx, SuiteEvent("json"))
}

func (s *sinkSuite) concurrent(t *testing.T) {
	const workers, each = 8, 5
	tg := s.h.New(t)
	sink := s.build(t, tg.Config)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e := SuiteEvent("json")
				e.SetExtension("worker", strconv.Itoa(w*each+i))
				mu.Lock()
				ids = append(ids, e.ID())
				mu.Unlock()
				if tg.Receive == nil {
					if _, err := sink.(sinks.ReplySink).DeliverReply(deliverCtx(t), e); err != nil {
						errs <- err
					}
				} else if err := sink.Deliver(deliverCtx(t), e); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Deliver: %v", err)
	}
	if tg.Receive != nil && !t.Failed() {
		got := s.received(t, tg, ids...)
		if n := countIDs(got, ids); n != len(ids) {
			t.Errorf("the destination got %d of the %d events, duplicates counted", n, len(ids))
		}
	}
}

// countIDs counts the events of got whose id is one of ids.
func countIDs(got []event.Event, ids []string) int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	for _, e := range got {
		if want[e.ID()] {
			n++
		}
	}
	return n
}

// order returns the ids of got that are in ids, in got's order.
func order(got []event.Event, ids []string) []string {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []string
	for _, e := range got {
		if want[e.ID()] {
			out = append(out, e.ID())
		}
	}
	return out
}

// adjacent reports whether the events of got whose id is one of ids come
// one after the other, nothing between them.
func adjacent(got []event.Event, ids []string) bool {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	first, last, n := -1, -1, 0
	for i, e := range got {
		if want[e.ID()] {
			if first < 0 {
				first = i
			}
			last = i
			n++
		}
	}
	return n == 0 || last-first+1 == n
}

func (s *sinkSuite) ordered(t *testing.T) {
	if !s.h.Caps.Ordered {
		t.Skip("the sink does not promise order")
	}
	tg := s.h.New(t)
	sink := s.build(t, tg.Config)
	var ids []string
	for range 10 {
		e := SuiteEvent("text")
		ids = append(ids, e.ID())
		if err := sink.Deliver(deliverCtx(t), e); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if got := order(s.received(t, tg, ids...), ids); strings.Join(got, " ") != strings.Join(ids, " ") {
		t.Errorf("order:\n got %v\nwant %v", got, ids)
	}
}

func (s *sinkSuite) batch(t *testing.T) {
	if !s.h.Caps.Batch {
		t.Skip("the sink does not batch")
	}
	tg := s.h.New(t)
	sink := s.build(t, tg.Config)
	bs, ok := sink.(sinks.BatchSink)
	if !ok {
		t.Fatal("the sink is not a BatchSink")
	}
	var events []*event.Event
	var ids []string
	for _, kind := range []string{"json", "text", "binary", "json", "text"} {
		e := SuiteEvent(kind)
		events = append(events, e)
		ids = append(ids, e.ID())
	}
	errs := bs.DeliverBatch(deliverCtx(t), events)
	if len(errs) != len(events) {
		t.Fatalf("DeliverBatch returned %d errors for %d events", len(errs), len(events))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("DeliverBatch: %v", err)
	}
	got := s.received(t, tg, ids...)
	if o := order(got, ids); strings.Join(o, " ") != strings.Join(ids, " ") {
		t.Errorf("the batch arrived as %v, want %v", o, ids)
	}
	if !adjacent(got, ids) {
		t.Error("the batch did not arrive whole: other events came between its events")
	}
	byID := map[string]event.Event{}
	for _, e := range got {
		byID[e.ID()] = e
	}
	for _, want := range events {
		g := byID[want.ID()]
		if d := DiffEvents(&g, want); d != "" {
			t.Errorf("event %s of the batch:\n%s", want.ID(), d)
		}
	}
	if errs := bs.DeliverBatch(deliverCtx(t), nil); len(errs) != 0 {
		t.Errorf("an empty batch returned %d errors", len(errs))
	}
}

func (s *sinkSuite) reply(t *testing.T) {
	if !s.h.Caps.Reply {
		t.Skip("the sink does not reply")
	}
	tg := s.h.New(t)
	sink := s.build(t, tg.Config)
	rs, ok := sink.(sinks.ReplySink)
	if !ok {
		t.Fatal("the sink is not a ReplySink")
	}
	sent := SuiteEvent("json")
	r, err := rs.DeliverReply(deliverCtx(t), sent)
	if err != nil {
		t.Fatalf("DeliverReply: %v", err)
	}
	if r != nil {
		if err := r.Validate(); err != nil {
			t.Errorf("the reply is no valid CloudEvent: %v", err)
		}
	}
	s.h.CheckReply(t, sent, r)
	// Deliver ignores the reply.
	if err := sink.Deliver(deliverCtx(t), SuiteEvent("text")); err != nil {
		t.Errorf("Deliver: %v", err)
	}
}

// BinaryEvent is the event of a binary-mode message: attrs are its
// CloudEvents attributes and extensions by name (the transport's prefix,
// such as "ce-", taken off), contentType its datacontenttype ("" for none)
// and data its data. Harnesses use it to read what a broker received.
func BinaryEvent(attrs map[string]string, contentType string, data []byte) (event.Event, error) {
	m := map[string]any{}
	for k, v := range attrs {
		m[strings.ToLower(k)] = v
	}
	if contentType != "" {
		m["datacontenttype"] = contentType
	}
	if data != nil {
		m["data_base64"] = data // encoding/json writes []byte as base64
	}
	b, err := json.Marshal(m)
	if err != nil {
		return event.Event{}, err
	}
	var e event.Event
	err = json.Unmarshal(b, &e)
	return e, err
}

// StructuredEvent is the event of a message in the CloudEvents JSON format.
func StructuredEvent(body []byte) (event.Event, error) {
	var e event.Event
	err := json.Unmarshal(body, &e)
	return e, err
}
