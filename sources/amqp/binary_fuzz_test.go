package amqpsource

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junctionhq/junction/sources/sourcetest"
)

// FuzzBinaryRoundTrip: a valid event written as the AMQP binding's binary
// mode (cloudEvents:* application properties, a native or string
// timestamp, the body as data) decodes to the same attributes and data;
// and decode never fails on it.
func FuzzBinaryRoundTrip(f *testing.F) {
	f.Add("b-1", "order.created", "café 42", "tenant", "acme", int64(1709294400000000000), true, false, []byte(`{"a":1}`))
	f.Add("1", "t", "", "", "", int64(0), false, true, []byte(nil))
	f.Add(" x", "t\n", "\u2028", "n1", "\xff", int64(-1), true, true, []byte("\xff"))
	s := testSource()
	f.Fuzz(func(t *testing.T, id, typ, subject, extName, extValue string, nanos int64, withTime, timeAsString bool, data []byte) {
		want, ok := sourcetest.FuzzEvent(id, typ, subject, extName, extValue)
		if !ok {
			return
		}
		h := amqp.Table{"cloudEvents:specversion": "1.0", "cloudEvents:id": id, "cloudEvents:source": "/s", "cloudEvents:type": typ}
		if subject != "" {
			h["cloudEvents:subject"] = subject
		}
		if extName != "" {
			h["cloudEvents_"+extName] = extValue // the JMS-style prefix is read too
		}
		if withTime {
			ts := time.Unix(0, nanos).UTC()
			want.SetTime(ts)
			if timeAsString {
				h["cloudEvents:time"] = ts.Format(time.RFC3339Nano)
			} else {
				h["cloudEvents:time"] = ts
			}
		}
		evs, err := s.decode(&amqp.Delivery{Headers: h, Body: data})
		if err != nil {
			t.Fatalf("decode of %v: %v", h, err)
		}
		if len(evs) != 1 {
			t.Fatalf("decode of %v: %d events", h, len(evs))
		}
		if msg := sourcetest.DiffEvent(evs[0], want, data); msg != "" {
			t.Fatalf("decode of %v: %s", h, msg)
		}
	})
}
