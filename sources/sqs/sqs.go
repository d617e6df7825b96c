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
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/sqspoll"
	"github.com/junctionhq/junction/internal/text"
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
	p := &sqspoll.Poller{
		Client:                s.client,
		QueueURL:              s.queueURL,
		Pollers:               s.pollers,
		BatchSize:             s.batchSize,
		WaitTime:              s.waitTime,
		Visibility:            s.visibility,
		MessageAttributeNames: []string{"All"},
		SystemAttributeNames:  receiveAttributes,
		RetryMin:              s.retryMin,
		RetryMax:              s.retryMax,
		NakMin:                s.nakMin,
		NakMax:                s.nakMax,
		Grace:                 s.grace,
		Log:                   s.log,
		DescribeErr:           describeErr,
		LogVisibilityEntries:  true,
	}
	p.Run(ctx, func(ctx context.Context, msgs []types.Message) []types.Message { return s.handle(ctx, p, in, msgs) })
	return nil
}

// resolveSource reads the queue's ARN for the source attribute of wrapped
// events, and warns when the queue has no redrive policy. While the queue
// cannot be reached it retries with backoff; when the service answers with
// an error that retrying will not fix (such as access denied), the queue
// URL is the source. It returns false when ctx ended first.
func (s *Source) resolveSource(ctx context.Context) bool {
	bo := sqspoll.Backoff{Min: s.retryMin, Max: s.retryMax}
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
		d := bo.Next()
		s.log.Warn("sqs queue unreachable; retrying", "err", describeErr(err), "retry_in", d.Round(time.Millisecond))
		if !sqspoll.Sleep(ctx, d) {
			return false
		}
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
func (s *Source) handle(ctx context.Context, p *sqspoll.Poller, in sources.Ingester, msgs []types.Message) (failed []types.Message) {
	events := make([]*event.Event, 0, len(msgs))
	ok := make([]types.Message, 0, len(msgs))
	var bad []types.Message
	for i := range msgs {
		m := &msgs[i]
		e, err := s.toEvent(m)
		if err != nil {
			bad = append(bad, *m)
			in.Rejected(sources.ReasonMalformed)
			s.log.Warn("malformed CloudEvent in sqs message; left for the queue's redrive policy",
				"message_id", aws.ToString(m.MessageId), "ce_id", err.id, "reason", err.reason,
				"receive_count", sqspoll.ReceiveCount(m), "retry_in", s.malformedDelay(*m))
			continue
		}
		events = append(events, e)
		ok = append(ok, *m)
	}
	if len(bad) > 0 {
		p.Refuse(ctx, bad)
	}
	if len(events) == 0 {
		return nil
	}
	err := p.Hold(ctx, ok, func() error { return in.Ingest(ctx, events) })
	if err == nil {
		s.delete(ctx, p, ok)
		return nil
	}
	if errors.Is(err, sources.ErrTooLarge) && len(events) > 1 {
		return s.ingestOneByOne(ctx, p, in, events, ok)
	}
	if errors.Is(err, sources.ErrTooLarge) {
		s.tooLarge(ctx, p, in, events[0], ok[0])
		return nil
	}
	s.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(ok), "err", err)
	return ok
}

// tooLarge rejects a message whose event is too large for the journal and
// leaves it on the queue for its redrive policy, like a malformed one.
func (s *Source) tooLarge(ctx context.Context, p *sqspoll.Poller, in sources.Ingester, e *event.Event, m types.Message) {
	in.Rejected(sources.ReasonTooLarge)
	s.log.Warn("sqs message too large for the journal; left for the queue's redrive policy",
		"message_id", aws.ToString(m.MessageId), "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source(),
		"receive_count", sqspoll.ReceiveCount(&m), "retry_in", s.malformedDelay(m))
	p.Refuse(ctx, []types.Message{m})
}

// ingestOneByOne ingests each event alone after a batch was too large for
// the journal, so that one large event does not hold the others back. It
// returns the messages whose ingest failed for another reason.
func (s *Source) ingestOneByOne(ctx context.Context, p *sqspoll.Poller, in sources.Ingester, events []*event.Event, msgs []types.Message) (failed []types.Message) {
	var done []types.Message
	for i, e := range events {
		err := p.Hold(ctx, msgs[i:i+1], func() error { return in.Ingest(ctx, events[i:i+1]) })
		switch {
		case err == nil:
			done = append(done, msgs[i])
		case errors.Is(err, sources.ErrTooLarge):
			s.tooLarge(ctx, p, in, e, msgs[i])
		default:
			failed = append(failed, msgs[i])
		}
	}
	s.delete(ctx, p, done)
	if len(failed) > 0 {
		s.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(failed))
	}
	return failed
}

// delete deletes ingested messages. A failed delete is logged: the message
// comes back and is ingested again (at least once).
func (s *Source) delete(ctx context.Context, p *sqspoll.Poller, msgs []types.Message) {
	failed, err := p.Delete(ctx, msgs)
	if err != nil {
		s.log.Warn("sqs delete failed; the ingested messages will come back and be ingested again", "messages", len(msgs), "err", describeErr(err))
		return
	}
	for _, f := range failed {
		id := ""
		if f.Message != nil {
			id = aws.ToString(f.Message.MessageId)
		}
		s.log.Warn("sqs delete failed; the ingested message will come back and be ingested again", "message_id", id, "err", f.Err)
	}
}

// malformedDelay is how long a malformed message stays hidden: the
// visibility timeout doubled with each receive, at most 15 minutes, so that
// it does not spin while it waits for the redrive policy.
func (s *Source) malformedDelay(m types.Message) time.Duration {
	return sqspoll.RefusedDelay(s.visibility, m)
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

// String describes the source for logs.
func (s *Source) String() string { return fmt.Sprintf("sqs %s", s.queueURL) }

// bounded makes s one line of at most maxErrLen bytes.
func bounded(s string) string { return text.Bounded(s, maxErrLen) }
