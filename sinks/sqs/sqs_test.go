package sqssink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/awsconf"
	"github.com/junctionhq/junction/internal/sqstest"
	"github.com/junctionhq/junction/sinks"
)

func testEvent(t testing.TB, id string) *event.Event {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetSource("/orders/eu")
	e.SetType("com.example.order.created")
	e.SetSubject("order-42")
	e.SetTime(time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC))
	e.SetDataSchema("https://example.com/order.json")
	e.SetExtension("tenant", "acme corp")
	e.SetExtension("attempt", 3)
	e.SetExtension("vip", true)
	if err := e.SetData(event.ApplicationJSON, map[string]any{"amount": 150}); err != nil {
		t.Fatal(err)
	}
	return &e
}

func TestDeliverBinary(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "binary")
	s := build(t, q, func(c *Config) { c.Format = FormatBinary })
	e := testEvent(t, "evt-2")
	e.SetExtension("vip", nil) // 10 attributes: the most SQS takes
	if err := s.Deliver(deliverCtx(t), e); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	msgs := receive(t, c, q, 1)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	if *msgs[0].Body != `{"amount":150}` {
		t.Errorf("body %s, want the data", *msgs[0].Body)
	}
	want := map[string][2]string{
		"ce-specversion": {"String", "1.0"},
		"ce-id":          {"String", "evt-2"},
		"ce-source":      {"String", "/orders/eu"},
		"ce-type":        {"String", "com.example.order.created"},
		"ce-subject":     {"String", "order-42"},
		"ce-time":        {"String", "2024-05-06T07:08:09.123456789Z"},
		"ce-dataschema":  {"String", "https://example.com/order.json"},
		"content-type":   {"String", "application/json"},
		"ce-tenant":      {"String", "acme corp"},
		"ce-attempt":     {"Number", "3"},
	}
	got := msgs[0].MessageAttributes
	if len(got) != len(want) {
		t.Errorf("%d attributes, want %d", len(got), len(want))
	}
	for k, w := range want {
		v, ok := got[k]
		if !ok || aws.ToString(v.DataType) != w[0] || aws.ToString(v.StringValue) != w[1] {
			t.Errorf("attribute %s: got %s %q, want %s %q", k, aws.ToString(v.DataType), aws.ToString(v.StringValue), w[0], w[1])
		}
	}
}

func TestBinaryRefusals(t *testing.T) {
	q := "http://127.0.0.1:4566/000000000000/never-called"
	s := newSink(nil, q, true, nil, nil)
	defer s.Close()
	tooMany := testEvent(t, "evt-3") // 11 attributes with dataschema
	noData := testEvent(t, "evt-4")
	noData.DataEncoded = nil
	noData.SetDataSchema("")
	binData := testEvent(t, "evt-5")
	binData.SetDataSchema("")
	binData.SetData("application/octet-stream", []byte{0xff, 0x00, 0x01})
	binData.SetExtension("vip", true)
	for _, tc := range []struct {
		e    *event.Event
		want string
	}{
		{tooMany, "sqs never-called: binary format: the event has 11 attributes and SQS takes at most 10 message attributes; use format: structured"},
		{noData, "sqs never-called: binary format: the event has no data and an SQS body cannot be empty; use format: structured"},
		{binData, "sqs never-called: binary format: the data is not text SQS accepts in a body (UTF-8 without control characters); use format: structured, which base64-encodes binary data"},
	} {
		err := s.Deliver(context.Background(), tc.e)
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
		if perm, _ := sinks.Classify(err); !perm {
			t.Errorf("%v: not permanent", err)
		}
	}
}

func TestDeliverFIFO(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "orders.fifo")
	s := build(t, q, func(c *Config) {
		c.MessageGroupID = config.Expr{Src: "subject ?? source"}
	})
	e := testEvent(t, "evt-6")
	e2 := testEvent(t, "id with spaces ✓")
	e2.SetSubject("")
	for _, ev := range []*event.Event{e, e, e2} { // e twice: deduplicated
		if err := s.Deliver(deliverCtx(t), ev); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	msgs := receive(t, c, q, 2)
	if n := len(msgs) + sqstest.DepthAll(t, c, q); n != 2 {
		t.Fatalf("%d messages, want 2 (the repeated event deduplicated)", n)
	}
	byGroup := map[string]string{}
	for _, m := range msgs {
		byGroup[m.Attributes["MessageGroupId"]] = m.Attributes["MessageDeduplicationId"]
	}
	if byGroup["order-42"] != "evt-6" || byGroup["/orders/eu"] != dedupID("id with spaces ✓") || len(byGroup["/orders/eu"]) != 64 {
		t.Errorf("group → dedup id: %v", byGroup)
	}
	// A group expression that yields nil is the event's fault: permanent.
	s2 := build(t, q, func(c *Config) { c.MessageGroupID = config.Expr{Src: "data.customer"} })
	err := s2.Deliver(deliverCtx(t), e)
	if perm, _ := sinks.Classify(err); err == nil || !perm || err.Error() != "sqs "+awsconf.QueueName(q)+": evaluate messageGroupId: the expression yielded nil" {
		t.Errorf("got %v (permanent %v)", err, perm)
	}
}

// countingProxy forwards to the SQS server and counts SendMessageBatch
// calls and their entries.
func countingProxy(t *testing.T) (string, *atomic.Int64, *atomic.Int64) {
	u, _ := url.Parse(endpoint())
	rp := httputil.NewSingleHostReverseProxy(u)
	var calls, entries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "AmazonSQS.SendMessageBatch" {
			calls.Add(1)
			body, _ := httputil.DumpRequest(r, true)
			entries.Add(int64(strings.Count(string(body), `"MessageBody"`)))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &calls, &entries
}

func TestConcurrentDeliversAreBatched(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "batch")
	proxyURL, calls, entries := countingProxy(t)
	s := build(t, q, func(c *Config) { c.Endpoint = proxyURL })
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- s.Deliver(deliverCtx(t), testEvent(t, fmt.Sprintf("evt-%d", i))) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if entries.Load() != n {
		t.Errorf("%d entries sent, want %d", entries.Load(), n)
	}
	if calls.Load() >= n/2 {
		t.Errorf("%d SendMessageBatch calls for %d concurrent deliveries: not batched", calls.Load(), n)
	}
	t.Logf("%d deliveries in %d SendMessageBatch calls", n, calls.Load())
	ids := map[string]int{}
	for _, m := range receive(t, c, q, n) {
		var e event.Event
		if err := json.Unmarshal([]byte(*m.Body), &e); err != nil {
			t.Fatal(err)
		}
		ids[e.ID()]++
	}
	if len(ids) != n {
		a, _ := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: []types.QueueAttributeName{"All"}})
		t.Errorf("%d distinct events received, want %d; queue: %v", len(ids), n, a.Attributes)
	}
}

func TestLoneDeliverIsNotDelayed(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "lone")
	s := build(t, q, nil)
	s.Deliver(deliverCtx(t), testEvent(t, "warm-up"))
	var worst time.Duration
	for i := range 20 {
		start := time.Now()
		if err := s.Deliver(deliverCtx(t), testEvent(t, fmt.Sprint("lone-", i))); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest lone delivery: %v", worst)
	if worst > 500*time.Millisecond {
		t.Errorf("a lone delivery took %v", worst)
	}
}

func TestPerEntryResults(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "entries")
	s := build(t, q, nil)
	// Bodies built by hand: the sink itself never sends control characters,
	// so this is the way to make SQS refuse one entry of a batch.
	bodies := []string{"ok-1", "bad\x01", "ok-2"}
	var batch []*request
	for _, b := range bodies {
		batch = append(batch, &request{ctx: deliverCtx(t), entry: types.SendMessageBatchRequestEntry{MessageBody: aws.String(b)}, size: len(b), done: make(chan error, 1)})
	}
	s.send(batch)
	for i, r := range batch {
		err := <-r.done
		if bodies[i] == "bad\x01" {
			perm, _ := sinks.Classify(err)
			if err == nil || !perm || !strings.HasPrefix(err.Error(), "sqs "+awsconf.QueueName(q)+": InvalidMessageContents: ") {
				t.Errorf("bad entry: %v (permanent %v)", err, perm)
			}
			continue
		}
		if err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
	}
	if got := receive(t, c, q, 2); len(got) != 2 {
		t.Errorf("%d messages on the queue, want 2", len(got))
	}
}

func TestTooLongIsPermanent(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "long")
	s := build(t, q, nil)
	big := testEvent(t, "big")
	big.SetData("text/plain", strings.Repeat("x", 1100<<10))
	var wg sync.WaitGroup
	var bigErr error
	small := make([]error, 5)
	wg.Go(func() { bigErr = s.Deliver(deliverCtx(t), big) })
	for i := range small {
		wg.Go(func() { small[i] = s.Deliver(deliverCtx(t), testEvent(t, fmt.Sprint("small-", i))) })
	}
	wg.Wait()
	if perm, _ := sinks.Classify(bigErr); bigErr == nil || !perm {
		t.Errorf("too long: %v (permanent %v), want permanent", bigErr, perm)
	} else if strings.Contains(bigErr.Error(), "xxxx") || len(bigErr.Error()) > maxErrLen || !strings.HasPrefix(bigErr.Error(), "sqs "+awsconf.QueueName(q)+": ") {
		t.Errorf("error text: %.400s", bigErr)
	}
	for i, err := range small {
		if err != nil {
			t.Errorf("small %d: %v", i, err)
		}
	}
}

func TestMissingQueueIsPermanent(t *testing.T) {
	broker(t)
	s := build(t, endpoint()+"/000000000000/does-not-exist-"+suffix(), nil)
	err := s.Deliver(deliverCtx(t), testEvent(t, "x"))
	if perm, _ := sinks.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "NonExistentQueue: The specified queue does not exist.") {
		t.Errorf("got %v (permanent %v)", err, perm)
	}
}

func TestBrokerDownIsRetryableThenRecovers(t *testing.T) {
	c := broker(t)
	q := queue(t, c, "outage")
	p := newProxy(t, false)
	s := build(t, q, func(c *Config) { c.Endpoint = p.url() })
	if err := s.Deliver(deliverCtx(t), testEvent(t, "before")); err != nil {
		t.Fatalf("Deliver through the proxy: %v", err)
	}
	p.stop()
	err := s.Deliver(deliverCtx(t), testEvent(t, "during"))
	perm, _ := sinks.Classify(err)
	if err == nil || perm {
		t.Fatalf("broker down: got %v (permanent %v), want retryable", err, perm)
	}
	if want := "sqs " + awsconf.QueueName(q) + ": dial tcp " + p.addr + ": connect: connection refused"; err.Error() != want {
		t.Errorf("error text\n got %s\nwant %s", err, want)
	}
	// The router retries after its backoff: the broker is back by then.
	p.start()
	if err := s.Deliver(deliverCtx(t), testEvent(t, "during")); err != nil {
		t.Fatalf("retry after the broker came back: %v", err)
	}
	if got := receive(t, c, q, 2); len(got) != 2 {
		t.Errorf("%d messages, want 2", len(got))
	}
}

func TestDeadlineRespected(t *testing.T) {
	broker(t)
	p := newProxy(t, true) // accepts, never answers
	s := build(t, "http://127.0.0.1:4566/000000000000/stalled", func(c *Config) { c.Endpoint = p.url() })
	ctx, cancel := sinks.WithAttemptTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Deliver(ctx, testEvent(t, "x"))
	took := time.Since(start)
	perm, _ := sinks.Classify(err)
	if err == nil || perm || !errors.Is(err, context.DeadlineExceeded) || err.Error() != "sqs stalled: attempt timed out after 300ms (the delivery timeout)" {
		t.Errorf("got %v (permanent %v)", err, perm)
	}
	// The deadline's error above is the proof; this only catches a hang.
	if took > 10*time.Second {
		t.Errorf("Deliver took %v with a 300ms deadline", took)
	}
	// An expired context fails at once.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := s.Deliver(done, testEvent(t, "y")); err == nil {
		t.Error("Deliver with a cancelled context succeeded")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		code        string
		senderFault bool
		permanent   bool
	}{
		{"InvalidMessageContents", true, true},
		{"InvalidParameterValue", true, true},
		{"BatchRequestTooLong", true, true},
		{"NonExistentQueue", true, true},
		{"InvalidAttributeValue", true, true},
		{"UnsupportedOperation", true, true},
		{"SomethingNew", true, true},
		{"SomethingNew", false, false},
		{"RequestThrottled", true, false},
		{"ThrottlingException", true, false},
		{"KmsThrottled", true, false},
		{"InternalError", false, false},
		{"ServiceUnavailable", false, false},
		{"AccessDenied", true, false},
		{"InvalidClientTokenId", true, false},
		{"KmsAccessDenied", true, false},
	}
	for _, tc := range cases {
		perm, _ := sinks.Classify(classify(tc.code, tc.senderFault))
		if perm != tc.permanent {
			t.Errorf("%s (sender fault %v): permanent %v, want %v", tc.code, tc.senderFault, perm, tc.permanent)
		}
	}
	for in, want := range map[string]string{
		"AWS.SimpleQueueService.NonExistentQueue":      "NonExistentQueue",
		"QueueDoesNotExist":                            "NonExistentQueue",
		"AWS.SimpleQueueService.InvalidParameterValue": "InvalidParameterValue",
		"RequestThrottled":                             "RequestThrottled",
	} {
		if got := trimCode(in); got != want {
			t.Errorf("trimCode(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestValidSQSText(t *testing.T) {
	for s, want := range map[string]bool{
		"plain": true, "tab\tnl\ncr\r": true, "ünïcödé ✓ 😀": true,
		"nul\x00": false, "bell\x07": false, "\xff": false, "\uFFFE": false, "\uFFFF": false,
	} {
		if got := validSQSText([]byte(s)); got != want {
			t.Errorf("validSQSText(%q) = %v, want %v", s, got, want)
		}
	}
}
