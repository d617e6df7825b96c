package router

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
)

// Tracing (OpenTelemetry).
//
// With telemetry.otlp the router makes spans: "ingest <source>" per
// Ingest call (one HTTP request, or one message of a queue source), "route
// <route>" per route an event matched, and "deliver <sink>" per delivery
// attempt. The route span's W3C trace context is stored with each journal
// entry (see journal.Entry.TraceParent), so that every attempt of a
// delivery, across retries and restarts, is a child of it, in the trace of
// the request. The ingest span's parent is the request's traceparent
// header, else the traceparent extension of its first event (the
// CloudEvents distributed-tracing extension); a route span's is the ingest
// span, or the event's own extension when that names another trace (an
// event of a batch), linked to the ingest span.
//
// Without telemetry.otlp no span is made, and the context an event
// arrived with (header or extension) is still stored and passed on to the
// sinks as it is, at the cost of a header and a map lookup.
//
// Each attempt hands its context to the sink in sinks.Attempt: HTTP sinks
// send it as the traceparent and tracestate headers, the nats and amqp
// sinks as message headers of those names. An event without the
// traceparent extension gets the stored context as its extension (queue
// sinks carry extensions as message headers); one with it keeps its own,
// which says where the event was created.

// Extension attributes of the CloudEvents distributed-tracing extension.
const (
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"
)

var propagator = propagation.TraceContext{}

// tracing makes the router's spans; its tracer is nil when tracing is off.
type tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// newTracing starts the OTLP/HTTP exporter of c; tracing is off without
// c.OTLP. Nothing is sent until the first span ends. Export failures (the
// collector down) are logged to log as warnings: spans that cannot be sent
// are dropped, and nothing else waits for the collector.
func newTracing(ctx context.Context, c config.Telemetry, log *slog.Logger) (*tracing, error) {
	o := c.OTLP
	if o == nil {
		return &tracing{}, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(o.TracesURL())}
	if len(o.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry.otlp: %w", err)
	}
	name := o.ServiceName
	if name == "" {
		name = config.DefaultServiceName
	}
	var limit logLimiter
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if ok, n := limit.allow(time.Now()); ok {
			log.Warn("telemetry: exporting spans failed; spans are dropped until the collector takes them", "endpoint", o.TracesURL(), "err", err, "failures", n, "per", logEvery)
		}
	}))
	log.Info("telemetry: exporting spans over OTLP/HTTP", "endpoint", o.TracesURL(), "service", name, "sample_ratio", o.Ratio())
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.Ratio()))),
	)
	return &tracing{provider: tp, tracer: tp.Tracer("github.com/junctionhq/junction/router")}, nil
}

// on says whether spans are made.
func (t *tracing) on() bool { return t != nil && t.tracer != nil }

// shutdown sends the spans not sent yet, waiting up to 2 s (shutdown
// has a deadline of its own).
func (t *tracing) shutdown() error {
	if t == nil || t.provider == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p := t.provider
	t.provider = nil // once: closeAll may run twice
	return p.Shutdown(ctx)
}

// traceHeaders puts the trace context of the request's traceparent header
// into its context, for the ingest span (or, with tracing off, to be
// passed on).
func traceHeaders(req *http.Request) *http.Request {
	if _, ok := req.Header["Traceparent"]; !ok {
		return req
	}
	ctx := propagator.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return req
	}
	return req.WithContext(ctx)
}

// carrier holds one trace context as its two headers, for the propagator.
type carrier struct{ parent, state string }

func (c *carrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.parent
	case "tracestate":
		return c.state
	}
	return ""
}

func (c *carrier) Set(key, v string) {
	switch key {
	case "traceparent":
		c.parent = v
	case "tracestate":
		c.state = v
	}
}

func (c *carrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// parseTrace reads a W3C trace context; invalid when it is not one.
func parseTrace(parent, state string) trace.SpanContext {
	if parent == "" {
		return trace.SpanContext{}
	}
	c := carrier{parent, state}
	return trace.SpanContextFromContext(propagator.Extract(context.Background(), &c))
}

// formatTrace writes sc as a W3C trace context; "" when invalid.
func formatTrace(sc trace.SpanContext) (parent, state string) {
	if !sc.IsValid() {
		return "", ""
	}
	var c carrier
	propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), &c)
	if len(c.parent) > journal.MaxTraceParentLen || len(c.state) > journal.MaxTraceStateLen {
		return "", ""
	}
	return c.parent, c.state
}

// eventTrace is the trace context of e's distributed-tracing extension.
func eventTrace(e *event.Event) trace.SpanContext {
	parent, _ := extension(e, ExtTraceParent).(string)
	if parent == "" {
		return trace.SpanContext{}
	}
	state, _ := extension(e, ExtTraceState).(string)
	return parseTrace(parent, state)
}

// extension returns e's extension name, nil when unset, without the copy
// of the map that Extensions makes.
func extension(e *event.Event, name string) any {
	if ec, ok := e.Context.(*event.EventContextV1); ok {
		return ec.Extensions[name]
	}
	return e.Extensions()[name]
}

// startIngest starts the span of one Ingest call; nil when tracing is off.
func (t *tracing) startIngest(ctx context.Context, source string, events []*event.Event) (context.Context, trace.Span) {
	if !t.on() {
		return ctx, nil
	}
	if !trace.SpanContextFromContext(ctx).IsValid() && len(events) > 0 {
		if sc := eventTrace(events[0]); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("junction.source", source), attribute.Int("junction.events", len(events))}
	if len(events) == 1 {
		attrs = append(attrs, attribute.String("cloudevents.event_id", events[0].ID()),
			attribute.String("cloudevents.event_source", events[0].Source()),
			attribute.String("cloudevents.event_type", events[0].Type()))
	}
	return t.tracer.Start(ctx, "ingest "+source, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// endSpan ends span (nil: none), with err as its status.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// routed makes the span of e matching route and returns the trace context
// to store with its entries: the span's, or with tracing off the context e
// arrived with ("" without one).
func (t *tracing) routed(ctx context.Context, route string, e *event.Event) (parent, state string) {
	own := eventTrace(e)
	if !t.on() {
		if own.IsValid() {
			return formatTrace(own)
		}
		return formatTrace(trace.SpanContextFromContext(ctx))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		attribute.String("junction.route", route),
		attribute.String("cloudevents.event_id", e.ID()),
		attribute.String("cloudevents.event_type", e.Type()))}
	if in := trace.SpanContextFromContext(ctx); own.IsValid() && own.TraceID() != in.TraceID() {
		// An event of its own trace (in a batch): its trace, with a link
		// to the request's.
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: in}))
		ctx = trace.ContextWithRemoteSpanContext(ctx, own)
	}
	_, span := t.tracer.Start(ctx, "route "+route, opts...)
	span.End()
	return formatTrace(span.SpanContext())
}

// attempt is one delivery attempt's tracing.
type attempt struct {
	// span is nil when tracing is off.
	span trace.Span
	// added says that the attempt gave the event its traceparent
	// extension, to take off again: the event is dead-lettered as it was.
	added bool
}

// startAttempt prepares the attempt of delivery d of e by sink: its span,
// a child of the context stored with d (when tracing is on); the context
// handed to the sink (sinks.Attempt); and the traceparent extension on e
// when it has none, until end.
func (t *tracing) startAttempt(ctx context.Context, sink string, d *journal.Delivery, e *event.Event) (context.Context, attempt) {
	a := &sinks.Attempt{Route: d.Route, Sink: sink, TraceParent: d.TraceParent, TraceState: d.TraceState}
	var at attempt
	if t.on() {
		if sc := parseTrace(d.TraceParent, d.TraceState); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		ctx, at.span = t.tracer.Start(ctx, "deliver "+sink, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			attribute.String("junction.route", d.Route),
			attribute.String("junction.sink", sink),
			attribute.Int("junction.attempt", d.Attempt),
			attribute.Bool("junction.dead_letter", d.DeadLetter),
			attribute.String("cloudevents.event_id", e.ID()),
			attribute.String("cloudevents.event_type", e.Type())))
		a.TraceParent, a.TraceState = formatTrace(at.span.SpanContext())
	}
	if d.TraceParent != "" {
		if extension(e, ExtTraceParent) == nil {
			at.added = true
			e.SetExtension(ExtTraceParent, d.TraceParent)
			if d.TraceState != "" {
				e.SetExtension(ExtTraceState, d.TraceState)
			}
		}
	}
	return sinks.WithAttempt(ctx, a), at
}

// end ends the attempt of e that failed with err (nil: delivered).
func (at attempt) end(e *event.Event, err error) {
	if at.added {
		e.SetExtension(ExtTraceParent, nil)
		e.SetExtension(ExtTraceState, nil)
	}
	endSpan(at.span, err)
}

// context returns ctx with the attempt's span as its current span, for
// what the attempt causes (a function's reply, ingested).
func (at attempt) context(ctx context.Context) context.Context {
	if at.span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, at.span)
}
