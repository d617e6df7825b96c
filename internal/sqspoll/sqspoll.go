// Package sqspoll is the SQS consuming machinery shared by the sqs source
// and the s3 source's sqs transport: concurrent long polls, a backoff
// after failed receives, a grace period for the batch being handled when
// polling stops, the ingest of a batch's events with the messages' deletion
// once they are in the journal (visibility extended meanwhile, messages too
// large for the journal isolated), and the visibility backoff of messages
// left on the queue (refused or failed). What a message means, and what is
// logged of its content, is the source's.
package sqspoll

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/backoff"
	"github.com/junctionhq/junction/internal/text"
	"github.com/junctionhq/junction/sources"
)

// MaxVisibility is SQS's longest visibility timeout.
const MaxVisibility = 12 * time.Hour

// MaxRefusedDelay bounds the visibility given to a refused message.
const MaxRefusedDelay = 15 * time.Minute

// Handler handles one received batch under ctx, which ends a grace period
// after polling stops. It ingests and deletes the messages it accepts
// (Ingest), hides the ones it refuses with a growing delay (Refuse), and
// returns the messages whose handling failed and that should come back
// soon: the poller hides them for the nak backoff and waits as long before
// receiving again.
type Handler func(ctx context.Context, msgs []types.Message) (failed []types.Message)

// Poller consumes one queue. Make it with New, set its fields, then call
// Run once.
type Poller struct {
	Client   *sqs.Client
	QueueURL string
	// Pollers is the number of concurrent long polls.
	Pollers int
	// BatchSize is the most messages one receive returns (1..10).
	BatchSize int32
	// WaitTime is the long-poll wait in seconds (0..20).
	WaitTime int32
	// Visibility is the visibility timeout of received messages (whole
	// seconds); it is extended while a Hold runs longer than half of it.
	Visibility time.Duration
	// MessageAttributeNames and SystemAttributeNames are asked for with
	// each receive.
	MessageAttributeNames []string
	SystemAttributeNames  []types.MessageSystemAttributeName

	// RetryMin and RetryMax bound the backoff between failed receives;
	// NakMin and NakMax the delay before failed messages come back.
	RetryMin, RetryMax time.Duration
	NakMin, NakMax     time.Duration
	// Grace is how long the batch being handled when Run's context ends
	// may still take.
	Grace time.Duration

	Log *slog.Logger
}

// New returns a poller of queueURL that logs to log, with the default
// backoffs (failed receives retried after 100ms doubling up to 30s, failed
// messages back after 1s doubling up to 30s) and 10s of grace.
func New(client *sqs.Client, queueURL string, log *slog.Logger) *Poller {
	return &Poller{
		Client:   client,
		QueueURL: queueURL,
		RetryMin: 100 * time.Millisecond,
		RetryMax: 30 * time.Second,
		NakMin:   time.Second,
		NakMax:   30 * time.Second,
		Grace:    10 * time.Second,
		Log:      log,
	}
}

// Run polls the queue with p.Pollers long polls until ctx ends, then
// returns. A batch being handled when ctx ends may finish (handled and
// deleted) within p.Grace, so that a shutdown does not cut it between its
// ingest and its delete (which would mean duplicates).
func (p *Poller) Run(ctx context.Context, h Handler) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(p.Grace, cancel) })
	defer stop()
	var wg sync.WaitGroup
	for range p.Pollers {
		wg.Go(func() { p.poll(ctx, work, h) })
	}
	wg.Wait()
}

// poll is one long-poll loop: receive, handle, back off.
func (p *Poller) poll(ctx, work context.Context, h Handler) {
	recv := Backoff{Min: p.RetryMin, Max: p.RetryMax}
	nak := Backoff{Min: p.NakMin, Max: p.NakMax}
	for ctx.Err() == nil {
		out, err := p.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.QueueURL),
			MaxNumberOfMessages:         p.BatchSize,
			WaitTimeSeconds:             p.WaitTime,
			VisibilityTimeout:           int32(p.Visibility / time.Second),
			MessageAttributeNames:       p.MessageAttributeNames,
			MessageSystemAttributeNames: p.SystemAttributeNames,
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := recv.Next()
			p.Log.Warn("sqs receive failed; retrying", "err", DescribeErr(err), "retry_in", d.Round(time.Millisecond))
			Sleep(ctx, d)
			continue
		}
		recv.Reset()
		if len(out.Messages) == 0 {
			continue
		}
		failed := h(work, out.Messages)
		if len(failed) == 0 {
			nak.Reset()
			continue
		}
		// Handling failed (the journal is likely unavailable): the messages
		// come back after the nak delay; wait as long before taking more.
		d := nak.Next()
		p.ChangeVisibility(work, failed, func(types.Message) time.Duration { return d })
		Sleep(ctx, d)
	}
}

// Hold runs fn and, while it takes longer than half the visibility
// timeout, extends the visibility of msgs so that they do not reappear
// (and get handled twice) in the middle of it. It returns fn's error.
func (p *Poller) Hold(ctx context.Context, msgs []types.Message, fn func() error) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(p.Visibility / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.ChangeVisibility(ctx, msgs, func(types.Message) time.Duration { return p.Visibility })
			}
		}
	})
	err := fn()
	close(done)
	wg.Wait()
	return err
}

// Ingest hands events, the events of msgs in order (counts[i] of them
// for msgs[i]; nil counts means one each), to in in one call while it
// holds msgs (Hold), and deletes msgs once Ingest returned nil. acked are
// messages to delete without ingest (such as test events), deleted in any
// case. When the journal refuses the events as too large, each message's
// events are ingested alone, and a message too large on its own is
// rejected and refused. It returns the messages whose ingest failed
// otherwise; none of them was deleted.
//
// One Ingest call per receive batch: the journal writes the batch at once,
// which is cheaper than one write per message, and a failure leaves the
// whole batch on the queue to come back.
func (p *Poller) Ingest(ctx context.Context, in sources.Ingester, msgs, acked []types.Message, events []*event.Event, counts []int) (failed []types.Message) {
	if len(events) == 0 {
		p.deleteBatch(ctx, acked)
		return nil
	}
	err := p.Hold(ctx, msgs, func() error { return in.Ingest(ctx, events) })
	if err == nil {
		p.deleteBatch(ctx, append(acked, msgs...))
		return nil
	}
	p.deleteBatch(ctx, acked)
	switch {
	case errors.Is(err, sources.ErrTooLarge) && len(msgs) == 1:
		p.tooLarge(ctx, in, &msgs[0], events)
		return nil
	case errors.Is(err, sources.ErrTooLarge):
		return p.ingestEach(ctx, in, msgs, events, counts)
	}
	p.Log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(msgs), "err", err)
	return msgs
}

// ingestEach ingests the events of each message alone, after they were too
// large for the journal together, so that one large message does not hold
// the others back. It returns the messages whose ingest failed otherwise.
func (p *Poller) ingestEach(ctx context.Context, in sources.Ingester, msgs []types.Message, events []*event.Event, counts []int) (failed []types.Message) {
	var done []types.Message
	at := 0
	for i := range msgs {
		n := 1
		if counts != nil {
			n = counts[i]
		}
		evs := events[at : at+n]
		at += n
		err := p.Hold(ctx, msgs[i:i+1], func() error { return in.Ingest(ctx, evs) })
		switch {
		case err == nil:
			done = append(done, msgs[i])
		case errors.Is(err, sources.ErrTooLarge):
			p.tooLarge(ctx, in, &msgs[i], evs)
		default:
			failed = append(failed, msgs[i])
		}
	}
	p.deleteBatch(ctx, done)
	if len(failed) > 0 {
		p.Log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(failed))
	}
	return failed
}

// tooLarge rejects a message whose events are too large for the journal
// and leaves it on the queue for its redrive policy, like a malformed one.
func (p *Poller) tooLarge(ctx context.Context, in sources.Ingester, m *types.Message, evs []*event.Event) {
	in.Rejected(sources.ReasonTooLarge)
	p.Log.Warn("sqs message too large for the journal; left for the queue's redrive policy",
		"message_id", aws.ToString(m.MessageId), "ce_id", evs[0].ID(), "ce_type", evs[0].Type(), "ce_source", evs[0].Source(),
		"receive_count", ReceiveCount(m), "retry_in", p.RefusedDelay(*m))
	p.Refuse(ctx, []types.Message{*m})
}

// deleteBatch deletes msgs in one batch call. A failure is logged: the
// messages come back and are ingested again (at least once), with the same
// event ids.
func (p *Poller) deleteBatch(ctx context.Context, msgs []types.Message) {
	if len(msgs) == 0 {
		return
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msgs[i].ReceiptHandle}
	}
	out, err := p.Client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: entries})
	if err != nil {
		p.Log.Warn("sqs delete failed; the messages will come back and be ingested again", "messages", len(msgs), "err", DescribeErr(err))
		return
	}
	for _, f := range out.Failed {
		id := ""
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(msgs) {
			id = aws.ToString(msgs[i].MessageId)
		}
		p.Log.Warn("sqs delete failed; the message will come back and be ingested again", "message_id", id, "err", describeEntry(f))
	}
}

// ChangeVisibility sets each message's visibility timeout to delay(m),
// rounded up to whole seconds, within SQS's bounds. A failure is logged at
// debug level: the message then reappears after its current timeout,
// which is safe.
func (p *Poller) ChangeVisibility(ctx context.Context, msgs []types.Message, delay func(types.Message) time.Duration) {
	if len(msgs) == 0 {
		return
	}
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i := range msgs {
		secs := int32((delay(msgs[i]) + time.Second - 1) / time.Second)
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			ReceiptHandle:     msgs[i].ReceiptHandle,
			VisibilityTimeout: min(secs, int32(MaxVisibility/time.Second)),
		}
	}
	out, err := p.Client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: entries})
	if err != nil {
		p.Log.Debug("sqs change visibility failed", "messages", len(msgs), "err", DescribeErr(err))
		return
	}
	for _, f := range out.Failed {
		p.Log.Debug("sqs change visibility failed", "entry", aws.ToString(f.Id), "err", describeEntry(f))
	}
}

// Refuse leaves msgs on the queue, each hidden for RefusedDelay, for the
// queue's redrive policy to move to a dead-letter queue.
func (p *Poller) Refuse(ctx context.Context, msgs []types.Message) {
	p.ChangeVisibility(ctx, msgs, p.RefusedDelay)
}

// RefusedDelay is how long a refused message stays hidden (see
// RefusedDelay).
func (p *Poller) RefusedDelay(m types.Message) time.Duration { return RefusedDelay(p.Visibility, m) }

// RefusedDelay is how long a refused (malformed, too large) message stays
// hidden: the visibility timeout doubled with each receive, at most
// MaxRefusedDelay, so that it does not spin while it waits for the
// queue's redrive policy.
func RefusedDelay(visibility time.Duration, m types.Message) time.Duration {
	n := ReceiveCount(&m)
	d := visibility
	for i := 1; i < n && d < MaxRefusedDelay; i++ {
		d *= 2
	}
	return min(d, MaxRefusedDelay)
}

// ReceiveCount is the message's ApproximateReceiveCount (when asked for
// with the receive), at least 1.
func ReceiveCount(m *types.Message) int {
	n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// MaxErrLen bounds the error texts DescribeErr makes.
const MaxErrLen = 300

// DescribeErr is a one-line description of an SDK error, at most MaxErrLen
// bytes: the SQS error code (Code) and message, or the network error,
// without the SDK's operation and retry preamble.
func DescribeErr(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return text.Bounded(Code(ae.ErrorCode())+": "+ae.ErrorMessage(), MaxErrLen)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return text.Bounded(ue.Err.Error(), MaxErrLen)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return text.Bounded(err.Error(), MaxErrLen)
}

// describeEntry describes a failed entry of a batch call like DescribeErr.
func describeEntry(f types.BatchResultErrorEntry) string {
	return DescribeErr(&smithy.GenericAPIError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message)})
}

// CodeNonExistentQueue is the error code of a missing queue, as Code
// names it.
const CodeNonExistentQueue = "NonExistentQueue"

// Code is an SQS error code without the "AWS.SimpleQueueService." prefix
// of the query protocol, the JSON protocol's name of the missing-queue
// error mapped to the query one (CodeNonExistentQueue).
func Code(code string) string {
	code = strings.TrimPrefix(code, "AWS.SimpleQueueService.")
	if code == "QueueDoesNotExist" {
		return CodeNonExistentQueue
	}
	return code
}

// Backoff is the pollers' backoff (see internal/backoff).
type Backoff = backoff.Backoff

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
