package schedulesource

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

// TestSuite runs the source conformance suite on a schedule of every
// second: the source makes its events itself (Generated), so sending one
// is waiting for the next tick, and a tick whose ingest failed is emitted
// again (Redelivery). Without an Ingester that claims ticks, every tick is
// emitted here.
func TestSuite(t *testing.T) {
	plugintest.RunSourceSuite(t, plugintest.SourceHarness{
		Type: "schedule",
		New: func(t testing.TB) plugintest.SourceTarget {
			return plugintest.SourceTarget{
				Config: "every: 1s\nevent:\n  type: dev.junction.suite.tick\n  source: /suite\n",
				Send:   func(testing.TB, string, *event.Event) error { return nil },
			}
		},
		Caps: plugintest.SourceCaps{Redelivery: true, Generated: true},
	})
}
