package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
)

// memory is an in-process destination and upstream: the sink and source
// of the types "plugintest-memory", which run the suites here so that the
// suites themselves are tested against a plugin that keeps every promise.
var memory = struct {
	sync.Mutex
	got   map[string][]event.Event     // by destination name
	queue map[string]chan *event.Event // by upstream name
}{got: map[string][]event.Event{}, queue: map[string]chan *event.Event{}}

func init() {
	sinks.Register("plugintest-memory", func() sinks.Config { return &memSinkConfig{} })
	sources.Register("plugintest-memory", func() sources.Config { return &memSourceConfig{} })
}

type memSinkConfig struct {
	Name string `yaml:"name"`
	Fail string `yaml:"fail"` // "", retryable, permanent or stall
}

func (c *memSinkConfig) Validate() error {
	if c.Name == "" {
		return errors.New("name: required")
	}
	return nil
}

func (c *memSinkConfig) Build(context.Context, sinks.Deps) (sinks.Sink, error) {
	return &memSink{c: *c}, nil
}

// memSink appends what it is given to memory.got[name]; it is a BatchSink
// and a ReplySink (the reply is the event with type + ".reply").
type memSink struct{ c memSinkConfig }

func (s *memSink) Deliver(ctx context.Context, e *event.Event) error {
	switch s.c.Fail {
	case "retryable":
		return sinks.Retryable(errors.New("memory: busy"), 0)
	case "permanent":
		return sinks.Permanent(errors.New("memory: refused"))
	case "stall":
		<-ctx.Done()
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	memory.Lock()
	defer memory.Unlock()
	memory.got[s.c.Name] = append(memory.got[s.c.Name], e.Clone())
	return nil
}

func (s *memSink) DeliverBatch(ctx context.Context, events []*event.Event) []error {
	errs := make([]error, len(events))
	for i, e := range events {
		errs[i] = s.Deliver(ctx, e)
	}
	return errs
}

func (s *memSink) DeliverReply(ctx context.Context, e *event.Event) (*event.Event, error) {
	if err := s.Deliver(ctx, e); err != nil {
		return nil, err
	}
	r := e.Clone()
	r.SetType(e.Type() + ".reply")
	return &r, nil
}

func (s *memSink) Close() error { return nil }

func TestSinkSuiteOnMemory(t *testing.T) {
	n := 0
	RunSinkSuite(t, SinkHarness{
		Type: "plugintest-memory",
		New: func(t testing.TB) SinkTarget {
			n++
			name := t.Name() + "/" + strings.Repeat("x", n)
			return SinkTarget{Config: "name: " + name + "\n", Receive: func(testing.TB) []event.Event {
				memory.Lock()
				defer memory.Unlock()
				return append([]event.Event(nil), memory.got[name]...)
			}}
		},
		Fail: func(t testing.TB, f SinkFailure) string { return "name: failing\nfail: " + f.String() + "\n" },
		CheckReply: func(t testing.TB, sent, reply *event.Event) {
			if reply == nil || reply.Type() != sent.Type()+".reply" || reply.ID() != sent.ID() {
				t.Errorf("reply %v to %v", reply, sent)
			}
		},
		Caps: SinkCaps{Batch: true, Reply: true, Ordered: true},
	})
}

type memSourceConfig struct {
	Name string `yaml:"name"`
}

func (c *memSourceConfig) Validate() error {
	if c.Name == "" {
		return errors.New("name: required")
	}
	return nil
}

func (c *memSourceConfig) Build(context.Context, sources.Deps) (any, error) {
	memory.Lock()
	defer memory.Unlock()
	q := memory.queue[c.Name]
	if q == nil {
		q = make(chan *event.Event, 100)
		memory.queue[c.Name] = q
	}
	return &memSource{q: q}, nil
}

// memSource ingests the events of its queue; a nil one is malformed. A
// failed Ingest puts the event back (a broker's redelivery).
type memSource struct{ q chan *event.Event }

func (s *memSource) Run(ctx context.Context, in sources.Ingester) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-s.q:
			if e == nil {
				in.Rejected(sources.ReasonMalformed)
				continue
			}
			if err := in.Ingest(ctx, []*event.Event{e}); err != nil {
				s.q <- e
			}
		}
	}
}

func TestSourceSuiteOnMemory(t *testing.T) {
	n := 0
	RunSourceSuite(t, SourceHarness{
		Type: "plugintest-memory",
		New: func(t testing.TB) SourceTarget {
			n++
			name := t.Name() + "/" + strings.Repeat("x", n)
			send := func(e *event.Event) {
				memory.Lock()
				q := memory.queue[name]
				memory.Unlock()
				q <- e
			}
			return SourceTarget{
				Config: "name: " + name + "\n",
				Send: func(_ testing.TB, _ string, e *event.Event) error {
					c := e.Clone()
					send(&c)
					return nil
				},
				SendMalformed: func(testing.TB, string) error { send(nil); return nil },
			}
		},
		Caps: SourceCaps{Redelivery: true},
	})
}

// TestDiffEvents: every attribute, extension and the data are compared;
// extensions by their string form, JSON data as JSON.
func TestDiffEvents(t *testing.T) {
	want := SuiteEvent("json")
	if d := DiffEvents(want, want); d != "" {
		t.Fatalf("an event differs from itself: %s", d)
	}
	same := want.Clone()
	same.SetExtension("attempt", "3") // a binary transport's string form
	_ = same.SetData(event.ApplicationJSON, json.RawMessage(`{ "list": [true, null], "s": "ü ✓", "n": 1 }`))
	if d := DiffEvents(&same, want); d != "" {
		t.Errorf("the same event in other forms differs: %s", d)
	}
	changes := map[string]func(e *event.Event){
		"id":              func(e *event.Event) { e.SetID("other") },
		"source":          func(e *event.Event) { e.SetSource("/other") },
		"type":            func(e *event.Event) { e.SetType("other") },
		"subject":         func(e *event.Event) { e.SetSubject("other") },
		"time":            func(e *event.Event) { e.SetTime(e.Time().Add(time.Nanosecond)) },
		"dataschema":      func(e *event.Event) { e.SetDataSchema("https://example.com/other") },
		"datacontenttype": func(e *event.Event) { e.SetDataContentType("text/json") },
		"extension tenant": func(e *event.Event) {
			e.SetExtension("tenant", "other")
		},
		"extension urgent is missing": func(e *event.Event) { e.SetExtension("urgent", nil) },
		"extension extra was added":   func(e *event.Event) { e.SetExtension("extra", "x") },
		"data":                        func(e *event.Event) { _ = e.SetData(event.ApplicationJSON, json.RawMessage(`{"n":2}`)) },
	}
	for what, change := range changes {
		got := want.Clone()
		change(&got)
		if d := DiffEvents(&got, want); !strings.Contains(d, what) {
			t.Errorf("%s: diff %q does not say so", what, d)
		}
	}
}

// TestBinaryEventRoundTrip: Attributes and BinaryEvent read back what a
// binary-mode producer writes, for every kind of data.
func TestBinaryEventRoundTrip(t *testing.T) {
	for _, kind := range []string{"json", "text", "binary"} {
		want := SuiteEvent(kind)
		got, err := BinaryEvent(Attributes(want), want.DataContentType(), want.Data())
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if d := DiffEvents(&got, want); d != "" {
			t.Errorf("%s:\n%s", kind, d)
		}
	}
}

// TestHTTPDest: the destination reads binary, structured and batch
// requests, and answers with the reply.
func TestHTTPDest(t *testing.T) {
	d := NewHTTPDest(t)
	d.Reply = func(e event.Event) *event.Event { r := e.Clone(); r.SetID("reply"); return &r }
	a, b, c := SuiteEvent("binary"), SuiteEvent("text"), SuiteEvent("json")
	if err := PostEvent(t, d.URL, "binary", a, nil); err != nil {
		t.Fatal(err)
	}
	if err := PostEvent(t, d.URL, "structured", b, nil); err != nil {
		t.Fatal(err)
	}
	batch, _ := json.Marshal([]*event.Event{c})
	if err := Post(t, d.URL, http.Header{"Content-Type": {event.ApplicationCloudEventsBatchJSON}}, batch); err != nil {
		t.Fatal(err)
	}
	if err := Post(t, d.URL, http.Header{"Content-Type": {"text/plain"}}, []byte("no event")); err == nil {
		t.Error("a request without an event was accepted")
	}
	got := d.Events(t)
	if len(got) != 3 {
		t.Fatalf("%d events, want 3", len(got))
	}
	for i, want := range []*event.Event{a, b, c} {
		if diff := DiffEvents(&got[i], want); diff != "" {
			t.Errorf("event %d:\n%s", i, diff)
		}
	}
}
