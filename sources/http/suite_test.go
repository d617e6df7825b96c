package httpsource

import (
	"net/http"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

// TestSuite runs the source conformance suite against the source's
// handler on a real HTTP server, with producers in both formats.
func TestSuite(t *testing.T) {
	for _, format := range []string{"binary", "structured"} {
		t.Run(format, func(t *testing.T) {
			plugintest.RunSourceSuite(t, plugintest.SourceHarness{
				Type: "http",
				New: func(t testing.TB) plugintest.SourceTarget {
					return plugintest.SourceTarget{
						Config: "path: /events\n",
						Send: func(t testing.TB, url string, e *event.Event) error {
							return plugintest.PostEvent(t, url, format, e, nil)
						},
						SendMalformed: func(t testing.TB, url string) error {
							h := http.Header{"Content-Type": {event.ApplicationCloudEventsJSON}}
							return plugintest.Post(t, url, h, []byte(`{"specversion":"1.0","id":`))
						},
					}
				},
			})
		})
	}
}
