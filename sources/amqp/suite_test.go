package amqpsource

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// eventMsg is e as a message in binary (cloudEvents: headers) or
// structured format.
func eventMsg(t testing.TB, format string, e *event.Event) amqp.Publishing {
	t.Helper()
	if format == "structured" {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return amqp.Publishing{ContentType: event.ApplicationCloudEventsJSON, Body: b}
	}
	h := amqp.Table{}
	for k, v := range plugintest.Attributes(e) {
		h["cloudEvents:"+k] = v
	}
	return amqp.Publishing{ContentType: e.DataContentType(), Headers: h, Body: e.Data()}
}

// TestSuite runs the source conformance suite against RabbitMQ, with
// producers in both formats.
func TestSuite(t *testing.T) {
	u := amqptest.URL(t)
	for _, format := range []string{"binary", "structured"} {
		t.Run(format, func(t *testing.T) {
			plugintest.RunSourceSuite(t, plugintest.SourceHarness{
				Type: "amqp",
				New: func(t testing.TB) plugintest.SourceTarget {
					a := amqptest.NewAdmin(t, u)
					q := a.Queue(amqptest.Unique("suite"), nil)
					return plugintest.SourceTarget{
						Config: fmt.Sprintf("url: %s\nqueue: %s\n", u, q),
						Send: func(t testing.TB, _ string, e *event.Event) error {
							a.Publish(q, eventMsg(t, format, e))
							return nil
						},
						SendMalformed: func(t testing.TB, _ string) error {
							a.Publish(q, amqp.Publishing{ContentType: event.ApplicationCloudEventsJSON, Body: []byte(`{"specversion":"1.0","id":`)})
							return nil
						},
					}
				},
				Caps: plugintest.SourceCaps{Redelivery: true},
			})
		})
	}
}
