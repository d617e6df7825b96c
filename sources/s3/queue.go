package s3source

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
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
	poller *sqspoll.Poller
	log    *slog.Logger
}

var _ sources.Source = (*Queue)(nil)

func newQueue(ctx context.Context, c *Config, log *slog.Logger) (*Queue, error) {
	pollers := orDefault(c.Pollers, DefaultPollers)
	// The SDK retries once: the source has its own backoff.
	client, err := awsconf.NewSQS(ctx, c.QueueURL, awsconf.Options{Region: c.Region, Endpoint: c.Endpoint, MaxAttempts: 2, MaxIdleConns: pollers + 4})
	if err != nil {
		return nil, err
	}
	log = log.With("transport", TransportSQS, "queue", c.QueueURL)
	p := sqspoll.New(client, c.QueueURL, log)
	p.Pollers = pollers
	p.BatchSize = int32(orDefault(c.BatchSize, DefaultBatchSize))
	p.WaitTime = int32(orDefault(c.WaitTime, DefaultWaitTime) / time.Second)
	p.Visibility = orDefault(c.VisibilityTimeout, DefaultVisibilityTimeout)
	p.SystemAttributeNames = []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}
	return &Queue{poller: p, log: log}, nil
}

// String describes the source for logs.
func (q *Queue) String() string {
	return fmt.Sprintf("s3 notifications from sqs %s", q.poller.QueueURL)
}

// Run polls the queue until ctx ends, then returns nil. A batch being
// ingested when ctx ends may finish (ingest and delete) within a grace
// period, so that a shutdown does not cut it between ingest and delete.
func (q *Queue) Run(ctx context.Context, in sources.Ingester) error {
	q.log.Info("s3 source polling", "pollers", q.poller.Pollers)
	q.poller.Run(ctx, func(ctx context.Context, msgs []types.Message) []types.Message { return q.handle(ctx, in, msgs) })
	return nil
}

// handle converts a received batch and has the poller ingest the events
// of all its messages in one call and delete the messages (test events
// included). A malformed message is rejected and left on the queue, hidden
// for longer at each receive, for the queue's redrive policy. It returns
// the messages whose ingest failed; none of them was deleted.
func (q *Queue) handle(ctx context.Context, in sources.Ingester, msgs []types.Message) (failed []types.Message) {
	p := q.poller
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
	return p.Ingest(ctx, in, ok, acked, events, counts)
}
