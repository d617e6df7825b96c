package functionsink

import (
	"net/http"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

// enriched is the reply of the suite's function: the event it got, with
// its own id and type.
func enriched(in event.Event) *event.Event {
	r := in.Clone()
	r.SetID(in.ID() + "-enriched")
	r.SetType(in.Type() + ".enriched")
	return &r
}

// TestSuite runs the sink conformance suite against real HTTP servers that
// answer with replies, in both formats.
func TestSuite(t *testing.T) {
	for _, format := range []string{"binary", "structured"} {
		t.Run(format, func(t *testing.T) {
			plugintest.RunSinkSuite(t, plugintest.SinkHarness{
				Type: "function",
				New: func(t testing.TB) plugintest.SinkTarget {
					d := plugintest.NewHTTPDest(t)
					d.Reply = enriched
					return plugintest.SinkTarget{Config: "url: " + d.URL + "/\nformat: " + format + "\n", Receive: d.Events}
				},
				Fail: func(t testing.TB, f plugintest.SinkFailure) string {
					switch f {
					case plugintest.FailRetryable:
						return "url: " + plugintest.StatusServer(t, http.StatusServiceUnavailable) + "/\n"
					case plugintest.FailPermanent:
						return "url: " + plugintest.StatusServer(t, http.StatusBadRequest) + "/\n"
					default:
						return "url: http://" + plugintest.StallServer(t) + "/\n"
					}
				},
				CheckReply: func(t testing.TB, sent, reply *event.Event) {
					if reply == nil {
						t.Fatal("no reply")
					}
					if d := plugintest.DiffEvents(reply, enriched(*sent)); d != "" {
						t.Errorf("reply:\n%s", d)
					}
				},
				Caps: plugintest.SinkCaps{Reply: true, Ordered: true},
			})
		})
	}
}
