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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/backoff"
	"github.com/junctionhq/junction/internal/sqspoll"
	"github.com/junctionhq/junction/internal/text"
	"github.com/junctionhq/junction/sources"
)

// Source is the sqs source. Run may be called once.
type Source struct {
	// poller consumes the queue; its backoffs also pace resolveSource.
	poller    *sqspoll.Poller
	eventType string
	log       *slog.Logger

	// source is the CloudEvents source of wrapped messages: the queue ARN,
	// or the queue URL when the ARN cannot be read. Set before polling.
	source string
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
	s.poller.Run(ctx, func(ctx context.Context, msgs []types.Message) []types.Message { return s.handle(ctx, in, msgs) })
	return nil
}

// resolveSource reads the queue's ARN for the source attribute of wrapped
// events, and warns when the queue has no redrive policy. While the queue
// cannot be reached it retries with backoff; when the service answers with
// an error that retrying will not fix (such as access denied), the queue
// URL is the source. It returns false when ctx ended first.
func (s *Source) resolveSource(ctx context.Context) bool {
	p := s.poller
	bo := backoff.Backoff{Min: p.RetryMin, Max: p.RetryMax}
	for {
		out, err := p.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(p.QueueURL),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn, types.QueueAttributeNameRedrivePolicy},
		})
		if err == nil {
			s.source = out.Attributes[string(types.QueueAttributeNameQueueArn)]
			if s.source == "" {
				s.source = p.QueueURL
			}
			if out.Attributes[string(types.QueueAttributeNameRedrivePolicy)] == "" {
				s.log.Warn("sqs queue has no redrive policy: malformed messages stay on it, retried with backoff, until its retention period ends")
			}
			s.log.Info("sqs source polling", "source", s.source, "pollers", p.Pollers)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if code := apiCode(err); code != "" && !retryableCode(code) && code != sqspoll.CodeNonExistentQueue {
			s.source = p.QueueURL
			s.log.Warn("cannot read the queue ARN; wrapped events get the queue URL as source", "err", sqspoll.DescribeErr(err))
			return true
		}
		d := bo.Next()
		s.log.Warn("sqs queue unreachable; retrying", "err", sqspoll.DescribeErr(err), "retry_in", d.Round(time.Millisecond))
		if !sqspoll.Sleep(ctx, d) {
			return false
		}
	}
}

// handle converts one received batch and has the poller ingest its events
// in one call and delete them. Malformed messages are rejected and left on
// the queue with a backoff. It returns the messages whose Ingest failed
// (none of them was deleted).
func (s *Source) handle(ctx context.Context, in sources.Ingester, msgs []types.Message) (failed []types.Message) {
	p := s.poller
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
	return p.Ingest(ctx, in, ok, nil, events, nil)
}

// malformedDelay is how long a malformed message stays hidden: the
// visibility timeout doubled with each receive, at most 15 minutes, so that
// it does not spin while it waits for the redrive policy.
func (s *Source) malformedDelay(m types.Message) time.Duration { return s.poller.RefusedDelay(m) }

// apiCode is the SQS error code of err, or "" when the service did not
// answer (network failure, timeout).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return sqspoll.Code(ae.ErrorCode())
	}
	return ""
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

// String describes the source for logs.
func (s *Source) String() string { return fmt.Sprintf("sqs %s", s.poller.QueueURL) }

// bounded makes s one line of at most maxErrLen bytes.
func bounded(s string) string { return text.Bounded(s, maxErrLen) }
