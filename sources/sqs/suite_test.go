package sqssource

import (
	"encoding/json"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/internal/sqstest"
)

// TestSuite runs the source conformance suite against the SQS server with
// producers of the structured format. Binary-mode messages have tests of
// their own: SQS takes at most 10 message attributes and a body of text,
// which the suite's events exceed.
func TestSuite(t *testing.T) {
	c := sqstest.Client(t)
	plugintest.RunSourceSuite(t, plugintest.SourceHarness{
		Type: "sqs",
		New: func(t testing.TB) plugintest.SourceTarget {
			q := sqstest.Queue(t, c, "suite", nil)
			return plugintest.SourceTarget{
				Config: "queueUrl: " + q + "\nendpoint: " + sqstest.Endpoint() + "\nregion: us-east-1\nwaitTime: 1s\nvisibilityTimeout: 30s\n",
				Send: func(t testing.TB, _ string, e *event.Event) error {
					b, err := json.Marshal(e)
					if err != nil {
						t.Fatal(err)
					}
					send(t, c, q, string(b), nil)
					return nil
				},
				SendMalformed: func(t testing.TB, _ string) error {
					send(t, c, q, `{"specversion":"1.0","id":"bad-1","type":"t"}`, nil)
					return nil
				},
				Pending: func(t testing.TB) int { return sqstest.Depth(t, c, q) },
			}
		},
		Caps: plugintest.SourceCaps{Redelivery: true},
	})
}
