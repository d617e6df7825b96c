package journal

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Entries not due yet (a route's delay or deliverAt, a retry's backoff) wait
// in a stream of their own, the delay stream, not in their lane: there they
// are not handed out to any consumer, so that however many wait, they never
// take a place in a sink's window of entries handed out (MaxAckPending) and
// never hold back the entries that are due.
//
// Each waits as a JetStream message schedule (nats-server 2.12+): a message
// on a subject of its own with the header Nats-Schedule: @at <due time>.
// At that time the server publishes its copy on <delayPrefix>.due.<sink>
// and removes the schedule. Every journal process runs a mover on one
// durable consumer of the due subjects (shared by replicas, so each due
// entry is moved once): it appends the entry to its lane, then
// acknowledges it (a crash between the two may move it twice: at least
// once, never lost). Schedules live in the stream's store: they survive
// restarts and, on a cluster, replicas.

// dueSlack: an entry due within it is not delayed.
const dueSlack = 50 * time.Millisecond

// moverName is the durable name of the movers' consumer.
const moverName = "mover"

// The delay stream's headers.
const (
	headerSchedule       = "Nats-Schedule"
	headerScheduleTarget = "Nats-Schedule-Target"
)

func (j *Journal) delayStreamName() string { return j.opts.Stream + "_DELAYS" }

func (j *Journal) ensureDelays(ctx context.Context) error {
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	cfg := jetstream.StreamConfig{
		Name:        j.delayStreamName(),
		Description: "Junction deliveries not due yet",
		Subjects:    []string{j.lanes.delay + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     storage,
		Replicas:    j.opts.Replicas,
		// Message schedules need discard old (and roll-ups); nothing is
		// discarded: the stream has no limits. journal.maxBytes bounds
		// the deliveries stream; what waits here counts in Health's disk
		// reserve like everything the embedded journal stores.
		Discard:           jetstream.DiscardOld,
		AllowRollup:       true,
		AllowMsgSchedules: true,
		Duplicates:        j.duplicates(),
	}
	s, err := setup(ctx, j, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		if strings.Contains(err.Error(), "schedul") {
			return fmt.Errorf("create stream %s: %w (delayed delivery needs JetStream message schedules: nats-server 2.12 or later)", cfg.Name, err)
		}
		return fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	j.delayStream = s
	mc := jetstream.ConsumerConfig{
		Durable:       moverName,
		Description:   "Junction: moves due deliveries into their lanes",
		FilterSubject: j.lanes.dueAll(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 4 * maxBatchEntries * moverBatches,
	}
	c, err := setup(ctx, j, "create consumer "+moverName, func(ctx context.Context) (jetstream.Consumer, error) {
		return s.CreateOrUpdateConsumer(ctx, mc)
	})
	if err != nil {
		return fmt.Errorf("create consumer %s of stream %s: %w", moverName, cfg.Name, err)
	}
	j.mover = c
	return nil
}

// delayed makes the delay-stream message that holds e until it is due.
func (a *appender) delayed(e *Entry) *nats.Msg {
	if e.Accepted.IsZero() {
		// maxAge counts from the due time.
		e.Accepted = e.NotBefore
	}
	id := a.idPrefix + strconv.FormatUint(a.ids.Add(1), 36)
	m := &nats.Msg{
		Subject: a.j.lanes.scheduled(strings.ReplaceAll(id, ".", "-")),
		Data:    appendEnvelope(make([]byte, 0, envelopeSize(e)+16), []*Entry{e}),
		Header:  nats.Header{},
	}
	m.Header[headerSchedule] = []string{"@at " + e.NotBefore.UTC().Format(time.RFC3339Nano)}
	m.Header[headerScheduleTarget] = []string{a.j.lanes.due(e.Sink)}
	return m
}

// moverBatches is how many fetches the mover has in flight at once.
const moverBatches = 4

// runMover moves due entries into their lanes until the journal closes.
func (j *Journal) runMover() {
	defer j.moverDone.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-j.app.stop
		cancel()
	}()
	failures := 0
	for ctx.Err() == nil {
		batch, err := j.mover.Fetch(4*maxBatchEntries, jetstream.FetchMaxWait(FetchWait))
		if err == nil {
			// Move what has come at once, without waiting for the request
			// to end.
			msgs := batch.Messages()
			for m := range msgs {
				group := []jetstream.Msg{m}
			more:
				for {
					select {
					case m, ok := <-msgs:
						if !ok {
							break more
						}
						group = append(group, m)
					default:
						break more
					}
				}
				if merr := j.move(ctx, group); merr != nil && err == nil {
					err = merr
				}
			}
			if berr := fetchError(batch); berr != nil && err == nil {
				err = berr
			}
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		j.log.Warn("journal: moving due deliveries failed", "err", err, "failures", failures)
		if !pause(ctx, failures) {
			return
		}
	}
}

// move appends the entries of each due message to its lane, then
// acknowledges the message (or hands it back a second later when the
// append failed: a full journal). Each message is appended on its own, so
// that a failure of one never repeats another; appends made at once still
// share journal messages (see appender). An unreadable message is dropped
// with a log line.
func (j *Journal) move(ctx context.Context, msgs []jetstream.Msg) error {
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		sink, found := strings.CutPrefix(m.Subject(), j.lanes.delay+".due.")
		es, err := decodeEnvelope(m.Data())
		if !found || err != nil {
			j.log.Error("drop unreadable delayed journal entry", "subject", m.Subject(), "err", err)
			m.TermWithReason("unreadable entry")
			continue
		}
		for k := range es {
			es[k].Sink = sink
			es[k].NotBefore = time.Time{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = j.append(ctx, es, true); errs[i] != nil {
				m.NakWithDelay(time.Second)
				return
			}
			m.Ack()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the others are alike
		}
	}
	return nil
}

// Delayed returns how many entries wait in the delay stream.
func (j *Journal) Delayed(ctx context.Context) (uint64, error) {
	info, err := j.delayStream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// keep stores a small message on <prefix>._keep every keepEvery, replacing
// the one before (a roll-up), which no consumer reads. The store removes a
// block file when its last message is acknowledged and opens a new one for
// the next write: with deliveries keeping up, the deliveries stream is
// empty many times a second, and those file operations took a fifth of the
// CPU (BenchmarkDeliverySemantics). The keeper keeps the block being
// written from ever being empty for long.
func (j *Journal) keep() {
	defer j.moverDone.Done()
	t := time.NewTicker(keepEvery)
	defer t.Stop()
	for {
		m := &nats.Msg{Subject: j.lanes.prefix + "._keep", Header: nats.Header{}}
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
		j.nc.PublishMsg(m) // no answer awaited: one lost is replaced soon
		select {
		case <-t.C:
		case <-j.app.stop:
			return
		}
	}
}

// keepEvery is how often the keeper is stored.
const keepEvery = 50 * time.Millisecond
