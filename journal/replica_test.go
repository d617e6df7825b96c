package journal

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestChangedSettingsWarn: a replica that opens the journal with stream or
// consumer settings other than those it finds says so in one line naming
// both values (and applies its own, so that rolling config changes work).
func TestChangedSettingsWarn(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, func(o *Options) { o.MaxBytes = 64 << 20 })
	if _, err := j.Consumer(context.Background(), "s", ConsumeOptions{AckWait: 8 * time.Second}); err != nil {
		t.Fatal(err)
	}
	j.Close()

	var logs syncBuffer
	j = open(t, dir, func(o *Options) {
		o.MaxBytes = 32 << 20
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	defer j.Close()
	if _, err := j.Consumer(context.Background(), "s", ConsumeOptions{AckWait: 20 * time.Second, MaxPending: 5000}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{
		"has journal.maxBytes 67108864, this replica's config says 33554432",
		"consumer of sink s has journal.ackWait 8s, this replica's config says 20s",
		"has maxPending 1000, this replica's config says 5000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "journal.replicas") {
		t.Errorf("warned about an unchanged setting:\n%s", out)
	}

	// Same settings again: no warning.
	j.Close()
	logs = syncBuffer{}
	j = open(t, dir, func(o *Options) {
		o.MaxBytes = 32 << 20
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if _, err := j.Consumer(context.Background(), "s", ConsumeOptions{AckWait: 20 * time.Second, MaxPending: 5000}); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); strings.Contains(out, "config says") {
		t.Errorf("warned with identical settings:\n%s", out)
	}
}

// TestAttemptLongerThanAckWait: an entry whose handling takes several ack
// waits is kept alive by the consumer's progress reports and handed out
// once.
func TestAttemptLongerThanAckWait(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	c, err := j.Consumer(ctx, "slow", ConsumeOptions{AckWait: 300 * time.Millisecond, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append(ctx, []Entry{{Sink: "slow", Route: "r", Data: []byte("a")}, {Sink: "slow", Route: "r", Data: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	var got collector
	stop := run(t, c, func(_ context.Context, d *Delivery) {
		got.add(d)
		time.Sleep(time.Second) // over 3 ack waits; the second entry waits behind
		d.Ack()
	})
	defer stop()
	eventually(t, 10*time.Second, "both entries handled", func() bool { return got.len() >= 2 })
	time.Sleep(time.Second) // a redelivery would come within an ack wait
	if n := got.len(); n != 2 {
		t.Errorf("%d deliveries of 2 entries, want 2 (no redelivery while in progress)", n)
	}
	for _, d := range got.seen {
		if d.Attempt != 1 {
			t.Errorf("entry %q attempt %d, want 1", d.Data, d.Attempt)
		}
	}
}

// TestMessagesCarryIDs: on a cluster (dedupe), every journal message has a
// Nats-Msg-Id and the stream a duplicates window, so a message published
// again after a lost answer is stored once; the embedded journal has
// neither.
func TestMessagesCarryIDs(t *testing.T) {
	j := open(t, t.TempDir(), func(o *Options) { o.dedupe = true })
	defer j.Close()
	ctx := context.Background()
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	info, err := j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates != 10*time.Second {
		t.Errorf("duplicates window %v, want 10s (2 x the write timeout)", info.Config.Duplicates)
	}
	subject := j.lanes.subject(lane{sink: "s", kind: laneUnordered}, 1)
	m, err := j.stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	id := m.Header.Get(jetstream.MsgIDHeader)
	if id == "" {
		t.Fatal("journal message without Nats-Msg-Id")
	}
	// The same message again: acknowledged as a duplicate, not stored.
	again := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
	again.Header.Set(jetstream.MsgIDHeader, id)
	ack, err := j.js.PublishMsg(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate {
		t.Error("a message published again with its id was stored twice")
	}
	if info, _ := j.stream.Info(ctx, jetstream.WithSubjectFilter(subject)); info.State.Subjects[subject] != 1 {
		t.Errorf("stream holds %d messages on %s, want 1", info.State.Subjects[subject], subject)
	}
}

// TestRepublishWhenNobodyAnswers: appends made while the stream does not
// take its subjects (as on a cluster between a leader's death and the next
// election: no responders) are published again and stored once, within the
// write timeout, and appends made meanwhile are not held up behind them.
func TestRepublishWhenNobodyAnswers(t *testing.T) {
	j := open(t, t.TempDir(), func(o *Options) { o.WriteTimeout, o.dedupe = 4*time.Second, true })
	defer j.Close()
	ctx := context.Background()
	info, err := j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	away := cfg
	away.Subjects = []string{"elsewhere.>"}
	if _, err := j.js.UpdateStream(ctx, away); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			errs <- j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte{byte('a' + i)}}})
		}()
		time.Sleep(50 * time.Millisecond)
	}
	// Longer than the client's own retries of a publish that nobody took
	// (2 x 250ms).
	time.Sleep(time.Second)
	if _, err := j.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("append: %v", err)
		}
	}
	if n := j.app.resent.Load(); n == 0 {
		t.Error("nothing was published again")
	}
	info, err = j.stream.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	entries := 0
	for subject, msgs := range info.State.Subjects {
		_, n, _ := j.lanes.parse(subject)
		entries += n * int(msgs)
	}
	if info.State.Msgs == 0 || entries != 3 {
		t.Errorf("the stream holds %d entries in %d messages, want 3", entries, info.State.Msgs)
	}
}

// TestEmbeddedWithoutIDs: the embedded journal spares itself message ids
// and the duplicates window.
func TestEmbeddedWithoutIDs(t *testing.T) {
	j := open(t, t.TempDir())
	defer j.Close()
	ctx := context.Background()
	if err := j.Append(ctx, []Entry{{Sink: "s", Route: "r", Data: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	info, err := j.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := j.stream.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates > 2*time.Minute || m.Header.Get(jetstream.MsgIDHeader) != "" {
		t.Errorf("embedded journal: duplicates window %v, message id %q; want neither", info.Config.Duplicates, m.Header.Get(jetstream.MsgIDHeader))
	}
}
