package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// policies holds the delivery policy of each route that sends here.
	policies map[string]config.Policy
	// duration is this sink's series, resolved once.
	duration prometheus.Observer
}

// count adds one delivery outcome for route. The series is made on first
// use (made up front, 10,000 routes would make 40,000 series, most of them
// never used); the CounterVec's own look-up finds it after that.
func (s *sinkRuntime) count(route, outcome string) {
	s.r.metrics.Deliveries.WithLabelValues(route, s.name, outcome).Inc()
}

func (s *sinkRuntime) open(ctx context.Context) error {
	m := s.r.metrics
	s.policies = map[string]config.Policy{}
	s.duration = m.Duration.WithLabelValues(s.name)
	for _, rt := range s.r.plan.Routes {
		if p, ok := rt.Policy[s.name]; ok {
			s.policies[rt.Name] = p
		}
	}
	timeout := s.r.plan.maxTimeout(s.name)
	c, err := s.r.journal.Consumer(ctx, s.name, journal.ConsumeOptions{
		Concurrency: s.plan.Plugin.Concurrency,
		// Entries may wait in the client's buffer while every worker is
		// busy: allow for that before the journal hands them out again.
		AckWait: 2*timeout + 5*time.Second,
	})
	if err != nil {
		return err
	}
	s.consumer = c
	return nil
}

// policy returns the delivery policy of an entry.
func (s *sinkRuntime) policy(d *journal.Delivery) config.Policy {
	if d.DeadLetter {
		return s.plan.Policy
	}
	if p, ok := s.policies[d.Route]; ok {
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
	if err := decodeEvent(d.Data, &e); err != nil {
		s.log.Error("drop unreadable journal entry", "route", d.Route, "seq", d.Seq, "err", err)
		s.count(d.Route, OutcomeDropped)
		d.Drop("unreadable event")
		return
	}
	pol := s.policy(d)
	actx, cancel := sinks.WithAttemptTimeout(ctx, pol.Timeout)
	start := time.Now()
	var reply *event.Event
	var err error
	if rs, ok := s.sink.(sinks.ReplySink); ok {
		reply, err = rs.DeliverReply(actx, &e)
	} else {
		err = s.sink.Deliver(actx, &e)
	}
	cancel()
	s.duration.Observe(time.Since(start).Seconds())
	if err == nil {
		if reply != nil && !s.routeReply(ctx, d, &e, reply, pol) {
			return // the delivery will be made again
		}
		s.count(d.Route, OutcomeDelivered)
		d.Ack()
		return
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("attempt timed out after %v: %w", pol.Timeout, err)
	}
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short; try again after restart.
		d.Retry(pol.BackoffDelay)
		return
	}
	log := s.log.With("route", d.Route, "ce_id", e.ID(), "ce_type", e.Type(), "attempt", d.Attempt)
	permanent, after := sinks.Classify(err)
	if !permanent && d.Attempt <= pol.Retry {
		delay := pol.Backoff(d.Attempt)
		if after > delay {
			delay = after
		}
		log.Debug("delivery failed; will retry", "delay", delay, "err", err)
		s.count(d.Route, OutcomeRetried)
		d.Retry(delay)
		return
	}
	reason := "retries exhausted"
	if permanent {
		reason = "permanent failure"
	}
	if pol.DeadLetter == "" || d.DeadLetter {
		log.Error("delivery failed; event dropped", "reason", reason, "attempts", d.Attempt, "err", err)
		s.count(d.Route, OutcomeDropped)
		d.Ack()
		return
	}
	if !s.writeDeadLetter(ctx, d, &e, pol, err.Error(), log) {
		return
	}
	log.Warn("delivery failed; dead-lettered", "reason", reason, "attempts", d.Attempt, "dead_letter", pol.DeadLetter, "err", err)
	s.count(d.Route, OutcomeDeadLettered)
	d.Ack()
}

// writeDeadLetter journals ev for the policy's dead-letter sink. When that
// fails it logs, leaves the delivery pending (it comes back after maxDelay
// and tries again) and returns false: a dead letter is never dropped.
func (s *sinkRuntime) writeDeadLetter(ctx context.Context, d *journal.Delivery, ev *event.Event, pol config.Policy, cause string, log *slog.Logger) bool {
	ent, err := deadLetterEntry(ev, d.Route, s.name, pol.DeadLetter, d.Attempt, cause)
	if err == nil {
		err = s.r.journal.Append(ctx, []journal.Entry{ent})
	}
	if err != nil {
		log.Error("dead-letter write failed; delivery stays pending", "dead_letter", pol.DeadLetter, "err", err)
		d.Retry(pol.MaxDelay)
		return false
	}
	return true
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
		if pol.DeadLetter == "" {
			log.Error("reply dropped: " + msg)
			return true
		}
		if !s.writeDeadLetter(ctx, d, reply, pol, msg, log) {
			return false
		}
		log.Warn("reply dead-lettered: "+msg, "dead_letter", pol.DeadLetter)
		return true
	}
	if err := s.r.ingester(s.name).Ingest(ctx, []*event.Event{reply}); err != nil {
		log.Warn("reply could not be journaled; the delivery will be retried", "err", err)
		d.Retry(pol.Backoff(d.Attempt))
		return false
	}
	m.Replies.WithLabelValues(s.name, "routed").Inc()
	return true
}
