package natssource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// consumerSettled reports whether the durable has delivered every message
// and holds none unacknowledged.
func consumerSettled(t testing.TB, js jetstream.JetStream, stream, durable string) bool {
	t.Helper()
	c, err := js.Consumer(context.Background(), stream, durable)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
}

func TestJetStreamModes(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	publish(t, js, prefix+".a", `{"amount":1}`, "ce-specversion", "1.0", "ce-id", "b-1", "ce-source", "/shop", "ce-type", "order", "ce-tenant", "acme", "content-type", "application/json")
	publish(t, js, prefix+".b", `{"specversion":"1.0","id":"s-1","source":"/shop","type":"order","data":{"amount":2}}`, "content-type", "application/cloudevents+json")
	publish(t, js, prefix+".c", `plain`)
	rec := &sourcetest.Recorder{}
	c := decoded(t, jsConfig(natstest.URL(), stream)+"eventType: com.example.raw\n")
	run(t, c, rec)
	plugintest.Eventually(t, 10*time.Second, "3 events", func() bool { return rec.Count() == 3 })
	plugintest.Eventually(t, 10*time.Second, "every message acked", func() bool { return consumerSettled(t, js, stream, c.Durable) })
	_, events, rejected := rec.Snapshot()
	var got []string
	for _, e := range events {
		got = append(got, fmt.Sprintf("%s|%s|%s|%s|%v", e.ID(), e.Source(), e.Type(), e.Data(), e.Extensions()["tenant"]))
	}
	sort.Strings(got)
	want := []string{
		fmt.Sprintf("%s:3|nats://%s.c|com.example.raw|plain|<nil>", stream, prefix),
		`b-1|/shop|order|{"amount":1}|acme`,
		`s-1|/shop|order|{"amount":2}|<nil>`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(rejected) != 0 {
		t.Errorf("rejected %v", rejected)
	}
}

func TestJetStreamFilterSubject(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	publish(t, js, prefix+".skip", "1")
	publish(t, js, prefix+".take.x", "2")
	rec := &sourcetest.Recorder{}
	c := decoded(t, jsConfig(natstest.URL(), stream)+"subject: "+prefix+".take.>\n")
	run(t, c, rec)
	plugintest.Eventually(t, 10*time.Second, "1 event", func() bool { return rec.Count() == 1 })
	plugintest.Eventually(t, 10*time.Second, "acked", func() bool { return consumerSettled(t, js, stream, c.Durable) })
	if _, ev, _ := rec.Snapshot(); string(ev[0].Data()) != "2" {
		t.Errorf("got %s", ev[0].Data())
	}
}

// TestJetStreamIngestFails: while the journal refuses, messages are not
// acked; they come back (NakWithDelay) and are ingested once it accepts.
// Other messages keep flowing meanwhile.
func TestJetStreamIngestFails(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	rec := &sourcetest.Recorder{}
	failures := 0
	rec.Fail = func(_ int, events []*event.Event) error {
		if string(events[0].Data()) == "flaky" && failures < 2 {
			failures++ // only touched under Ingest's calls, one at a time per message
			return fmt.Errorf("journal: %w", sources.ErrUnavailable)
		}
		return nil
	}
	c := decoded(t, jsConfig(natstest.URL(), stream)+"concurrency: 1\n")
	run(t, c, rec)
	publish(t, js, prefix+".x", "flaky")
	publish(t, js, prefix+".x", "steady")
	plugintest.Eventually(t, 15*time.Second, "both events", func() bool { return rec.Count() == 2 })
	calls, events, _ := rec.Snapshot()
	if calls != 4 {
		t.Errorf("%d Ingest calls, want 4 (2 refused, 2 accepted)", calls)
	}
	if string(events[0].Data()) != "steady" {
		t.Errorf("the refused message blocked the next one: order %s, %s", events[0].Data(), events[1].Data())
	}
	// The redelivered message keeps its stable id.
	if events[1].ID() != stream+":1" {
		t.Errorf("id %s", events[1].ID())
	}
	cons, _ := js.Consumer(context.Background(), stream, c.Durable)
	plugintest.Eventually(t, 10*time.Second, "acked", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
}

// TestJetStreamMalformed: a malformed message is published to the
// dead-letter subject, terminated (MSG_TERMINATED advisory with the
// reason), counted, and does not hold up the next message.
//
// It runs against the test broker and against the embedded server of
// go.mod's nats-server version (which takes Term reasons).
func TestJetStreamMalformed(t *testing.T) {
	t.Run("broker", func(t *testing.T) {
		nc, js := natstest.Connect(t)
		testMalformed(t, nc, js, natstest.URL())
	})
	t.Run("embedded", func(t *testing.T) {
		srv := natstest.StartServer(t)
		nc, err := nats.Connect(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if !termWithReason(nc.ConnectedServerVersion()) {
			t.Fatalf("embedded server %s takes no Term reason", nc.ConnectedServerVersion())
		}
		testMalformed(t, nc, js, srv.URL())
	})
}

func testMalformed(t *testing.T, nc *nats.Conn, js jetstream.JetStream, url string) {
	stream, prefix := natstest.NewStream(t, js)
	dlqStream, dlqPrefix := natstest.NewStream(t, js)
	c := decoded(t, jsConfig(url, stream)+"deadLetterSubject: "+dlqPrefix+".dead\n")
	advisories, err := nc.SubscribeSync(fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.%s.%s", stream, c.Durable))
	if err != nil {
		t.Fatal(err)
	}
	rec := &sourcetest.Recorder{}
	publish(t, js, prefix+".x", "payload-secret", "ce-specversion", "1.0", "ce-source", "/s", "ce-type", "t", "X-Trace", "abc")
	publish(t, js, prefix+".x", "ok")
	run(t, c, rec)
	plugintest.Eventually(t, 10*time.Second, "the good event", func() bool { return rec.Count() == 1 })
	plugintest.Eventually(t, 10*time.Second, "settled", func() bool { return consumerSettled(t, js, stream, c.Durable) })
	_, _, rejected := rec.Snapshot()
	if rejected["malformed"] != 1 {
		t.Errorf("rejected %v", rejected)
	}
	dm := lastDeadLetter(t, js, dlqStream, dlqPrefix+".dead")
	if string(dm.Data) != "payload-secret" || dm.Header.Get("X-Trace") != "abc" || dm.Header.Get("Junction-Reason") != "malformed" ||
		dm.Header.Get("Junction-Error") != `binary mode: missing required attribute "id" (header ce-id)` || dm.Header.Get("Junction-Original-Subject") != prefix+".x" ||
		dm.Header.Get("Junction-Original-Stream") != stream || dm.Header.Get("Junction-Original-Sequence") != "1" || dm.Header.Get("Junction-Source") != "natstest" {
		t.Errorf("dead letter: %q %v", dm.Data, dm.Header)
	}
	adv, err := advisories.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no MSG_TERMINATED advisory: %v", err)
	}
	var a struct {
		StreamSeq uint64 `json:"stream_seq"`
		Reason    string `json:"reason"`
	}
	wantReason := `malformed: binary mode: missing required attribute "id" (header ce-id)`
	if !termWithReason(nc.ConnectedServerVersion()) {
		wantReason = "" // servers before 2.10.4 take no reason
	}
	if err := json.Unmarshal(adv.Data, &a); err != nil || a.StreamSeq != 1 || a.Reason != wantReason {
		t.Errorf("advisory %s (%v)", adv.Data, err)
	}
}

// TestJetStreamDeadLetterFails: when the dead-letter subject has no
// stream, the malformed message is not terminated: it stays pending.
func TestJetStreamDeadLetterFails(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	c := decoded(t, jsConfig(natstest.URL(), stream)+"deadLetterSubject: nostream"+natstest.Suffix()+".dead\n")
	rec := &sourcetest.Recorder{}
	publish(t, js, prefix+".x", "{}", "ce-specversion", "9")
	run(t, c, rec)
	plugintest.Eventually(t, 10*time.Second, "a redelivery", func() bool {
		cons, err := js.Consumer(context.Background(), stream, c.Durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.NumRedelivered == 1
	})
	if _, _, rejected := rec.Snapshot(); len(rejected) != 0 {
		t.Errorf("counted as rejected while still pending: %v", rejected)
	}
}

// TestJetStreamInProgress: an ingest slower than ackWait is not
// redelivered: the source sends InProgress.
func TestJetStreamInProgress(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	rec := &sourcetest.Recorder{Block: func(int) time.Duration { return 2500 * time.Millisecond }}
	c := decoded(t, jsConfig(natstest.URL(), stream)+"ackWait: 1s\nconcurrency: 2\n")
	run(t, c, rec)
	publish(t, js, prefix+".x", "slow")
	plugintest.Eventually(t, 10*time.Second, "the event", func() bool { return rec.Count() == 1 })
	plugintest.Eventually(t, 5*time.Second, "acked", func() bool { return consumerSettled(t, js, stream, c.Durable) })
	// A redelivery would have come ackWait (1s) after the delivery, while
	// the first ingest (2.5s) was still running: it would be counted by now.
	if calls, _, _ := rec.Snapshot(); calls != 1 {
		t.Errorf("%d Ingest calls: the message was redelivered", calls)
	}
}

// TestJetStreamTooLarge: a message the journal refuses as too large is
// terminated and counted, not retried forever.
func TestJetStreamTooLarge(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	rec := &sourcetest.Recorder{Fail: func(int, []*event.Event) error { return fmt.Errorf("append: %w", sources.ErrTooLarge) }}
	c := decoded(t, jsConfig(natstest.URL(), stream))
	run(t, c, rec)
	publish(t, js, prefix+".x", "big")
	plugintest.Eventually(t, 10*time.Second, "rejected", func() bool { _, _, r := rec.Snapshot(); return r["too_large"] == 1 })
	plugintest.Eventually(t, 10*time.Second, "settled", func() bool { return consumerSettled(t, js, stream, c.Durable) })
}

// TestJetStreamDeliverNew: a new durable with deliverPolicy new skips what
// the stream already holds.
func TestJetStreamDeliverNew(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	publish(t, js, prefix+".x", "old")
	rec := &sourcetest.Recorder{}
	c := decoded(t, jsConfig(natstest.URL(), stream)+"deliverPolicy: new\n")
	run(t, c, rec)
	plugintest.Eventually(t, 10*time.Second, "the consumer", func() bool {
		_, err := js.Consumer(context.Background(), stream, c.Durable)
		return err == nil
	})
	publish(t, js, prefix+".x", "new")
	plugintest.Eventually(t, 10*time.Second, "the new event", func() bool { return rec.Count() == 1 })
	if _, ev, _ := rec.Snapshot(); string(ev[0].Data()) != "new" {
		t.Errorf("got %s", ev[0].Data())
	}
}

// TestJetStreamConsumerDeleted: a durable deleted under the source is made
// again.
func TestJetStreamConsumerDeleted(t *testing.T) {
	_, js := natstest.Connect(t)
	stream, prefix := natstest.NewStream(t, js)
	rec := &sourcetest.Recorder{}
	c := decoded(t, jsConfig(natstest.URL(), stream))
	run(t, c, rec)
	publish(t, js, prefix+".x", "1")
	plugintest.Eventually(t, 10*time.Second, "event 1", func() bool { return rec.Count() == 1 })
	if err := js.DeleteConsumer(context.Background(), stream, c.Durable); err != nil {
		t.Fatal(err)
	}
	plugintest.Eventually(t, 30*time.Second, "the consumer made again", func() bool {
		_, err := js.Consumer(context.Background(), stream, c.Durable)
		return err == nil
	})
	publish(t, js, prefix+".x", "2")
	plugintest.Eventually(t, 30*time.Second, "event 2", func() bool {
		// The new durable starts over (deliverPolicy all): 1 comes again.
		_, ev, _ := rec.Snapshot()
		for _, e := range ev {
			if string(e.Data()) == "2" {
				return true
			}
		}
		return false
	})
}

// TestBrokerOutage stops the NATS server under a running source and
// starts it again: messages published before, and after, all arrive.
func TestBrokerOutage(t *testing.T) {
	srv := natstest.StartServer(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, "out.x", "before")
	nc.Close()
	rec := &sourcetest.Recorder{}
	logs := &plugintest.LogBuffer{}
	built, err := decoded(t, jsConfig(srv.URL(), "OUT")).Build(context.Background(), sources.Deps{Name: "natstest", Logger: sourcetest.Logger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	sourcetest.Run(t, built.(*Source), rec, 15*time.Second)
	plugintest.Eventually(t, 10*time.Second, "event before", func() bool { return rec.Count() == 1 })
	srv.Stop()
	plugintest.Eventually(t, 10*time.Second, "the source to see the outage", func() bool {
		return strings.Contains(logs.String(), "disconnected from NATS")
	})
	srv.Start()
	nc2, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	publish(t, js2, "out.x", "after")
	plugintest.Eventually(t, 30*time.Second, "event after", func() bool { return rec.Count() == 2 })
}

// TestRunWithoutBroker: Run waits for a broker that is not there and
// returns nil when ctx ends.
func TestRunWithoutBroker(t *testing.T) {
	srv := natstest.StartServer(t)
	srv.Stop()
	built, err := decoded(t, jsConfig(srv.URL(), "S")).Build(context.Background(), sources.Deps{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := built.(*Source).Run(ctx, &sourcetest.Recorder{}); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestCore(t *testing.T) {
	nc, _ := natstest.Connect(t)
	subject := "core" + natstest.Suffix()
	rec := &sourcetest.Recorder{}
	run(t, decoded(t, fmt.Sprintf("url: %s\nsubject: %s.>\nqueue: q\n", natstest.URL(), subject)), rec)
	// The subscription is live once a message gets through.
	plugintest.Eventually(t, 10*time.Second, "the subscription", func() bool {
		nc.Publish(subject+".probe", []byte("probe"))
		nc.Flush()
		return rec.Count() > 0
	})
	m := nats.NewMsg(subject + ".x")
	m.Header.Set("ce-specversion", "1.0")
	m.Header.Set("ce-id", "c-1")
	m.Header.Set("ce-source", "/core")
	m.Header.Set("ce-type", "t")
	m.Data = []byte("hi")
	nc.PublishMsg(m)
	nc.Publish(subject+".y", []byte("raw"))
	nc.Flush()
	// Probes still in flight may arrive too: look for the two by subject.
	var binary, raw *event.Event
	plugintest.Eventually(t, 10*time.Second, "the binary and the raw event", func() bool {
		for _, e := range rec.Events() {
			switch {
			case e.ID() == "c-1":
				binary = e
			case e.Source() == "nats://"+subject+".y":
				raw = e
			}
		}
		return binary != nil && raw != nil
	})
	if binary == nil || string(binary.Data()) != "hi" || binary.Source() != "/core" {
		t.Errorf("binary event %v", binary)
	}
	if raw == nil || raw.Source() != "nats://"+subject+".y" || raw.Type() != "io.nats.message" || len(raw.ID()) != 36 {
		t.Errorf("wrapped event %v", raw)
	}
}

// TestCoreLost: in core NATS mode a message that cannot be ingested is
// counted as lost, and a malformed one as malformed.
func TestCoreLost(t *testing.T) {
	nc, _ := natstest.Connect(t)
	subject := "core" + natstest.Suffix()
	ready := false
	rec := &sourcetest.Recorder{Fail: func(_ int, events []*event.Event) error {
		if string(events[0].Data()) == "probe" {
			return nil
		}
		return errors.New("journal: unavailable")
	}}
	run(t, decoded(t, fmt.Sprintf("url: %s\nsubject: %s\n", natstest.URL(), subject)), rec)
	plugintest.Eventually(t, 10*time.Second, "the subscription", func() bool {
		nc.Publish(subject, []byte("probe"))
		nc.Flush()
		ready = rec.Count() > 0
		return ready
	})
	nc.Publish(subject, []byte("refused"))
	m := nats.NewMsg(subject)
	m.Header.Set("content-type", "application/cloudevents+json")
	m.Data = []byte("{")
	nc.PublishMsg(m)
	nc.Flush()
	plugintest.Eventually(t, 10*time.Second, "lost and malformed", func() bool {
		_, _, r := rec.Snapshot()
		return r["lost"] == 1 && r["malformed"] == 1
	})
}
