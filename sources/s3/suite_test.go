package s3source

import (
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/sqstest"
)

// TestSuite runs the source conformance suite on the SQS transport: each
// event sent is an S3 notification (as AWS writes it) of its own request
// id, whose object key is the event's id. The source makes its own events
// of them (Generated).
func TestSuite(t *testing.T) {
	c := broker(t)
	plugintest.RunSourceSuite(t, plugintest.SourceHarness{
		Type: "s3",
		New: func(t testing.TB) plugintest.SourceTarget {
			q := newQueueURL(t, c)
			return plugintest.SourceTarget{
				Config: "queueUrl: " + q + "\nendpoint: " + sqsEndpoint() + "\nregion: us-east-1\nwaitTime: 1s\nvisibilityTimeout: 30s\n",
				Send: func(t testing.TB, _ string, e *event.Event) error {
					n := strings.Replace(awsPut, "C3D13FE58DE4C810", "R"+sqstest.Suffix(), 1)
					n = strings.Replace(n, "incoming/file+name.json", e.ID(), 1)
					sendBody(t, c, q, n)
					return nil
				},
				SendMalformed: func(t testing.TB, _ string) error {
					sendBody(t, c, q, `{"hello":"world"}`)
					return nil
				},
				Pending: func(t testing.TB) int { return depth(t, c, q) },
			}
		},
		Caps: plugintest.SourceCaps{Redelivery: true, Generated: true},
	})
}
