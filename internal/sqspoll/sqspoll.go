// Package sqspoll is the SQS consuming machinery shared by the sqs source
// and the s3 source's sqs transport: concurrent long polls, a backoff
// after failed receives, a grace period for the batch being handled when
// polling stops, visibility extended while a handler runs, batch deletes,
// and the visibility backoff of messages left on the queue (refused or
// failed). What a message means, and what is logged of it, is the
// source's.
package sqspoll

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// MaxVisibility is SQS's longest visibility timeout.
const MaxVisibility = 12 * time.Hour

// MaxRefusedDelay bounds the visibility given to a refused message.
const MaxRefusedDelay = 15 * time.Minute

// Handler handles one received batch under ctx, which ends a grace period
// after polling stops. It deletes the messages it accepted (Delete), hides
// the ones it refuses with a growing delay (Refuse), and returns the
// messages whose handling failed and that should come back soon: the
// poller hides them for the nak backoff and waits as long before receiving
// again.
type Handler func(ctx context.Context, msgs []types.Message) (failed []types.Message)

// Poller consumes one queue. Set its fields, then call Run once.
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
	// DescribeErr is a one-line, bounded description of an SDK error for
	// the log. A failed batch entry is described as the smithy API error
	// of its code and message.
	DescribeErr func(error) string
	// LogVisibilityEntries logs (at debug level) each entry of a
	// visibility change that SQS refused, not only a failed call.
	LogVisibilityEntries bool
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
			p.Log.Warn("sqs receive failed; retrying", "err", p.DescribeErr(err), "retry_in", d.Round(time.Millisecond))
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

// DeleteFailure is a message that a batch delete did not delete.
type DeleteFailure struct {
	// Entry is the batch entry's id; Message the message, nil when SQS
	// named an entry that was not sent.
	Entry   string
	Message *types.Message
	// Err describes SQS's error (DescribeErr).
	Err string
}

// Delete deletes msgs in one batch call. It returns the error of the call,
// or the entries SQS did not delete; the caller logs them (the messages
// come back and are handled again).
func (p *Poller) Delete(ctx context.Context, msgs []types.Message) ([]DeleteFailure, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msgs[i].ReceiptHandle}
	}
	out, err := p.Client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: entries})
	if err != nil {
		return nil, err
	}
	var failed []DeleteFailure
	for _, f := range out.Failed {
		d := DeleteFailure{Entry: aws.ToString(f.Id), Err: p.describeEntry(f)}
		if i, _ := strconv.Atoi(d.Entry); i >= 0 && i < len(msgs) {
			d.Message = &msgs[i]
		}
		failed = append(failed, d)
	}
	return failed, nil
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
		p.Log.Debug("sqs change visibility failed", "messages", len(msgs), "err", p.DescribeErr(err))
		return
	}
	if p.LogVisibilityEntries {
		for _, f := range out.Failed {
			p.Log.Debug("sqs change visibility failed", "entry", aws.ToString(f.Id), "err", p.describeEntry(f))
		}
	}
}

func (p *Poller) describeEntry(f types.BatchResultErrorEntry) string {
	return p.DescribeErr(&smithy.GenericAPIError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message)})
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

// Backoff is an exponential backoff with jitter, from Min doubling up to
// Max. The zero value of its state is reset.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next delay: between 75% and 100% of the step, so that
// pollers spread out.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	return b.cur - time.Duration(rand.Int64N(int64(b.cur/4)+1))
}

// Reset starts the backoff again from Min.
func (b *Backoff) Reset() { b.cur = 0 }

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
