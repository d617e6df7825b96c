package s3source

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

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
	client, err := newClient(ctx, c.QueueURL, c.Region, c.Endpoint, pollers+4)
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
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(q.grace, cancel) })
	defer stop()
	q.log.Info("s3 source polling", "pollers", q.pollers)
	var wg sync.WaitGroup
	for range q.pollers {
		wg.Go(func() { q.poll(ctx, work, in) })
	}
	wg.Wait()
	return nil
}

// poll is one long-poll loop: receive, convert, ingest, delete.
func (q *Queue) poll(ctx, work context.Context, in sources.Ingester) {
	recv := backoff{min: q.retryMin, max: q.retryMax}
	nak := backoff{min: q.nakMin, max: q.nakMax}
	for ctx.Err() == nil {
		out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(q.queueURL),
			MaxNumberOfMessages:         q.batchSize,
			WaitTimeSeconds:             q.waitTime,
			VisibilityTimeout:           int32(q.visibility / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := recv.next()
			q.log.Warn("sqs receive failed; retrying", "err", describeErr(err), "retry_in", d.Round(time.Millisecond))
			sleep(ctx, d)
			continue
		}
		recv.reset()
		if len(out.Messages) == 0 {
			continue
		}
		failed := q.handle(work, in, out.Messages)
		if len(failed) == 0 {
			nak.reset()
			continue
		}
		// Ingest failed (the journal is likely unavailable): the messages
		// come back after the delay; wait as long before taking more.
		d := nak.next()
		q.changeVisibility(work, failed, func(types.Message) time.Duration { return d })
		sleep(ctx, d)
	}
}

// handle converts a received batch, ingests the events of all its
// messages in one call, and deletes the messages (test events included).
// A malformed message is rejected and left on the queue, hidden for longer
// at each receive, for the queue's redrive policy. It returns the messages
// whose ingest failed; none of them was deleted.
func (q *Queue) handle(ctx context.Context, in sources.Ingester, msgs []types.Message) (failed []types.Message) {
	var (
		events []*event.Event
		ok     []types.Message // messages with events, in order
		counts []int           // events of each of ok
		acked  []types.Message // test events: delete without ingest
		bad    []types.Message // malformed
	)
	for i := range msgs {
		m := &msgs[i]
		evs, test, err := convert([]byte(aws.ToString(m.Body)), true)
		switch {
		case err != nil:
			bad = append(bad, *m)
			in.Rejected(sources.ReasonMalformed)
			q.log.Warn("malformed S3 notification in sqs message; left for the queue's redrive policy",
				"message_id", aws.ToString(m.MessageId), "reason", sources.OneLine(err.Error()),
				"receive_count", receiveCount(m), "retry_in", q.malformedDelay(*m))
		case test != nil:
			acked = append(acked, *m)
			q.log.Debug("s3:TestEvent acknowledged and dropped", "message_id", aws.ToString(m.MessageId), "bucket", test.bucket)
		default:
			events = append(events, evs...)
			ok = append(ok, *m)
			counts = append(counts, len(evs))
		}
	}
	if len(bad) > 0 {
		q.changeVisibility(ctx, bad, q.malformedDelay)
	}
	if len(events) == 0 {
		q.delete(ctx, acked)
		return nil
	}
	err := q.ingest(ctx, in, events, ok)
	switch {
	case err == nil:
		q.delete(ctx, append(acked, ok...))
		return nil
	case errors.Is(err, sources.ErrTooLarge):
		q.delete(ctx, acked)
		return q.ingestEach(ctx, in, events, ok, counts)
	}
	q.delete(ctx, acked)
	q.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(ok), "err", err)
	return ok
}

// ingestEach ingests the events of each message on its own, after the
// batch was too large for the journal. A message still too large is
// rejected and left for the redrive policy. It returns the messages whose
// ingest failed otherwise.
func (q *Queue) ingestEach(ctx context.Context, in sources.Ingester, events []*event.Event, msgs []types.Message, counts []int) (failed []types.Message) {
	var done []types.Message
	at := 0
	for i, n := range counts {
		evs := events[at : at+n]
		at += n
		err := q.ingest(ctx, in, evs, msgs[i:i+1])
		switch {
		case err == nil:
			done = append(done, msgs[i])
		case errors.Is(err, sources.ErrTooLarge):
			in.Rejected(sources.ReasonTooLarge)
			q.log.Warn("S3 notification too large for the journal; left for the queue's redrive policy",
				"message_id", aws.ToString(msgs[i].MessageId), "ce_id", evs[0].ID(), "ce_type", evs[0].Type(), "ce_source", evs[0].Source())
			q.changeVisibility(ctx, msgs[i:i+1], q.malformedDelay)
		default:
			failed = append(failed, msgs[i])
		}
	}
	q.delete(ctx, done)
	if len(failed) > 0 {
		q.log.Warn("ingest failed; the messages stay on the queue and come back", "messages", len(failed))
	}
	return failed
}

// ingest calls Ingest and, while it takes longer than half the visibility
// timeout, extends the messages' visibility so that they do not reappear
// in the middle of it.
func (q *Queue) ingest(ctx context.Context, in sources.Ingester, events []*event.Event, msgs []types.Message) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(q.visibility / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				q.changeVisibility(ctx, msgs, func(types.Message) time.Duration { return q.visibility })
			}
		}
	})
	err := in.Ingest(ctx, events)
	close(done)
	wg.Wait()
	return err
}

// delete deletes messages. A failed delete is logged: the message comes
// back and is ingested again (at least once), with the same event ids.
func (q *Queue) delete(ctx context.Context, msgs []types.Message) {
	if len(msgs) == 0 {
		return
	}
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msgs[i].ReceiptHandle}
	}
	out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.queueURL), Entries: entries})
	if err != nil {
		q.log.Warn("sqs delete failed; the messages will come back and be ingested again", "messages", len(msgs), "err", describeErr(err))
		return
	}
	for _, f := range out.Failed {
		q.log.Warn("sqs delete failed; the message will come back and be ingested again",
			"entry", aws.ToString(f.Id), "err", sources.OneLine(aws.ToString(f.Code)+": "+aws.ToString(f.Message)))
	}
}

// changeVisibility sets each message's visibility timeout to delay(m),
// within SQS's bounds. A failure is logged at debug level: the message then
// reappears after its current timeout, which is safe.
func (q *Queue) changeVisibility(ctx context.Context, msgs []types.Message, delay func(types.Message) time.Duration) {
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
	if _, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.queueURL), Entries: entries}); err != nil {
		q.log.Debug("sqs change visibility failed", "messages", len(msgs), "err", describeErr(err))
	}
}

// maxMalformedDelay bounds the visibility given to a malformed message.
const maxMalformedDelay = 15 * time.Minute

// malformedDelay is how long a malformed message stays hidden: the
// visibility timeout doubled with each receive, at most 15 minutes.
func (q *Queue) malformedDelay(m types.Message) time.Duration {
	d := q.visibility
	for i := 1; i < receiveCount(&m) && d < maxMalformedDelay; i++ {
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
