package router

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Delivery outcomes, the values of the outcome label.
const (
	OutcomeDelivered    = "delivered"
	OutcomeRetried      = "retried"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDropped      = "dropped"
)

// Metrics are the router's Prometheus series.
type Metrics struct {
	Registry   *prometheus.Registry
	Received   *prometheus.CounterVec
	Rejected   *prometheus.CounterVec
	Unrouted   prometheus.Counter
	Deliveries *prometheus.CounterVec
	Duration   *prometheus.HistogramVec
	Pending    *prometheus.GaugeVec
	// DeadLetters is how many entries the dead-letter store holds.
	DeadLetters prometheus.Gauge
	// Delayed is how many deliveries wait for their time (a delay, a
	// deliverAt, a retry's backoff) in the journal's delay stream.
	Delayed        prometheus.Gauge
	FilterErrors   *prometheus.CounterVec
	TransformErrs  *prometheus.CounterVec
	AppendDuration prometheus.Histogram
	Replies        *prometheus.CounterVec
	// Connections counts the ingress connections open; ConnectionsRejected
	// those closed at once over http.maxConnections.
	Connections         prometheus.Gauge
	ConnectionsRejected prometheus.Counter
	// BatchSize is the number of events of each batch a batching sink
	// sends.
	BatchSize *prometheus.HistogramVec
	// Duplicates counts the events of sources with dedup that were
	// accepted and not routed again.
	Duplicates *prometheus.CounterVec
	// Reloads counts config reloads by result: success, failure.
	Reloads *prometheus.CounterVec
	// CircuitOpen is 1 while a sink's circuit is open, else 0 (sinks with
	// a circuitBreaker only); Throttled counts the deliveries that waited
	// for a sink's rateLimit.
	CircuitOpen *prometheus.GaugeVec
	Throttled   *prometheus.CounterVec
	// HeldBack counts the deliveries handed back to the journal without
	// an attempt because their sink's circuit was open.
	HeldBack *prometheus.CounterVec
	// TLSReloads, TLSExpiry and AdminUnauthorized: see securityMetrics.
	TLSReloads        *prometheus.CounterVec
	TLSExpiry         *prometheus.GaugeVec
	AdminUnauthorized prometheus.Counter
}

func newMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_events_received_total",
			Help: "Events accepted from each source (journaled, or unrouted).",
		}, []string{"source"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_events_rejected_total",
			Help: "Requests or messages a source refused, by reason.",
		}, []string{"source", "reason"}),
		Unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "junction_events_unrouted_total",
			Help: "Valid events that no route matched.",
		}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_deliveries_total",
			Help: "Delivery attempts by outcome: delivered, retried, dead_lettered, dropped.",
		}, []string{"route", "sink", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "junction_delivery_duration_seconds",
			Help:    "Duration of one delivery attempt.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "junction_pending_deliveries",
			// Read from the journal's stream: with replicas sharing a
			// journal, every replica reports the same stream-wide value, so
			// aggregate with max() (or avg()), never sum().
			Help: "Deliveries due in the journal not yet acknowledged, per sink (those waiting for their time are junction_delayed_deliveries); stream-wide: every replica sharing the journal reports the same value, aggregate with max() by (sink), not sum().",
		}, []string{"sink"}),
		Delayed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "junction_delayed_deliveries",
			Help: "Deliveries waiting for their due time (delay, deliverAt, a retry's backoff) in the journal's delay stream, all sinks; stream-wide like junction_pending_deliveries.",
		}),
		DeadLetters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "junction_deadletters",
			Help: "Entries in the journal's dead-letter store (given up on, kept for journal.deadLetterRetention).",
		}),
		FilterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_filter_errors_total",
			Help: "Filter evaluations that failed at run time (the event did not match).",
		}, []string{"route"}),
		TransformErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_transform_errors_total",
			Help: "Transforms that failed at run time.",
		}, []string{"route"}),
		AppendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "junction_journal_append_duration_seconds",
			Help:    "Time to make one ingest call's deliveries durable.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		Replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_replies_total",
			Help: "Events that function sinks answered with, by outcome: routed, hop_limit.",
		}, []string{"sink", "outcome"}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "junction_http_connections",
			Help: "Connections open on the HTTP ingress.",
		}),
		ConnectionsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "junction_http_connections_rejected_total",
			Help: "Ingress connections closed at once because http.maxConnections were open.",
		}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "junction_sink_batch_size",
			Help:    "Events per batch sent by a sink with a batch key.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"sink"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_events_duplicate_total",
			Help: "Events of sources with dedup whose (source, id) was accepted within the window: answered as accepted, not routed again.",
		}, []string{"source"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_config_reloads_total",
			Help: "Config reloads (POST /api/v1/reload, SIGHUP, serve --watch) by result: success, failure (the running config was kept).",
		}, []string{"result"}),
		CircuitOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "junction_sink_circuit_open",
			Help: "1 while the sink's circuit is open (deliveries wait in the journal, no attempt is made), else 0; sinks with a circuitBreaker only.",
		}, []string{"sink"}),
		HeldBack: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_sink_held_back_total",
			Help: "Deliveries handed back to the journal without an attempt (none counted) because the sink's circuit was open; while it is open the sink's consumer fetches nothing, so this stays near the deliveries fetched when it opened.",
		}, []string{"sink"}),
		Throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "junction_sink_throttled_total",
			Help: "Deliveries that waited for the sink's rateLimit before their attempt.",
		}, []string{"sink"}),
	}
	m.Reloads.WithLabelValues("success")
	m.Reloads.WithLabelValues("failure")
	m.Registry.MustRegister(m.Reloads)
	m.Registry.MustRegister(m.Replies, m.Received, m.Rejected, m.Unrouted, m.Deliveries, m.Duration,
		m.Pending, m.Delayed, m.DeadLetters, m.FilterErrors, m.TransformErrs, m.AppendDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Registry.MustRegister(m.Connections, m.ConnectionsRejected, m.BatchSize, m.Duplicates)
	m.Registry.MustRegister(m.CircuitOpen, m.Throttled, m.HeldBack)
	m.securityMetrics()
	return m
}

// journalCounts registers the journal's counts of entries and of the
// messages that carry them (entries appended together share messages).
func (m *Metrics) journalCounts(stats func() (messages, entries uint64)) {
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "junction_journal_entries_total",
			Help: "Deliveries stored in the journal by this process.",
		}, func() float64 { _, e := stats(); return float64(e) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "junction_journal_messages_total",
			Help: "Journal messages that carried them (appends made together share messages).",
		}, func() float64 { m, _ := stats(); return float64(m) }),
	)
}
