package sqssource

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/junctionhq/junction/sources/sourcetest"
)

// FuzzBinaryRoundTrip: a valid event written as binary-mode SQS message
// attributes (ce-* String attributes, the body as data) converts to the
// same attributes and data; and toEvent never refuses it.
func FuzzBinaryRoundTrip(f *testing.F) {
	f.Add("b-1", "order.created", "café 42", "tenant", "acme", int64(1709294400000000000), true, `{"a":1}`)
	f.Add("1", "t", "", "", "", int64(0), false, "")
	f.Add(" x", "t\n", "\u2028", "n1", "\xff", int64(-1), true, `{"specversion":"1.0"}`)
	s := testSource(nil)
	f.Fuzz(func(t *testing.T, id, typ, subject, extName, extValue string, nanos int64, withTime bool, body string) {
		want, ok := sourcetest.FuzzEvent(id, typ, subject, extName, extValue)
		if !ok {
			return
		}
		attrs := map[string]types.MessageAttributeValue{"ce-specversion": str("1.0"), "ce-id": str(id), "ce-source": str("/s"), "ce-type": str(typ)}
		if subject != "" {
			attrs["ce-subject"] = str(subject)
		}
		if extName != "" {
			attrs["ce-"+extName] = str(extValue)
		}
		if withTime {
			ts := time.Unix(0, nanos).UTC()
			want.SetTime(ts)
			attrs["ce-time"] = str(ts.Format(time.RFC3339Nano))
		}
		got, bad := s.toEvent(msg(body, attrs))
		if bad != nil {
			t.Fatalf("toEvent of %v: %s", attrs, bad.reason)
		}
		if d := sourcetest.DiffEvent(got, want, []byte(body)); d != "" {
			t.Fatalf("toEvent of %v: %s", attrs, d)
		}
	})
}
