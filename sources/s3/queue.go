package s3source

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

	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/internal/s3event"
	"github.com/junctionhq/junction/internal/sqspoll"
	"github.com/junctionhq/junction/sources"
)

// Queue is the s3 source with transport sqs: it long-polls the SQS queue
// that S3 (directly, or through an SNS topic) writes notifications to. A
// message is deleted only after Ingest returned nil for all of its records.
// Run may be called once.
type Queue struct {
	client     *sqs.Client
	queueURL   string
	pollers    int
	batchSize  int32
	waitTime   int32 // seconds
	visibility time.Duration
	log        *slog.Logger

	// retryMin and retryMax bound the backoff between failed receives;
	// nakMin and nakMax the delay before messages whose ingest failed come
	// back; grace is how long a batch being ingested when Run's context
	// ends may still take to be ingested and deleted.
	retryMin, retryMax time.Duration
	nakMin, nakMax     time.Duration
	grace              time.Duration
}

var _ sources.Source = (*Queue)(nil)

func newQueue(ctx context.Context, c *Config, log *slog.Logger) (*Queue, error) {
	pollers := orDefault(c.Pollers, DefaultPollers)
	// The SDK retries once: the source has its own backoff.
	client, err := awsconf.NewSQS(ctx, c.QueueURL, awsconf.Options{Region: c.Region, Endpoint: c.Endpoint, MaxAttempts: 2, MaxIdleConns: pollers + 4})
	if err != nil {
		return nil, err
	}
	return &Queue{
		client:     client,
		queueURL:   c.QueueURL,
		pollers:    pollers,
		batchSize:  int32(orDefault(c.BatchSize, DefaultBatchSize)),
		waitTime:   int32(orDefault(c.WaitTime, DefaultWaitTime) / time.Second),
		visibility: orDefault(c.VisibilityTimeout, DefaultVisibilityTimeout),
		log:        log.With("transport", TransportSQS, "queue", c.QueueURL),
		retryMin:   100 * time.Millisecond,
		retryMax:   30 * time.Second,
		nakMin:     time.Second,
		nakMax:     30 * time.Second,
		grace:      10 * time.Second,
	}, nil
}

// String describes the source for logs.
func (q *Queue) String() string { return fmt.Sprintf("s3 notifications from sqs %s", q.queueURL) }

// Run polls the queue until ctx ends, then returns nil. A batch being
// ingested when ctx ends may finish (ingest and delete) within a grace
// period, so that a shutdown does not cut it between ingest and delete.
func (q *Queue) Run(ctx context.Context, in sources.Ingester) error {
	p := &sqspoll.Poller{
		Client:               q.client,
		QueueURL:             q.queueURL,
		Pollers:              q.pollers,
		BatchSize:            q.batchSize,
		WaitTime:             q.waitTime,
		Visibility:           q.visibility,
		SystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		RetryMin:             q.retryMin,
		RetryMax:             q.retryMax,
		NakMin:               q.nakMin,
		NakMax:               q.nakMax,
		Grace:                q.grace,
		Log:                  q.log,
		DescribeErr:          describeErr,
	}
	q.log.Info("s3 source polling", "pollers", q.pollers)
	p.Run(ctx, func(ctx context.Context, msgs []types.Message) []types.Message { return q.handle(ctx, p, in, msgs) })
	return nil
}

// handle converts a received batch, ingests the events of all its
// messages in one call, and deletes the messages (test events included).
// A malformed message is rejected and left on the queue, hidden for longer
// at each receive, for the queue's redrive policy. It returns the messages
// whose ingest failed; none of them was deleted.
func (q *Queue) handle(ctx context.Context, p *sqspoll.Poller, in sources.Ingester, msgs []types.Message) (failed []types.Message) {
	var (
		events []*event.Event
		ok     []types.Message // messages with events, in order
		counts []int           // events of each of ok
		acked  []types.Message // test events: delete without ingest
		bad    []types.Message // malformed
	)
	for i := range msgs {
		m := &msgs[i]
		evs, test, err := s3event.Convert([]byte(aws.ToString(m.Body)), true)
		switch {
		case err != nil:
			bad = append(bad, *m)
			in.Rejected(sources.ReasonMalformed)
			q.log.Warn("malformed S3 notification in sqs message; left for the queue's redrive policy",
				"message_id", aws.ToString(m.MessageId), "reason", sources.OneLine(err.Error()),
				"receive_count", sqspoll.ReceiveCount(m), "retry_in", p.RefusedDelay(*m))
		case test != nil:
			acked = append(acked, *m)
			q.log.Debug("s3:TestEvent acknowledged and dropped", "message_id", aws.ToString(m.MessageId), "bucket", test.Bucket)
		default:
			events = append(events, evs...)
			ok = append(ok, *m)
			counts = append(counts, len(evs))
		}
	}
	if len(bad) > 0 {
		p.Refuse(ctx, bad)
	}
	if len(events) == 0 {
		q.delete(ctx, p, acked)
		return nil
	}
	err := p.Hold(ctx, ok, func() error { return in.Ingest(ctx, events) })
	switch {
	case err == nil:
		q.delete(ctx, p, append(acked, ok...))
		return nil
	case errors.Is(err, sources.ErrTooLarge):
		q.delete(ctx, p, acked)
		return q.ingestEach(ctx, p, in, events, ok, counts)
	}
	q.delete(ctx, p, acked)
	q.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(ok), "err", err)
	return ok
}

// ingestEach ingests the events of each message on its own, after the
// batch was too large for the journal. A message still too large is
// rejected and left for the redrive policy. It returns the messages whose
// ingest failed otherwise.
func (q *Queue) ingestEach(ctx context.Context, p *sqspoll.Poller, in sources.Ingester, events []*event.Event, msgs []types.Message, counts []int) (failed []types.Message) {
	var done []types.Message
	at := 0
	for i, n := range counts {
		evs := events[at : at+n]
		at += n
		err := p.Hold(ctx, msgs[i:i+1], func() error { return in.Ingest(ctx, evs) })
		switch {
		case err == nil:
			done = append(done, msgs[i])
		case errors.Is(err, sources.ErrTooLarge):
			in.Rejected(sources.ReasonTooLarge)
			q.log.Warn("S3 notification too large for the journal; left for the queue's redrive policy",
				"message_id", aws.ToString(msgs[i].MessageId), "ce_id", evs[0].ID(), "ce_type", evs[0].Type(), "ce_source", evs[0].Source())
			p.Refuse(ctx, msgs[i:i+1])
		default:
			failed = append(failed, msgs[i])
		}
	}
	q.delete(ctx, p, done)
	if len(failed) > 0 {
		q.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(failed))
	}
	return failed
}

// delete deletes messages. A failed delete is logged: the message comes
// back and is ingested again (at least once), with the same event ids.
func (q *Queue) delete(ctx context.Context, p *sqspoll.Poller, msgs []types.Message) {
	failed, err := p.Delete(ctx, msgs)
	if err != nil {
		q.log.Warn("sqs delete failed; the messages will come back and be ingested again", "messages", len(msgs), "err", describeErr(err))
		return
	}
	for _, f := range failed {
		q.log.Warn("sqs delete failed; the message will come back and be ingested again", "entry", f.Entry, "err", f.Err)
	}
}

// describeErr is a one-line, bounded description of an SDK error: the
// service's error code and message, or the network error, without the
// SDK's operation and retry preamble.
func describeErr(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return sources.OneLine(strings.TrimPrefix(ae.ErrorCode(), "AWS.SimpleQueueService.") + ": " + ae.ErrorMessage())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return sources.OneLine(ue.Err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return sources.OneLine(err.Error())
}
