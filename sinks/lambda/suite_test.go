package lambdasink

import (
	"encoding/json"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

// echoed is the event that the echo function got, as its reply says
// (data {"received": EVENT}).
func echoed(t testing.TB, reply *event.Event) event.Event {
	t.Helper()
	var d struct{ Received json.RawMessage }
	if err := json.Unmarshal(reply.Data(), &d); err != nil {
		t.Fatalf("echo reply data %q: %v", reply.Data(), err)
	}
	e, err := plugintest.StructuredEvent(d.Received)
	if err != nil {
		t.Fatalf("the function did not get a CloudEvent: %s: %v", d.Received, err)
	}
	return e
}

// TestSuite runs the sink conformance suite against serverless-offline:
// what the function got is read from the echo function's replies.
func TestSuite(t *testing.T) {
	ep := endpoint(t)
	cfg := func(function, endpoint string) string {
		return "function: " + function + "\nregion: us-east-1\nendpoint: " + endpoint + "\n"
	}
	plugintest.RunSinkSuite(t, plugintest.SinkHarness{
		Type: "lambda",
		New: func(t testing.TB) plugintest.SinkTarget {
			return plugintest.SinkTarget{Config: cfg(fnEcho, ep)}
		},
		Echoed: echoed,
		Fail: func(t testing.TB, f plugintest.SinkFailure) string {
			t.Setenv("AWS_ACCESS_KEY_ID", "test")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
			switch f {
			case plugintest.FailRetryable: // the handler throws
				return cfg(fnBoom, ep)
			case plugintest.FailPermanent:
				return cfg("no-such-function", ep)
			default:
				return cfg("f", "http://"+plugintest.StallServer(t))
			}
		},
		CheckReply: func(t testing.TB, sent, reply *event.Event) {
			if reply == nil {
				t.Fatal("no reply")
			}
			if reply.Type() != "dev.junction.test.echo" {
				t.Errorf("reply type %q", reply.Type())
			}
			got := echoed(t, reply)
			if d := plugintest.DiffEvents(&got, sent); d != "" {
				t.Errorf("the function got another event:\n%s", d)
			}
		},
		Caps: plugintest.SinkCaps{Reply: true},
	})
}
