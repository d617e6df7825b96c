package lambdasink

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sinks"
)

func push(t testing.TB) *event.Event {
	t.Helper()
	e := event.New()
	e.SetID("delivery-1")
	e.SetSource("/hooks/github")
	e.SetType("com.github.push")
	e.SetSubject("octo/hello")
	if err := e.SetData(event.ApplicationJSON, map[string]any{
		"ref":        "refs/heads/main",
		"repository": map[string]any{"full_name": "octo/hello"},
		"commits":    []any{map[string]any{"id": "c1", "message": "fix: a bug"}},
	}); err != nil {
		t.Fatal(err)
	}
	return &e
}

// replyData decodes a reply's JSON data.
func replyData(t *testing.T, r *event.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Data(), &m); err != nil {
		t.Fatalf("reply data %q: %v", r.Data(), err)
	}
	return m
}

func TestReply(t *testing.T) {
	s := build(t, fnLabelPush, nil)
	r, err := s.DeliverReply(testCtx(t), push(t))
	if err != nil {
		t.Fatalf("DeliverReply: %v", err)
	}
	if r == nil {
		t.Fatal("no reply")
	}
	if r.ID() != "delivery-1-labelled" || r.Source() != "/functions/label-push" || r.Type() != "com.example.push.labelled" || r.Subject() != "octo/hello" {
		t.Errorf("reply: %s", r)
	}
	d := replyData(t, r)
	if d["repository"] != "octo/hello" || d["commits"] != 1.0 || strings.Join(toStrings(d["labels"]), ",") != "default-branch,bugfix" {
		t.Errorf("reply data: %v", d)
	}
	if tr, _ := d["trigger"].(map[string]any); tr["id"] != "delivery-1" || tr["type"] != "com.github.push" {
		t.Errorf("the function did not get the CloudEvent: trigger %v", d["trigger"])
	}
	// Deliver ignores the reply.
	if err := s.Deliver(testCtx(t), push(t)); err != nil {
		t.Errorf("Deliver: %v", err)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestPayloadModes(t *testing.T) {
	withData := func(ct string, data []byte) *event.Event {
		e := push(t)
		e.SetDataContentType(ct)
		e.DataEncoded = data
		return e
	}
	cases := []struct {
		name    string
		payload string
		e       *event.Event
		want    string // JSON of what the function received
	}{
		{"event", PayloadEvent, withData("text/plain", []byte("hi")), `{"data":"hi","datacontenttype":"text/plain","id":"delivery-1","source":"/hooks/github","specversion":"1.0","subject":"octo/hello","type":"com.github.push"}`},
		{"data JSON", PayloadData, withData("application/json", []byte(`{"ref":"refs/heads/main","n":[1,2]}`)), `{"n":[1,2],"ref":"refs/heads/main"}`},
		{"data +json", PayloadData, withData("application/vnd.github+json", []byte(`[1,2]`)), `[1,2]`},
		{"data text", PayloadData, withData("text/plain", []byte(`{"looks":"like JSON"}`)), `"{\"looks\":\"like JSON\"}"`},
		{"data bytes", PayloadData, withData("application/octet-stream", []byte{0xff, 0x00, 0x01}), `"/wAB"`},
		{"data JSON without a content type", PayloadData, withData("", []byte(`{"a":1}`)), `{"a":1}`},
		{"no data", PayloadData, withData("", nil), `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := build(t, fnEcho, func(c *Config) { c.Payload = tc.payload })
			r, err := s.DeliverReply(testCtx(t), tc.e)
			if err != nil || r == nil {
				t.Fatalf("DeliverReply: %v, %v", r, err)
			}
			var got struct {
				Received json.RawMessage `json:"received"`
			}
			if err := json.Unmarshal(r.Data(), &got); err != nil {
				t.Fatal(err)
			}
			// Compare as canonical JSON (key order).
			var v any
			if err := json.Unmarshal(got.Received, &v); err != nil {
				t.Fatal(err)
			}
			canon, _ := json.Marshal(v)
			if string(canon) != tc.want {
				t.Errorf("the function got\n %s\nwant %s", canon, tc.want)
			}
		})
	}
}

func TestNoReply(t *testing.T) {
	t.Run("result is not a CloudEvent", func(t *testing.T) {
		r, err := build(t, fnPlain, nil).DeliverReply(testCtx(t), push(t))
		if err != nil || r != nil {
			t.Fatalf("DeliverReply: %v, %v; want no reply", r, err)
		}
	})
	t.Run("Event invocation", func(t *testing.T) {
		// label-push would reply to a RequestResponse invocation.
		r, err := build(t, fnLabelPush, func(c *Config) { c.InvocationType = InvocationEvent }).DeliverReply(testCtx(t), push(t))
		if err != nil || r != nil {
			t.Fatalf("DeliverReply: %v, %v; want no reply", r, err)
		}
	})
}

func TestFailures(t *testing.T) {
	cases := []struct {
		name      string
		function  string
		set       func(*Config)
		want      string
		permanent bool
	}{
		{"handler throws", fnBoom, nil, "lambda " + fnBoom + ": function error Unhandled: Error: boom: the handler failed", false},
		{"invalid reply", fnInvalid, nil, "lambda " + fnInvalid + ": invalid reply event: missing required attribute id, type", true},
		{"unknown function", "no-such-function", nil, "lambda no-such-function: ResourceNotFoundException: Function not found: no-such-function", true},
		{"unknown function, async", "no-such-function", func(c *Config) { c.InvocationType = InvocationEvent }, "lambda no-such-function: ResourceNotFoundException: Function not found: no-such-function", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := build(t, tc.function, tc.set).DeliverReply(testCtx(t), push(t))
			if err == nil {
				t.Fatalf("got reply %v, want an error", r)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			if perm, _ := sinks.Classify(err); perm != tc.permanent {
				t.Errorf("permanent = %v, want %v", perm, tc.permanent)
			}
		})
	}
}

func TestNetworkFailures(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	newSink := func(t *testing.T, ep string) *Sink {
		c := NewConfig()
		c.Function = "f"
		c.Region = "us-east-1"
		c.Endpoint = ep
		s, err := New(context.Background(), c, sinks.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("connection refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		err := newSink(t, "http://"+addr).Deliver(testCtx(t), push(t))
		if err == nil || !strings.HasPrefix(err.Error(), "lambda f: ") || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("got %v", err)
		}
		if perm, _ := sinks.Classify(err); perm {
			t.Error("connection refused is permanent, want retryable")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		// A listener that never answers.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s := newSink(t, "http://"+ln.Addr().String())
		ctx, cancel := sinks.WithAttemptTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err = s.Deliver(ctx, push(t))
		if err == nil || err.Error() != "lambda f: attempt timed out after 200ms (the delivery timeout)" {
			t.Fatalf("got %v", err)
		}
		if perm, _ := sinks.Classify(err); perm {
			t.Error("a timeout is permanent, want retryable")
		}
	})
}

// TestClassification runs the SDK against a server that answers Lambda
// errors that serverless-offline cannot produce (throttling, service
// errors, refused payloads), in the Lambda REST-JSON error format.
func TestClassification(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	cases := []struct {
		status    int
		code      string
		body      string
		permanent bool
		after     time.Duration
	}{
		{429, "TooManyRequestsException", `{"message":"Rate exceeded","retryAfterSeconds":"3","Reason":"ConcurrentInvocationLimitExceeded"}`, false, 3 * time.Second},
		{502, "EC2ThrottledException", `{"message":"throttled"}`, false, 0},
		{502, "ENILimitReachedException", `{"message":"eni"}`, false, 0},
		{500, "ServiceException", `{"message":"internal"}`, false, 0},
		{503, "", `oops`, false, 0},
		{409, "ResourceConflictException", `{"message":"update in progress"}`, false, 0},
		{403, "AccessDeniedException", `{"message":"denied"}`, false, 0},
		{404, "ResourceNotFoundException", `{"message":"Function not found"}`, true, 0},
		{400, "InvalidRequestContentException", `{"message":"Could not parse request body into json"}`, true, 0},
		{413, "RequestTooLargeException", `{"message":"Request must be smaller than 6291456 bytes"}`, true, 0},
		{400, "InvalidParameterValueException", `{"message":"bad qualifier"}`, true, 0},
		{400, "SomethingNewException", `{"message":"new"}`, true, 0},
		{504, "SomethingElseException", `{"message":"gateway"}`, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.code+"_"+http.StatusText(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if tc.code != "" {
					w.Header().Set("X-Amzn-Errortype", tc.code)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := NewConfig()
			c.Function, c.Region, c.Endpoint = "f", "us-east-1", srv.URL
			s, err := New(context.Background(), c, sinks.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Deliver(testCtx(t), push(t))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.ContainsAny(err.Error(), "\n\r") || !strings.HasPrefix(err.Error(), "lambda f: ") {
				t.Errorf("error text %q", err)
			}
			if tc.code != "" && !strings.Contains(err.Error(), tc.code) {
				t.Errorf("error %q does not name %s", err, tc.code)
			}
			perm, after := sinks.Classify(err)
			if perm != tc.permanent || after != tc.after {
				t.Errorf("Classify(%v) = %v, %v; want %v, %v", err, perm, after, tc.permanent, tc.after)
			}
		})
	}
}
