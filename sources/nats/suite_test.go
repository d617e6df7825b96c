package natssource

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// publishEvent publishes e to subject in binary (ce- headers) or
// structured format and waits for its PubAck.
func publishEvent(t testing.TB, js jetstream.JetStream, subject, format string, e *event.Event) {
	t.Helper()
	m := nats.NewMsg(subject)
	if format == "structured" {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		m.Data = b
		m.Header.Set("content-type", event.ApplicationCloudEventsJSON)
	} else {
		for k, v := range plugintest.Attributes(e) {
			m.Header.Set("ce-"+k, v)
		}
		m.Header.Set("content-type", e.DataContentType())
		m.Data = e.Data()
	}
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// TestSuite runs the source conformance suite against JetStream, with
// producers in both formats.
func TestSuite(t *testing.T) {
	_, js := natstest.Connect(t)
	for _, format := range []string{"binary", "structured"} {
		t.Run(format, func(t *testing.T) {
			plugintest.RunSourceSuite(t, plugintest.SourceHarness{
				Type: "nats",
				New: func(t testing.TB) plugintest.SourceTarget {
					stream, prefix := natstest.NewStream(t, js)
					durable := "d_" + natstest.Suffix()
					return plugintest.SourceTarget{
						Config: fmt.Sprintf("url: %s\nstream: %s\ndurable: %s\nackWait: 2s\n", natstest.URL(), stream, durable),
						Send: func(t testing.TB, _ string, e *event.Event) error {
							publishEvent(t, js, prefix+".x", format, e)
							return nil
						},
						SendMalformed: func(t testing.TB, _ string) error {
							publish(t, js, prefix+".x", `{"specversion":"1.0","id":`, "content-type", event.ApplicationCloudEventsJSON)
							return nil
						},
						Pending: func(t testing.TB) int {
							c, err := js.Consumer(context.Background(), stream, durable)
							if err != nil {
								return -1 // not made yet
							}
							info, err := c.Info(context.Background())
							if err != nil {
								t.Fatal(err)
							}
							return int(info.NumPending) + info.NumAckPending
						},
					}
				},
				Caps: plugintest.SourceCaps{Redelivery: true},
			})
		})
	}
}
