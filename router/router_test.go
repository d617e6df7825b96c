package router

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
	"github.com/junctionhq/junction/sources"
)

// recorder is a sink type for these tests: it records what it is given and
// fails as its `fail` key says (none, retryable, permanent).
type recorder struct {
	mu     sync.Mutex
	events []event.Event
	calls  int
	fail   string
}

var (
	recordersMu sync.Mutex
	recorders   = map[string]*recorder{}
)

type recorderConfig struct {
	Fail string `yaml:"fail"`
}

func (c *recorderConfig) Validate() error {
	switch c.Fail {
	case "", "retryable", "permanent":
		return nil
	}
	return config.FieldErrorf("fail", "must be retryable or permanent")
}

func (c *recorderConfig) Build(_ context.Context, deps sinks.Deps) (sinks.Sink, error) {
	recordersMu.Lock()
	defer recordersMu.Unlock()
	r := &recorder{fail: c.Fail}
	recorders[deps.Name] = r
	return r, nil
}

func (r *recorder) Deliver(_ context.Context, e *event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	switch r.fail {
	case "retryable":
		return errors.New("try again")
	case "permanent":
		return sinks.Permanent(errors.New("never"))
	}
	r.events = append(r.events, *e)
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) got() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

// idleSource is a source type for these tests that produces nothing.
type idleSource struct{}

func (*idleSource) Validate() error { return nil }
func (*idleSource) Build(context.Context, sources.Deps) (any, error) {
	return idleSource{}, nil
}
func (idleSource) Run(ctx context.Context, _ sources.Ingester) error {
	<-ctx.Done()
	return nil
}

func init() {
	sinks.Register("test-recorder", func() sinks.Config { return &recorderConfig{} })
	sources.Register("test-idle", func() sources.Config { return &idleSource{} })
}

func recorderNamed(name string) *recorder {
	recordersMu.Lock()
	defer recordersMu.Unlock()
	return recorders[name]
}

func eventually(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		return -1
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func compile(t testing.TB, yml string) *Plan {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yml), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startRouter runs plan with an in-memory journal until the test ends, and
// waits until it is ready.
func startRouter(t *testing.T, p *Plan) *Router {
	t.Helper()
	r := runRouter(t, p, Options{Memory: true})
	eventually(t, 5*time.Second, "ready", r.Ready)
	return r
}

// runRouter runs plan, its ingress on a free port and no admin listener,
// until the test or benchmark ends.
func runRouter(tb testing.TB, p *Plan, o Options) *Router {
	tb.Helper()
	p.Config.HTTP.Listen = "127.0.0.1:0"
	p.Config.Admin.Listen = "off"
	r, err := New(context.Background(), p, o)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("run: %v", err)
		}
	})
	return r
}

func newEvent(id, typ string, data any) *event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/test")
	e.SetType(typ)
	if data != nil {
		e.SetData("application/json", data)
	}
	return &e
}

func TestPolicyPrecedence(t *testing.T) {
	p := compile(t, `
sinks:
  - name: a
    type: test-recorder
    delivery: {retry: 2, timeout: 3s, deadLetter: dead}
  - {name: b, type: test-recorder}
  - {name: dead, type: test-recorder}
routes:
  - name: r
    to: [a, b]
    delivery: {backoffPolicy: linear, timeout: 4s}
`)
	r := p.Routes[0]
	a, b := r.Policy["a"], r.Policy["b"]
	if a.Retry != 2 || a.Timeout != 4*time.Second || a.BackoffPolicy != "linear" || a.DeadLetter != "dead" {
		t.Errorf("policy for a = %+v; want the sink's retry and deadLetter, the route's timeout and backoff", a)
	}
	if b.Retry != config.DefaultPolicy.Retry || b.Timeout != 4*time.Second || b.DeadLetter != "" {
		t.Errorf("policy for b = %+v; want defaults with the route's timeout", b)
	}
	if p.Sinks[0].Policy.DeadLetter != "" {
		t.Error("a dead-letter sink's own policy must not dead-letter again")
	}
	if p.Summary() != "0 sources, 3 sinks, 1 route" {
		t.Errorf("summary %q", p.Summary())
	}
}

func TestCompileReportsPluginErrors(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`
sinks:
  - {name: a, type: test-recorder, fail: sometimes}
  - {name: b, type: nope}
routes:
  - {name: r, to: [a], filter: 'type =='}
`), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(cfg)
	if err == nil {
		t.Fatal("compile succeeded")
	}
	for _, want := range []string{
		`test.yaml:3:42: sink "a": fail: must be retryable or permanent`,
		`test.yaml:4:21: sink "b": unknown sink type "nope" (known: `,
		`test.yaml:6:32: route "r": filter: unexpected token EOF`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

func TestFanOutAndUnrouted(t *testing.T) {
	p := compile(t, `
sources:
  - {name: elsewhere, type: test-idle}
sinks:
  - {name: one, type: test-recorder}
  - {name: two, type: test-recorder}
  - {name: three, type: test-recorder}
routes:
  - {name: orders, filter: 'type == "order"', to: [one, two]}
  - {name: big, filter: 'data.amount > 10', to: [three]}
  - {name: other-source, sources: [elsewhere], to: [three]}
`)
	r := startRouter(t, p)
	in := r.Ingester("src")
	err := in.Ingest(context.Background(), []*event.Event{
		newEvent("1", "order", map[string]any{"amount": 50}),
		newEvent("2", "order", map[string]any{"amount": 5}),
		newEvent("3", "unknown", nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "deliveries", func() bool {
		return len(recorderNamed("one").got()) == 2 && len(recorderNamed("two").got()) == 2 && len(recorderNamed("three").got()) == 1
	})
	if id := recorderNamed("three").got()[0].ID(); id != "1" {
		t.Errorf("three got %s, want 1 (the only event over 10, and not from source elsewhere)", id)
	}
	if got := value(r.metrics.Unrouted); got != 1 {
		t.Errorf("unrouted = %v, want 1", got)
	}
	if got := value(r.metrics.Received.WithLabelValues("src")); got != 3 {
		t.Errorf("received = %v, want 3", got)
	}
}

func TestTransformFailureIsDeadLettered(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: out, type: test-recorder}
  - {name: dead, type: test-recorder}
routes:
  - name: r
    to: [out]
    transform:
      attributes:
        type: data.newType
    delivery: {deadLetter: dead}
`)
	r := startRouter(t, p)
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{
		newEvent("ok", "t", map[string]any{"newType": "u"}),
		newEvent("bad", "t", map[string]any{}),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "one delivery and one dead letter", func() bool {
		return len(recorderNamed("out").got()) == 1 && len(recorderNamed("dead").got()) == 1
	})
	if e := recorderNamed("out").got()[0]; e.ID() != "ok" || e.Type() != "u" {
		t.Errorf("delivered %s", e)
	}
	dl := recorderNamed("dead").got()[0]
	ext := dl.Extensions()
	if dl.ID() != "bad" || dl.Type() != "t" || ext[ExtRoute] != "r" || ext[ExtSink] != "out" ||
		!strings.HasPrefix(fmt.Sprint(ext[ExtError]), "transform: ") || fmt.Sprint(ext[ExtAttempts]) != "0" {
		t.Errorf("dead letter = %s", dl)
	}
	if got := value(r.metrics.TransformErrs.WithLabelValues("r")); got != 1 {
		t.Errorf("transform errors = %v", got)
	}
	if dls := deadLetters(t, r); len(dls) != 1 || dls[0].Reason != journal.ReasonTransform || dls[0].Sink != "out" {
		t.Errorf("dead-letter store = %+v, want the transform failure", dls)
	}
}

// deadLetters returns the whole dead-letter store of r.
func deadLetters(t *testing.T, r *Router) []journal.DeadLetter {
	t.Helper()
	dls, _, err := r.journal.DeadLetters(context.Background(), journal.DeadLetterQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

func TestPermanentFailureKeptInDeadLetterStore(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: never, type: test-recorder, fail: permanent}
routes:
  - {name: r, to: [never], delivery: {retry: 5}}
`)
	r := startRouter(t, p)
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent("x", "t", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "dead-lettered", func() bool {
		return value(r.metrics.Deliveries.WithLabelValues("r", "never", OutcomeDeadLettered)) == 1
	})
	if calls := recorderNamed("never").calls; calls != 1 {
		t.Errorf("permanent failure attempted %d times, want 1", calls)
	}
	if got := value(r.metrics.Deliveries.WithLabelValues("r", "never", OutcomeDropped)); got != 0 {
		t.Errorf("dropped = %v, want 0: only onExhausted: drop drops", got)
	}
	dls := deadLetters(t, r)
	if len(dls) != 1 {
		t.Fatalf("dead-letter store holds %d entries, want 1", len(dls))
	}
	dl := dls[0]
	var e event.Event
	if err := journal.DecodeEvent(dl.Data, &e); err != nil {
		t.Fatal(err)
	}
	if e.ID() != "x" || dl.Route != "r" || dl.Sink != "never" || dl.Attempts != 1 || dl.Reason != journal.ReasonPermanent ||
		dl.Error != "never" || dl.ID == 0 || dl.Accepted.IsZero() || dl.At.Before(dl.Accepted) {
		t.Errorf("dead letter = %+v, event %s", dl, e.ID())
	}
}

func TestOnExhaustedDrop(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: never, type: test-recorder, fail: permanent}
routes:
  - {name: r, to: [never], delivery: {onExhausted: drop}}
`)
	r := startRouter(t, p)
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent("x", "t", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "dropped", func() bool {
		return value(r.metrics.Deliveries.WithLabelValues("r", "never", OutcomeDropped)) == 1
	})
	if dls := deadLetters(t, r); len(dls) != 0 {
		t.Errorf("dead-letter store holds %d entries, want 0 with onExhausted: drop", len(dls))
	}
}

func TestMaxAgeEndsRetries(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: flaky, type: test-recorder, fail: retryable}
  - {name: dead, type: test-recorder}
routes:
  - name: r
    to: [flaky]
    delivery: {maxAge: 1s, backoffPolicy: constant, backoffDelay: 100ms, deadLetter: dead}
`)
	r := startRouter(t, p)
	start := time.Now()
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent("x", "t", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "dead-lettered", func() bool {
		return len(recorderNamed("dead").got()) == 1
	})
	if took := time.Since(start); took < time.Second-100*time.Millisecond {
		t.Errorf("gave up after %v, before maxAge", took)
	}
	calls := recorderNamed("flaky").calls
	if calls < 5 {
		t.Errorf("%d attempts in 1s at 100ms backoff, want at least 5 (no retry count limit)", calls)
	}
	dls := deadLetters(t, r)
	if len(dls) != 1 || dls[0].Reason != journal.ReasonExhausted || dls[0].Attempts != calls {
		t.Fatalf("dead-letter store = %+v, want one exhausted entry of %d attempts", dls, calls)
	}
	dl := recorderNamed("dead").got()[0]
	if fmt.Sprint(dl.Extensions()[ExtAttempts]) != fmt.Sprint(calls) {
		t.Errorf("junctionattempts = %v, want %d", dl.Extensions()[ExtAttempts], calls)
	}
}

func TestRetryZeroIsOneAttempt(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: flaky, type: test-recorder, fail: retryable}
routes:
  - {name: r, to: [flaky], delivery: {retry: 0, onExhausted: drop}}
`)
	r := startRouter(t, p)
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent("x", "t", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "dropped", func() bool {
		return value(r.metrics.Deliveries.WithLabelValues("r", "flaky", OutcomeDropped)) == 1
	})
	if calls := recorderNamed("flaky").calls; calls != 1 {
		t.Errorf("retry: 0 made %d attempts, want 1", calls)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\nb\tc\x00d", 100); got != "a b c d" {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine(strings.Repeat("é", 10), 5); got != "é…" { // at most 5 bytes
		t.Errorf("oneLine cut = %q", got)
	}
}

// gatedSource reports ready only once opened.
type gatedSource struct{ open atomic.Bool }

var gate = &gatedSource{}

func (*gatedSource) Validate() error                                  { return nil }
func (*gatedSource) Build(context.Context, sources.Deps) (any, error) { return gate, nil }
func (g *gatedSource) Ready() bool                                    { return g.open.Load() }
func (g *gatedSource) Run(ctx context.Context, _ sources.Ingester) error {
	<-ctx.Done()
	return nil
}

func init() {
	sources.Register("test-gated", func() sources.Config { return &gatedSource{} })
}

func TestReadyWaitsForSources(t *testing.T) {
	gate.open.Store(false)
	p := compile(t, `
sources:
  - {name: g, type: test-gated}
`)
	r := runRouter(t, p, Options{Memory: true})
	time.Sleep(100 * time.Millisecond)
	if r.Ready() {
		t.Fatal("ready while a source is not")
	}
	gate.open.Store(true)
	eventually(t, 5*time.Second, "ready once the source is", r.Ready)
}

// echo is a sink type for these tests whose destination answers every event
// with a reply: type `replyType` (default: the event's type + ".reply").
type echo struct {
	calls     atomic.Int64
	replyType string
}

type echoConfig struct {
	ReplyType string `yaml:"replyType"`
}

var (
	echoesMu sync.Mutex
	echoes   = map[string]*echo{}
)

func (c *echoConfig) Validate() error { return nil }
func (c *echoConfig) Build(_ context.Context, deps sinks.Deps) (sinks.Sink, error) {
	e := &echo{replyType: c.ReplyType}
	echoesMu.Lock()
	echoes[deps.Name] = e
	echoesMu.Unlock()
	return e, nil
}
func (e *echo) Deliver(ctx context.Context, ev *event.Event) error {
	_, err := e.DeliverReply(ctx, ev)
	return err
}
func (e *echo) DeliverReply(_ context.Context, ev *event.Event) (*event.Event, error) {
	n := e.calls.Add(1)
	typ := e.replyType
	if typ == "" {
		typ = ev.Type() + ".reply"
	}
	r := newEvent(fmt.Sprintf("%s-r%d", ev.ID(), n), typ, map[string]any{"from": ev.ID()})
	r.SetSource("/functions/echo")
	return r, nil
}
func (e *echo) Close() error { return nil }

func init() {
	sinks.Register("test-echo", func() sinks.Config { return &echoConfig{} })
}

func TestRepliesAreRouted(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: fn, type: test-echo}
  - {name: out, type: test-recorder}
routes:
  - {name: call, filter: 'type == "start"', to: [fn]}
  - {name: replies, sources: [fn], to: [out]}
`)
	r := startRouter(t, p)
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent("s1", "start", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the reply at out", func() bool { return len(recorderNamed("out").got()) == 1 })
	got := recorderNamed("out").got()[0]
	if got.Type() != "start.reply" || got.Source() != "/functions/echo" || fmt.Sprint(got.Extensions()[ExtHops]) != "1" {
		t.Errorf("reply = %s", got)
	}
	if v := value(r.metrics.Replies.WithLabelValues("fn", "routed")); v != 1 {
		t.Errorf("replies routed = %v", v)
	}
}

func TestReplyLoopStopsAtMaxHops(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: loopy, type: test-echo, replyType: loop, maxHops: 3}
  - {name: dead, type: test-recorder}
routes:
  - name: loop
    filter: type == "loop"
    to: [loopy]
    delivery: {deadLetter: dead}
`)
	r := startRouter(t, p)
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent("l", "loop", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the looping reply dead-lettered", func() bool { return len(recorderNamed("dead").got()) == 1 })
	dl := recorderNamed("dead").got()[0]
	ext := dl.Extensions()
	if fmt.Sprint(ext[ExtHops]) != "4" || !strings.Contains(fmt.Sprint(ext[ExtError]), "hop limit of 3 reached") || ext[ExtSink] != "loopy" {
		t.Errorf("dead letter = %s", dl)
	}
	echoesMu.Lock()
	calls := echoes["loopy"].calls.Load()
	echoesMu.Unlock()
	if calls != 4 {
		t.Errorf("function called %d times, want 4 (the event and 3 replies)", calls)
	}
	if v := value(r.metrics.Replies.WithLabelValues("loopy", "hop_limit")); v != 1 {
		t.Errorf("hop_limit = %v", v)
	}
}

// TestDeliverySeriesMadeOnFirstUse checks that routes that deliver nothing
// add no series: made up front, 10,000 routes would cost 40,000 of them.
func TestDeliverySeriesMadeOnFirstUse(t *testing.T) {
	var y strings.Builder
	y.WriteString("sinks:\n  - {name: out, type: test-recorder}\nroutes:\n")
	for i := range 500 {
		fmt.Fprintf(&y, "  - {name: r%d, filter: 'type == \"t%d\"', to: [out]}\n", i, i)
	}
	r := startRouter(t, compile(t, y.String()))
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent("1", "t7", nil)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the delivery", func() bool { return len(recorderNamed("out").got()) == 1 })
	eventually(t, 5*time.Second, "the delivered series", func() bool {
		return value(r.metrics.Deliveries.WithLabelValues("r7", "out", OutcomeDelivered)) == 1
	})
	families, err := r.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "junction_deliveries_total" && len(f.GetMetric()) != 1 {
			t.Errorf("%d junction_deliveries_total series after one delivery on one of 500 routes, want 1", len(f.GetMetric()))
		}
	}
}
