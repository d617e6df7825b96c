// Package sqssource is the "sqs" source: it long-polls an Amazon SQS queue
// (or any service that speaks the SQS JSON protocol) and ingests each
// message as a CloudEvent. A message is deleted from the queue only after
// Ingest returned nil, so nothing is lost; a message whose ingest failed
// comes back after a backoff and is ingested again (at least once).
//
// A body that is a structured CloudEvent (JSON with specversion) is taken as
// is; a message with a ce-specversion message attribute is a binary-mode
// CloudEvent as the sqs sink writes it; any other message is wrapped into a
// CloudEvent. A malformed CloudEvent is counted, logged once per receive and
// left on the queue with a growing visibility timeout, for the queue's
// redrive policy to move it to a dead-letter queue.
package sqssource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sources"
)

// Source is the sqs source. Run may be called once.
type Source struct {
	client     *sqs.Client
	queueURL   string
	pollers    int
	batchSize  int32
	waitTime   int32 // seconds
	visibility time.Duration
	eventType  string
	log        *slog.Logger

	// source is the CloudEvents source of wrapped messages: the queue ARN,
	// or the queue URL when the ARN cannot be read. Set before polling.
	source string

	// retryMin and retryMax bound the backoff between failed receives.
	retryMin, retryMax time.Duration
	// nakMin and nakMax bound the delay before messages whose ingest
	// failed are received again.
	nakMin, nakMax time.Duration
	// grace is how long a batch being ingested when Run's context ends may
	// still take to be ingested and deleted.
	grace time.Duration
}

var _ sources.Source = (*Source)(nil)

// receiveAttributes are the system attributes asked for with each message.
var receiveAttributes = []types.MessageSystemAttributeName{
	types.MessageSystemAttributeNameSentTimestamp,
	types.MessageSystemAttributeNameApproximateReceiveCount,
}

// Run consumes the queue with the configured number of long polls until ctx
// ends, then returns nil. A batch being ingested when ctx ends may finish
// (ingest and delete) within a short grace period.
func (s *Source) Run(ctx context.Context, in sources.Ingester) error {
	if !s.resolveSource(ctx) {
		return nil
	}
	// Ingest and delete of a received batch run under work, which ends a
	// grace period after ctx, so that a shutdown does not cut a batch
	// between its ingest and its delete (which would mean duplicates).
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(s.grace, cancel) })
	defer stop()

	var wg sync.WaitGroup
	for range s.pollers {
		wg.Go(func() { s.poll(ctx, work, in) })
	}
	wg.Wait()
	return nil
}

// resolveSource reads the queue's ARN for the source attribute of wrapped
// events, and warns when the queue has no redrive policy. While the queue
// cannot be reached it retries with backoff; when the service answers with
// an error that retrying will not fix (such as access denied), the queue
// URL is the source. It returns false when ctx ended first.
func (s *Source) resolveSource(ctx context.Context) bool {
	bo := backoff{min: s.retryMin, max: s.retryMax}
	for {
		out, err := s.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(s.queueURL),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn, types.QueueAttributeNameRedrivePolicy},
		})
		if err == nil {
			s.source = out.Attributes[string(types.QueueAttributeNameQueueArn)]
			if s.source == "" {
				s.source = s.queueURL
			}
			if out.Attributes[string(types.QueueAttributeNameRedrivePolicy)] == "" {
				s.log.Warn("sqs queue has no redrive policy: malformed messages stay on it, retried with backoff, until its retention period ends")
			}
			s.log.Info("sqs source polling", "source", s.source, "pollers", s.pollers)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if code := apiCode(err); code != "" && !retryableCode(code) && code != codeNonExistentQueue {
			s.source = s.queueURL
			s.log.Warn("cannot read the queue ARN; wrapped events get the queue URL as source", "err", describeErr(err))
			return true
		}
		d := bo.next()
		s.log.Warn("sqs queue unreachable; retrying", "err", describeErr(err), "retry_in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return false
		}
	}
}

// poll is one long-poll loop: receive, ingest, delete.
func (s *Source) poll(ctx, work context.Context, in sources.Ingester) {
	recvBackoff := backoff{min: s.retryMin, max: s.retryMax}
	nakBackoff := backoff{min: s.nakMin, max: s.nakMax}
	for ctx.Err() == nil {
		out, err := s.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(s.queueURL),
			MaxNumberOfMessages:         s.batchSize,
			WaitTimeSeconds:             s.waitTime,
			VisibilityTimeout:           int32(s.visibility / time.Second),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: receiveAttributes,
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := recvBackoff.next()
			s.log.Warn("sqs receive failed; retrying", "err", describeErr(err), "retry_in", d.Round(time.Millisecond))
			sleep(ctx, d)
			continue
		}
		recvBackoff.reset()
		if len(out.Messages) == 0 {
			continue
		}
		failed := s.handle(work, in, out.Messages)
		if len(failed) == 0 {
			nakBackoff.reset()
			continue
		}
		// Ingest failed: the messages come back after the nak delay; wait
		// as long before taking more, as the journal is likely unavailable.
		d := nakBackoff.next()
		s.changeVisibility(work, failed, func(types.Message) time.Duration { return d })
		sleep(ctx, d)
	}
}

// handle converts one received batch, ingests its events in one call and
// deletes them. Malformed messages are rejected and left on the queue with
// a backoff. It returns the messages whose Ingest failed (none of them was
// deleted).
//
// One Ingest call per receive batch: the journal writes the batch at once,
// which is cheaper than one write per message, and a failure leaves the
// whole batch on the queue to come back; only an event too large for the
// journal is isolated by ingesting the batch's events one by one.
func (s *Source) handle(ctx context.Context, in sources.Ingester, msgs []types.Message) (failed []types.Message) {
	events := make([]*event.Event, 0, len(msgs))
	ok := make([]types.Message, 0, len(msgs))
	var bad []types.Message
	for i := range msgs {
		m := &msgs[i]
		e, err := s.toEvent(m)
		if err != nil {
			bad = append(bad, *m)
			in.Rejected("malformed")
			s.log.Warn("malformed CloudEvent in sqs message; left for the queue's redrive policy",
				"message_id", aws.ToString(m.MessageId), "ce_id", err.id, "reason", err.reason,
				"receive_count", receiveCount(m), "retry_in", s.malformedDelay(*m))
			continue
		}
		events = append(events, e)
		ok = append(ok, *m)
	}
	if len(bad) > 0 {
		s.changeVisibility(ctx, bad, s.malformedDelay)
	}
	if len(events) == 0 {
		return nil
	}
	err := s.ingest(ctx, in, events, ok)
	if err == nil {
		s.delete(ctx, ok)
		return nil
	}
	if errors.Is(err, sources.ErrTooLarge) && len(events) > 1 {
		return s.ingestOneByOne(ctx, in, events, ok)
	}
	if errors.Is(err, sources.ErrTooLarge) {
		s.tooLarge(ctx, in, events[0], ok[0])
		return nil
	}
	s.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(ok), "err", err)
	return ok
}

// tooLarge rejects a message whose event is too large for the journal and
// leaves it on the queue for its redrive policy, like a malformed one.
func (s *Source) tooLarge(ctx context.Context, in sources.Ingester, e *event.Event, m types.Message) {
	in.Rejected("too_large")
	s.log.Warn("sqs message too large for the journal; left for the queue's redrive policy",
		"message_id", aws.ToString(m.MessageId), "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source(),
		"receive_count", receiveCount(&m), "retry_in", s.malformedDelay(m))
	s.changeVisibility(ctx, []types.Message{m}, s.malformedDelay)
}

// ingestOneByOne ingests each event alone after a batch was too large for
// the journal, so that one large event does not hold the others back. It
// returns the messages whose ingest failed for another reason.
func (s *Source) ingestOneByOne(ctx context.Context, in sources.Ingester, events []*event.Event, msgs []types.Message) (failed []types.Message) {
	var done []types.Message
	for i, e := range events {
		err := s.ingest(ctx, in, events[i:i+1], msgs[i:i+1])
		switch {
		case err == nil:
			done = append(done, msgs[i])
		case errors.Is(err, sources.ErrTooLarge):
			s.tooLarge(ctx, in, e, msgs[i])
		default:
			failed = append(failed, msgs[i])
		}
	}
	s.delete(ctx, done)
	if len(failed) > 0 {
		s.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(failed))
	}
	return failed
}

// ingest calls Ingest and, while it takes longer than half the visibility
// timeout, extends the messages' visibility so that they do not reappear
// (and get ingested twice) in the middle of it.
func (s *Source) ingest(ctx context.Context, in sources.Ingester, events []*event.Event, msgs []types.Message) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(s.visibility / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.changeVisibility(ctx, msgs, func(types.Message) time.Duration { return s.visibility })
			}
		}
	})
	err := in.Ingest(ctx, events)
	close(done)
	wg.Wait()
	return err
}

// delete deletes ingested messages. A failed delete is logged: the message
// comes back and is ingested again (at least once).
func (s *Source) delete(ctx context.Context, msgs []types.Message) {
	if len(msgs) == 0 {
		return
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msgs[i].ReceiptHandle}
	}
	out, err := s.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.queueURL), Entries: entries})
	if err != nil {
		s.log.Warn("sqs delete failed; the ingested messages will come back and be ingested again", "messages", len(msgs), "err", describeErr(err))
		return
	}
	for _, f := range out.Failed {
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		id := ""
		if i >= 0 && i < len(msgs) {
			id = aws.ToString(msgs[i].MessageId)
		}
		s.log.Warn("sqs delete failed; the ingested message will come back and be ingested again",
			"message_id", id, "err", bounded(trimCode(aws.ToString(f.Code))+": "+aws.ToString(f.Message)))
	}
}

// changeVisibility sets each message's visibility timeout to delay(m),
// within SQS's bounds. Failures are logged at debug level: the message
// then reappears after its current timeout, which is safe.
func (s *Source) changeVisibility(ctx context.Context, msgs []types.Message, delay func(types.Message) time.Duration) {
	if len(msgs) == 0 {
		return
	}
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i := range msgs {
		secs := int32((delay(msgs[i]) + time.Second - 1) / time.Second)
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			ReceiptHandle:     msgs[i].ReceiptHandle,
			VisibilityTimeout: min(secs, int32(maxVisibility/time.Second)),
		}
	}
	out, err := s.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(s.queueURL), Entries: entries})
	if err != nil {
		s.log.Debug("sqs change visibility failed", "messages", len(msgs), "err", describeErr(err))
		return
	}
	for _, f := range out.Failed {
		s.log.Debug("sqs change visibility failed", "entry", aws.ToString(f.Id), "err", bounded(trimCode(aws.ToString(f.Code))+": "+aws.ToString(f.Message)))
	}
}

// maxMalformedDelay bounds the visibility given to a malformed message.
const maxMalformedDelay = 15 * time.Minute

// malformedDelay is how long a malformed message stays hidden: the
// visibility timeout doubled with each receive, at most 15 minutes, so that
// it does not spin while it waits for the redrive policy.
func (s *Source) malformedDelay(m types.Message) time.Duration {
	n := receiveCount(&m)
	d := s.visibility
	for i := 1; i < n && d < maxMalformedDelay; i++ {
		d *= 2
	}
	return min(d, maxMalformedDelay)
}

func receiveCount(m *types.Message) int {
	n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// backoff is an exponential backoff with jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	// Between 75% and 100% of the step, so that pollers spread out.
	return b.cur - time.Duration(rand.Int64N(int64(b.cur/4)+1))
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// SQS error codes, as the JSON protocol names them without the
// "AWS.SimpleQueueService." prefix of the query protocol.
const codeNonExistentQueue = "NonExistentQueue"

// apiCode is the SQS error code of err, or "" when the service did not
// answer (network failure, timeout).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return trimCode(ae.ErrorCode())
	}
	return ""
}

// trimCode removes the query protocol's prefix and maps the JSON
// protocol's name of the missing-queue error to the query one.
func trimCode(code string) string {
	code = strings.TrimPrefix(code, "AWS.SimpleQueueService.")
	if code == "QueueDoesNotExist" {
		return codeNonExistentQueue
	}
	return code
}

// retryableCode reports whether an SQS error code is transient.
func retryableCode(code string) bool {
	switch code {
	case "RequestThrottled", "ThrottlingException", "Throttling", "KmsThrottled",
		"InternalError", "InternalFailure", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException":
		return true
	}
	return false
}

// maxErrLen bounds error texts in logs.
const maxErrLen = 300

// describeErr is a one-line, bounded description of an SDK error: the SQS
// error code and message, or the network error, without the SDK's
// operation and retry preamble.
func describeErr(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return bounded(trimCode(ae.ErrorCode()) + ": " + ae.ErrorMessage())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return bounded(ue.Err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return bounded(err.Error())
}

// bounded makes s one line of at most maxErrLen bytes.
func bounded(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7F {
			return ' '
		}
		return r
	}, s)
	if len(s) <= maxErrLen {
		return s
	}
	cut := maxErrLen - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// String describes the source for logs.
func (s *Source) String() string { return fmt.Sprintf("sqs %s", s.queueURL) }
