package webhooksink

import (
	"net/http"
	"testing"

	"github.com/junctionhq/junction/internal/plugintest"
)

// TestSuite runs the sink conformance suite against real HTTP servers, in
// both formats.
func TestSuite(t *testing.T) {
	for _, format := range []string{"binary", "structured"} {
		t.Run(format, func(t *testing.T) {
			plugintest.RunSinkSuite(t, plugintest.SinkHarness{
				Type: "webhook",
				New: func(t testing.TB) plugintest.SinkTarget {
					d := plugintest.NewHTTPDest(t)
					return plugintest.SinkTarget{Config: "url: " + d.URL + "/hook\nformat: " + format + "\n", Receive: d.Events}
				},
				Fail: func(t testing.TB, f plugintest.SinkFailure) string {
					switch f {
					case plugintest.FailRetryable:
						return "url: " + plugintest.StatusServer(t, http.StatusServiceUnavailable) + "/hook\n"
					case plugintest.FailPermanent:
						return "url: " + plugintest.StatusServer(t, http.StatusBadRequest) + "/hook\n"
					default:
						return "url: http://" + plugintest.StallServer(t) + "/hook\n"
					}
				},
				Caps: plugintest.SinkCaps{Batch: true, Ordered: true},
			})
		})
	}
}
