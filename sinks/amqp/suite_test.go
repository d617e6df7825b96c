package amqpsink

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junctionhq/junction/internal/amqptest"
	"github.com/junctionhq/junction/internal/plugintest"
)

// queueReader reads a queue's messages as events, keeping those it took.
type queueReader struct {
	a      *amqptest.Admin
	q      string
	mu     sync.Mutex
	events []event.Event
}

// Receive takes what is in the queue and returns every event read so far.
func (r *queueReader) Receive(t testing.TB) []event.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		d, ok := r.a.Get(r.q)
		if !ok {
			return append([]event.Event(nil), r.events...)
		}
		e, err := deliveryEvent(d)
		if err != nil {
			t.Fatalf("message %s: %v", d.MessageId, err)
		}
		r.events = append(r.events, e)
	}
}

// deliveryEvent decodes a message in either format.
func deliveryEvent(d amqp.Delivery) (event.Event, error) {
	if strings.HasPrefix(d.ContentType, event.ApplicationCloudEventsJSON) {
		return plugintest.StructuredEvent(d.Body)
	}
	attrs := map[string]string{}
	for k, v := range d.Headers {
		if name, ok := strings.CutPrefix(k, "cloudEvents:"); ok {
			attrs[name] = fmt.Sprint(v)
		}
	}
	return plugintest.BinaryEvent(attrs, d.ContentType, d.Body)
}

// TestSuite runs the sink conformance suite against RabbitMQ, in both
// formats.
func TestSuite(t *testing.T) {
	u := amqptest.URL(t)
	for _, format := range []string{"binary", "structured"} {
		t.Run(format, func(t *testing.T) {
			plugintest.RunSinkSuite(t, plugintest.SinkHarness{
				Type: "amqp",
				New: func(t testing.TB) plugintest.SinkTarget {
					a := amqptest.NewAdmin(t, u)
					r := &queueReader{a: a, q: a.Queue(amqptest.Unique("suite"), nil)}
					return plugintest.SinkTarget{
						Config:  fmt.Sprintf("url: %s\nroutingKey: '%q'\nformat: %s\n", u, r.q, format),
						Receive: r.Receive,
					}
				},
				Fail: func(t testing.TB, f plugintest.SinkFailure) string {
					switch f {
					case plugintest.FailRetryable: // a full queue that rejects publishes: the broker nacks
						a := amqptest.NewAdmin(t, u)
						q := a.Queue(amqptest.Unique("full"), amqp.Table{"x-max-length": int64(1), "x-overflow": "reject-publish"})
						a.Publish(q, amqp.Publishing{Body: []byte("filler")})
						return fmt.Sprintf("url: %s\nroutingKey: '%q'\n", u, q)
					case plugintest.FailPermanent: // no such exchange
						return fmt.Sprintf("url: %s\nexchange: %s\nroutingKey: '\"k\"'\n", u, amqptest.Unique("missing"))
					default:
						return fmt.Sprintf("url: amqp://guest:guest@%s/\nroutingKey: '\"k\"'\n", plugintest.StallServer(t))
					}
				},
				Caps: plugintest.SinkCaps{Batch: true, Ordered: true},
			})
		})
	}
}
