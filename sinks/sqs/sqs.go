// Package sqssink is the "sqs" sink: it sends each event as one message to
// an Amazon SQS queue (or any service that speaks the SQS JSON protocol),
// in structured mode (the CloudEvent JSON as the body) or binary mode (the
// data as the body, the attributes as message attributes).
//
// Deliver calls that wait at the same time are sent together in one
// SendMessageBatch (up to 10 messages); a lone event is sent at once, with
// no linger. Each Deliver gets the result of its own entry: nil once SQS
// has stored the message, else an error classified by the SQS error code.
package sqssink

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/internal/text"
	"github.com/junctionhq/junction/sinks"
)

const (
	// maxBatch is the most entries of one SendMessageBatch (an SQS limit).
	maxBatch = 10
	// maxBatchBytes bounds the payload of one batch: the limit of queues
	// whose maximum message size is the old default, 256 KiB. A message
	// larger than that is sent alone.
	maxBatchBytes = 256 << 10
	// maxInFlight bounds the SendMessageBatch calls in flight. Deliver calls
	// that arrive while all are busy wait and go out together in the next
	// batch.
	maxInFlight = 8
	// defaultSendTimeout bounds a batch whose callers have no deadline.
	defaultSendTimeout = 30 * time.Second
	// maxErrLen bounds error texts (they become junctionerror on dead
	// letters).
	maxErrLen = 300
)

// Sink is the sqs sink. It is safe for concurrent use.
type Sink struct {
	client     *sqs.Client
	queueURL   string
	name       string // queue name, for errors
	fifo       bool
	binary     bool
	group      *filters.String
	log        *slog.Logger
	transport  *awsconf.Transport
	reqs       chan *request
	closed     chan struct{}
	closeOnce  sync.Once
	dispatcher sync.WaitGroup
	inFlight   sync.WaitGroup
}

var _ sinks.BatchSink = (*Sink)(nil)

// request is one Deliver call waiting for its entry's result.
type request struct {
	ctx   context.Context
	start time.Time
	entry types.SendMessageBatchRequestEntry
	size  int
	done  chan error // buffered: the sender never blocks
}

func newSink(client *sqs.Client, queueURL string, binary bool, group *filters.String, log *slog.Logger) *Sink {
	s := &Sink{
		client:   client,
		queueURL: queueURL,
		name:     awsconf.QueueName(queueURL),
		fifo:     isFIFO(queueURL),
		binary:   binary,
		group:    group,
		log:      log,
		reqs:     make(chan *request),
		closed:   make(chan struct{}),
	}
	s.dispatcher.Go(s.dispatch)
	return s
}

// Deliver sends e and returns nil once SQS stored it. Failures are
// retryable (throttling, service errors, network, timeouts) or permanent
// (an event SQS refuses, a queue that does not exist); see classify. ctx's
// deadline bounds the attempt.
func (s *Sink) Deliver(ctx context.Context, e *event.Event) error {
	start := time.Now()
	entry, size, err := s.encode(e)
	if err != nil {
		return s.fail(sinks.Permanent(err), "%v", err)
	}
	r := &request{ctx: ctx, start: start, entry: entry, size: size, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return s.ctxError(ctx, start)
	case <-s.closed:
		return s.fail(sinks.Retryable(errSinkClosed, 0), "%v", errSinkClosed)
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The message may still be stored: the retry may duplicate it
		// (at least once).
		return s.ctxError(ctx, start)
	}
}

var errSinkClosed = errors.New("sink closed")

// DeliverBatch sends events with SendMessageBatch, in chunks of up to 10
// entries and 256 KiB (a larger message alone), up to 8 chunks at once
// (one after the other to a FIFO queue, to keep their order). Each event
// gets its own entry's result, classified as for Deliver: an entry that
// SQS refuses as the sender's fault is permanent, any other failure
// retryable. ctx bounds the whole batch.
func (s *Sink) DeliverBatch(ctx context.Context, events []*event.Event) []error {
	start := time.Now()
	errs := make([]error, len(events))
	reqs := make([]*request, len(events))
	var chunks [][]*request
	var chunk []*request
	size := 0
	for i, e := range events {
		entry, n, err := s.encode(e)
		if err != nil {
			errs[i] = s.fail(sinks.Permanent(err), "%v", err)
			continue
		}
		r := &request{ctx: ctx, start: start, entry: entry, size: n, done: make(chan error, 1)}
		reqs[i] = r
		if len(chunk) == maxBatch || len(chunk) > 0 && size+n > maxBatchBytes {
			chunks = append(chunks, chunk)
			chunk, size = nil, 0
		}
		chunk = append(chunk, r)
		size += n
	}
	if len(chunk) > 0 {
		chunks = append(chunks, chunk)
	}
	parallel := maxInFlight
	if s.fifo {
		parallel = 1
	}
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, c := range chunks {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			s.send(c)
		})
	}
	wg.Wait()
	for i, r := range reqs {
		if r == nil {
			continue
		}
		errs[i] = <-r.done
		if errs[i] != nil && errors.Is(errs[i], ctx.Err()) && ctx.Err() != nil {
			errs[i] = s.ctxError(ctx, start)
		}
	}
	return errs
}

// dispatch takes waiting requests into batches. It takes an in-flight slot
// first, then the first request, then every request already waiting, up to
// maxBatch entries and maxBatchBytes: a lone request goes out at once, and
// requests that arrive while every slot is busy wait together.
func (s *Sink) dispatch() {
	slots := make(chan struct{}, maxInFlight)
	var carry *request
	for {
		select {
		case slots <- struct{}{}:
		case <-s.closed:
			return
		}
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-s.reqs:
			case <-s.closed:
				return
			}
		}
		batch := []*request{first}
		size := first.size
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				if size+r.size > maxBatchBytes {
					carry = r
					break fill
				}
				batch = append(batch, r)
				size += r.size
			default:
				break fill
			}
		}
		s.inFlight.Add(1)
		go func() {
			defer s.inFlight.Done()
			defer func() { <-slots }()
			s.send(batch)
		}()
	}
}

// send sends one batch and hands each request its entry's result.
func (s *Sink) send(batch []*request) {
	live := batch[:0:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			// Its Deliver has returned already.
			r.done <- r.ctx.Err()
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := batchContext(live)
	defer cancel()
	entries := make([]types.SendMessageBatchRequestEntry, len(live))
	for i, r := range live {
		entries[i] = r.entry
		entries[i].Id = aws.String(strconv.Itoa(i))
	}
	out, err := s.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.queueURL), Entries: entries})
	if err != nil {
		if len(live) > 1 && batchLevel(apiCode(err)) {
			// The batch as a whole was refused (too long, for one): send
			// each entry alone so that each gets its own answer.
			for _, r := range live {
				s.send([]*request{r})
			}
			return
		}
		if timedOut(ctx, err) {
			for _, r := range live {
				r.done <- s.timeoutError(r.ctx, r.start, err)
			}
			return
		}
		ferr := s.callError(err)
		for _, r := range live {
			r.done <- ferr
		}
		return
	}
	answered := make([]bool, len(live))
	for _, ok := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(ok.Id)); err == nil && i >= 0 && i < len(live) && !answered[i] {
			answered[i] = true
			live[i].done <- nil
		}
	}
	for _, f := range out.Failed {
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(live) && !answered[i] {
			answered[i] = true
			code, msg := trimCode(aws.ToString(f.Code)), aws.ToString(f.Message)
			live[i].done <- s.fail(classify(code, f.SenderFault), "%s: %s", code, msg)
		}
	}
	for i, r := range live {
		if !answered[i] {
			r.done <- s.fail(sinks.Retryable(errors.New("no result for the entry"), 0), "SQS returned no result for the message")
		}
	}
}

// batchContext bounds a batch by the latest deadline of its requests, so
// that no caller's attempt is cut short by another's.
func batchContext(batch []*request) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range batch {
		dl, ok := r.ctx.Deadline()
		if !ok {
			latest = time.Now().Add(defaultSendTimeout)
			break
		}
		if dl.After(latest) {
			latest = dl
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// batchLevel reports whether code refuses a batch as a whole rather than one
// of its entries.
func batchLevel(code string) bool {
	switch code {
	case "BatchRequestTooLong", "BatchEntryIdsNotDistinct", "InvalidBatchEntryId", "TooManyEntriesInBatchRequest":
		return true
	}
	return false
}

// timedOut reports whether a call failed because its deadline passed.
func timedOut(ctx context.Context, err error) bool {
	var ae smithy.APIError
	return !errors.As(err, &ae) && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil)
}

// callError classifies an error of a whole SendMessageBatch call that is
// not a timeout.
func (s *Sink) callError(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := trimCode(ae.ErrorCode())
		var cls error
		switch {
		case retryableCode(code) || authCode(code):
			cls = sinks.Retryable(err, 0)
		case permanentCode(code):
			cls = sinks.Permanent(err)
		case ae.ErrorFault() == smithy.FaultClient:
			cls = sinks.Permanent(err)
		default:
			cls = sinks.Retryable(err, 0)
		}
		return s.fail(cls, "%s: %s", code, ae.ErrorMessage())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return s.fail(sinks.Retryable(err, 0), "%v", ue.Err)
	}
	return s.fail(sinks.Retryable(err, 0), "%v", err)
}

// ctxError is the error of a Deliver whose ctx ended first.
func (s *Sink) ctxError(ctx context.Context, start time.Time) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return s.timeoutError(ctx, start, ctx.Err())
	}
	return s.fail(sinks.Retryable(ctx.Err(), 0), "attempt cancelled")
}

// timeoutError says that the attempt that began at start ran out of time:
// its timeout is the attempt timeout (sinks.AttemptTimeout).
func (s *Sink) timeoutError(ctx context.Context, start time.Time, err error) error {
	return s.fail(sinks.Retryable(err, 0), "attempt timed out after %s (the delivery timeout)", sinks.AttemptTimeout(ctx, start))
}

// classify tells whether a failed entry with an SQS error code is worth
// retrying: throttling, service and credential errors are retried; an
// event SQS refuses (invalid contents, too long, a bad attribute) and a
// queue that does not exist are permanent; any other error is permanent
// when SQS says it is the sender's fault.
func classify(code string, senderFault bool) error {
	err := errors.New(code)
	switch {
	case retryableCode(code) || authCode(code):
		return sinks.Retryable(err, 0)
	case permanentCode(code), senderFault:
		return sinks.Permanent(err)
	}
	return sinks.Retryable(err, 0)
}

// SQS error codes, as the JSON protocol names them without the
// "AWS.SimpleQueueService." prefix of the query protocol.
const codeNonExistentQueue = "NonExistentQueue"

func trimCode(code string) string {
	code = strings.TrimPrefix(code, "AWS.SimpleQueueService.")
	if code == "QueueDoesNotExist" {
		return codeNonExistentQueue
	}
	return code
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return trimCode(ae.ErrorCode())
	}
	return ""
}

// retryableCode: the service is busy or failed; the same request may pass
// later.
func retryableCode(code string) bool {
	switch code {
	case "RequestThrottled", "ThrottlingException", "Throttling", "KmsThrottled",
		"InternalError", "InternalFailure", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException":
		return true
	}
	return false
}

// authCode: credentials or permissions are wrong. An operator can fix them
// without the events being lost, so they are retried.
func authCode(code string) bool {
	switch code {
	case "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
		"ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "MissingAuthenticationToken",
		"IncompleteSignature", "InvalidSecurity", "RequestExpired", "KmsAccessDenied", "KmsDisabled",
		"KmsInvalidState", "KmsNotFound", "KmsOptInRequired", "KmsInvalidKeyUsage":
		return true
	}
	return false
}

// permanentCode: the message or the queue is refused for good.
func permanentCode(code string) bool {
	switch code {
	case codeNonExistentQueue, "InvalidMessageContents", "InvalidParameterValue", "BatchRequestTooLong",
		"InvalidAttributeName", "InvalidAttributeValue", "UnsupportedOperation", "MissingParameter":
		return true
	}
	return false
}

// fail returns an error that reads "sqs QUEUE: msg" on one bounded line and
// unwraps to cls, which carries the classification.
func (s *Sink) fail(cls error, format string, args ...any) error {
	return &sinks.Failure{Msg: text.Bounded("sqs "+s.name+": "+fmt.Sprintf(format, args...), maxErrLen), Err: cls}
}

// Close stops the dispatcher and closes idle connections. No Deliver runs
// when Close is called.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.dispatcher.Wait()
	s.inFlight.Wait()
	if s.transport != nil {
		s.transport.CloseIdle()
	}
	return nil
}
