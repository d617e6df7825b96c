package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/journal"
	"github.com/junctionhq/junction/sinks"
)

// sinkRuntime dispatches one sink's journal entries.
type sinkRuntime struct {
	r        *Router
	name     string
	sink     sinks.Sink
	plan     SinkPlan
	log      *slog.Logger
	consumer *journal.Consumer
	// opts are the consumer's options (see consumeOptions).
	opts journal.ConsumeOptions
	// comp runs the consumer once started (see start).
	comp *component
	// lastErr is the last failed attempt, for the status API.
	lastErr atomic.Pointer[sinkError]
	// duration is this sink's series, resolved once.
	duration prometheus.Observer
	// guard is the sink's rate limit and circuit breaker (protect.go), or nil.
	guard *guard
}

// count adds one delivery outcome for route. The series is made on first
// use (made up front, 10,000 routes would make 40,000 series, most of them
// never used); the CounterVec's own look-up finds it after that.
func (s *sinkRuntime) count(route, outcome string) {
	s.r.metrics.Deliveries.WithLabelValues(route, s.name, outcome).Inc()
}

// consumeOptions are the journal consumer's options of sink sp in plan:
// the sink's, and the lanes that plan's routes to it need.
func consumeOptions(plan *Plan, sp SinkPlan) journal.ConsumeOptions {
	// The consumer reports progress on every message it holds (buffered
	// or being attempted) every third of the ack wait, so the ack wait
	// bounds only how long a dead replica's deliveries wait for another
	// one, not how long an attempt may take.
	ackWait := plan.Config.Journal.AckWait
	if ackWait <= 0 {
		ackWait = config.DefaultAckWait
	}
	o := journal.ConsumeOptions{
		Concurrency: sp.Plugin.EffectiveConcurrency(),
		AckWait:     ackWait,
		MaxPending:  sp.Plugin.MaxPending,
	}
	for _, rt := range plan.Routes {
		if _, ok := rt.Policy[sp.Plugin.Name]; !ok {
			continue
		}
		if rt.OrderBy != nil {
			o.Keyed = true
		}
		if rt.Priority != nil && len(o.Priorities) == 0 {
			for p := 1; p <= journal.MaxPriority; p++ {
				o.Priorities = append(o.Priorities, p)
			}
		}
	}
	return o
}

func (s *sinkRuntime) open(ctx context.Context) error {
	m := s.r.metrics
	s.duration = m.Duration.WithLabelValues(s.name)
	o := s.opts
	if s.guard = newGuard(s.plan.Plugin, m, s.log); s.guard != nil {
		o.Paused = s.guard.paused
	}
	c, err := s.r.journal.Consumer(ctx, s.name, o)
	if err != nil {
		return err
	}
	s.consumer = c
	return nil
}

// start runs the sink's dispatch under sup.
func (s *sinkRuntime) start(sup *supervisor) {
	s.comp = sup.start(fmt.Sprintf("sink %q", s.name), func(ctx, drain context.Context) error {
		return s.consumer.Run(ctx, drain, s.handle)
	})
}

// policy returns the delivery policy of an entry.
func (s *sinkRuntime) policy(d *journal.Delivery) config.Policy {
	if d.DeadLetter {
		return s.plan.Policy
	}
	if p, ok := s.r.table.Load().policies[s.name][d.Route]; ok {
		return p
	}
	// The route is gone from the config: deliver with the sink's policy.
	return s.plan.Policy
}

// handle makes one delivery attempt and answers the journal: ack on success,
// retry with backoff while the policy allows, else dead-letter (then ack) or
// drop. A dead-letter write that fails leaves the entry pending.
func (s *sinkRuntime) handle(ctx context.Context, d *journal.Delivery) {
	var e event.Event
	if err := journal.DecodeEvent(d.Data, &e); err != nil {
		s.log.Error("drop unreadable journal entry", "route", d.Route, "seq", d.Seq, "err", err)
		s.count(d.Route, OutcomeDropped)
		s.settled(d, d.Drop("unreadable event"))
		return
	}
	if d.OrderSeq != 0 {
		e.SetExtension(ExtSeq, seqValue(d.OrderSeq))
	}
	pol := s.policy(d)
	done, ok := s.admit(ctx, d) // rate limit, circuit breaker
	if !ok {
		return
	}
	actx, cancel := sinks.WithAttemptTimeout(ctx, pol.Timeout)
	actx, att := s.r.tracing.startAttempt(actx, s.name, d, &e)
	start := time.Now()
	var reply *event.Event
	var err error
	if rs, ok := s.sink.(sinks.ReplySink); ok {
		reply, err = rs.DeliverReply(actx, &e)
	} else {
		err = s.sink.Deliver(actx, &e)
	}
	cancel()
	att.end(&e, err)
	done(ctx, err)
	took := time.Since(start)
	s.duration.Observe(took.Seconds())
	var outcome string // set below; the event log records it
	defer func() { s.traceAttempt(d, &e, start, took, outcome, err) }()
	if err == nil {
		if reply != nil && !s.routeReply(att.context(ctx), d, &e, reply, pol) {
			outcome = OutcomeRetried
			return // the delivery will be made again
		}
		outcome = OutcomeDelivered
		s.count(d.Route, OutcomeDelivered)
		s.settled(d, d.Ack())
		return
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("attempt timed out after %v: %w", pol.Timeout, err)
	}
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short; try again after restart.
		outcome = OutcomeRetried
		s.settled(d, d.Retry(pol.BackoffDelay))
		return
	}
	s.failed(err)
	log := s.log.With("route", d.Route, "ce_id", e.ID(), "ce_type", e.Type(), "attempt", d.Attempt)
	permanent, after := sinks.Classify(err)
	if !permanent {
		delay := max(pol.Backoff(d.Attempt), after)
		if pol.Retries(d.Attempt, time.Since(d.Accepted), delay) {
			log.Debug("delivery failed; will retry", "delay", delay, "err", err)
			outcome = OutcomeRetried
			s.count(d.Route, OutcomeRetried)
			s.settled(d, d.Retry(delay))
			return
		}
	}
	reason := journal.ReasonExhausted
	if permanent {
		reason = journal.ReasonPermanent
	}
	outcome = s.giveUp(ctx, d, &e, pol, reason, err.Error(), log)
}

// settled logs an answer to the journal that failed (the connection was
// lost, the journal refused the write of a retry): the delivery is then
// handed out again after the ack wait, or at once for a retry whose entry
// could not be stored (at least once).
func (s *sinkRuntime) settled(d *journal.Delivery, err error) {
	if err != nil {
		s.log.Warn("answer to the journal failed; the delivery will be handed out again", "route", d.Route, "seq", d.Seq, "attempt", d.Attempt, "err", err)
	}
}

// deadLetterRetry is how soon a delivery whose dead-lettering failed (the
// journal refused the write) is tried again.
const deadLetterRetry = 10 * time.Second

// giveUp ends a delivery that will not be attempted again. With
// onExhausted: drop it is logged, counted and dropped; otherwise it is kept
// in the journal's dead-letter store and, when the policy names one, sent
// to the dead-letter sink, and only then acknowledged. When the journal
// refuses either write the delivery stays pending and comes back: a dead
// letter is never dropped. It returns the outcome.
func (s *sinkRuntime) giveUp(ctx context.Context, d *journal.Delivery, ev *event.Event, pol config.Policy, reason, cause string, log *slog.Logger) string {
	log = log.With("reason", reason, "attempts", d.Attempt)
	if pol.OnExhausted == config.OnExhaustedDrop {
		log.Error("delivery failed; event dropped (onExhausted: drop)", "err", cause)
		s.count(d.Route, OutcomeDropped)
		s.settled(d, d.Ack())
		return OutcomeDropped
	}
	dlSink := pol.DeadLetter
	if d.DeadLetter {
		dlSink = "" // a dead letter's own delivery failed: the store keeps it
	}
	dl := deadLetterOf{event: ev, route: d.Route, sink: s.name, dlSink: dlSink, attempts: d.Attempt,
		reason: reason, cause: cause, accepted: d.Accepted, id: fmt.Sprintf("d.%s.%d.%d", s.name, d.Seq, d.Index),
		traceParent: d.TraceParent, traceState: d.TraceState}
	if err := s.r.deadLetter(ctx, dl); err != nil {
		log.Error("dead-letter write failed; delivery stays pending", "dead_letter", dlSink, "retry_in", deadLetterRetry, "err", err)
		s.settled(d, d.Retry(deadLetterRetry))
		return OutcomeRetried
	}
	log.Warn("delivery failed; dead-lettered", "dead_letter", dlSink, "err", cause)
	s.count(d.Route, OutcomeDeadLettered)
	s.settled(d, d.Ack())
	return OutcomeDeadLettered
}

// deadLetterOf is one event given up on, for Router.deadLetter.
type deadLetterOf struct {
	event       *event.Event
	route, sink string
	// dlSink is the dead-letter sink to send it to, or "".
	dlSink   string
	attempts int
	reason   string
	cause    string
	accepted time.Time
	// id names the dead-lettering, so that doing it twice stores one entry.
	id string
	// traceParent and traceState go with the entry for the dead-letter sink.
	traceParent, traceState string
}

// deadLetter keeps dl's event in the journal's dead-letter store and, when
// dl names a dead-letter sink, journals a copy with the dead-letter
// extensions for that sink. It returns once both are durable.
func (r *Router) deadLetter(ctx context.Context, dl deadLetterOf) error {
	data, err := journal.EncodeEvent(nil, dl.event)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", dl.event.ID(), err)
	}
	cause := oneLine(dl.cause, MaxErrorLen)
	err = r.journal.StoreDeadLetter(ctx, journal.DeadLetter{
		Route: dl.route, Sink: dl.sink, Attempts: dl.attempts, Reason: dl.reason,
		Error: cause, Accepted: dl.accepted, Data: data,
	}, dl.id)
	if err != nil || dl.dlSink == "" {
		return err
	}
	ent, err := deadLetterEntry(dl.event, dl.route, dl.sink, dl.dlSink, dl.attempts, cause)
	if err != nil {
		return err
	}
	ent.TraceParent, ent.TraceState = dl.traceParent, dl.traceState
	return r.journal.Append(ctx, []journal.Entry{ent})
}

// ExtHops counts how many function replies led to an event.
const ExtHops = "junctionhops"

// routeReply feeds a function's reply back into routing, as an event from a
// source named after the sink, one hop further than the event that caused
// it. Past the sink's maxHops the reply is dead-lettered (or dropped) with a
// clear log line instead. It returns false when the reply could not be
// journaled: the delivery is then retried, which calls the function again.
func (s *sinkRuntime) routeReply(ctx context.Context, d *journal.Delivery, cause, reply *event.Event, pol config.Policy) bool {
	m := s.r.metrics
	hops := 1
	if v, ok := cause.Extensions()[ExtHops]; ok {
		if n, err := types.ToInteger(v); err == nil && n > 0 {
			hops = int(n) + 1
		}
	}
	reply.SetExtension(ExtHops, int32(hops))
	log := s.log.With("route", d.Route, "ce_id", reply.ID(), "ce_type", reply.Type(), "ce_source", reply.Source(), "cause_id", cause.ID(), "hops", hops)
	limit := s.plan.Plugin.MaxHops // the config defaults it
	if hops > limit {
		m.Replies.WithLabelValues(s.name, "hop_limit").Inc()
		msg := fmt.Sprintf("hop limit of %d reached: functions may be replying to each other in a loop (maxHops on sink %s)", limit, s.name)
		if pol.OnExhausted == config.OnExhaustedDrop {
			log.Error("reply dropped (onExhausted: drop): " + msg)
			return true
		}
		dl := deadLetterOf{event: reply, route: d.Route, sink: s.name, dlSink: pol.DeadLetter, attempts: d.Attempt,
			reason: journal.ReasonHopLimit, cause: msg, accepted: d.Accepted, id: fmt.Sprintf("h.%s.%d.%d", s.name, d.Seq, d.Index)}
		if err := s.r.deadLetter(ctx, dl); err != nil {
			log.Error("dead-letter write failed; delivery stays pending", "dead_letter", pol.DeadLetter, "err", err)
			s.settled(d, d.Retry(deadLetterRetry))
			return false
		}
		log.Warn("reply dead-lettered: "+msg, "dead_letter", pol.DeadLetter)
		return true
	}
	if err := s.r.ingester(s.name).Ingest(ctx, []*event.Event{reply}); err != nil {
		log.Warn("reply could not be journaled; the delivery will be retried", "err", err)
		s.settled(d, d.Retry(pol.Backoff(d.Attempt)))
		return false
	}
	m.Replies.WithLabelValues(s.name, "routed").Inc()
	return true
}
