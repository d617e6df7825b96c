package natssource

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/junctionhq/junction/sources/sourcetest"
)

// FuzzBinaryRoundTrip: a valid event written as binary-mode NATS headers
// (ce-* in any case, the payload as data) decodes to the same attributes
// and data; and decode never fails on it. It is not in the Makefile's
// FUZZ_TARGETS (FuzzDecode is): this package's tests link a NATS server, and
// the fuzzer's coverage bookkeeping makes each input cost about 1 ms here
// (decode itself takes 5 µs), some 25 s for 100,000 inputs; run it with
// go test -fuzz=FuzzBinaryRoundTrip when decode.go changes.
func FuzzBinaryRoundTrip(f *testing.F) {
	f.Add("b-1", "order.created", "café 42", "tenant", "acme", int64(1709294400000000000), true, false, []byte(`{"a":1}`))
	f.Add("1", "t", "", "", "", int64(0), false, true, []byte(nil))
	f.Add(" x", "t\n", "\u2028", "n1", "\xff", int64(-1), true, true, []byte(`{"specversion":"1.0"}`))
	f.Fuzz(func(t *testing.T, id, typ, subject, extName, extValue string, nanos int64, withTime, upper bool, data []byte) {
		want, ok := sourcetest.FuzzEvent(id, typ, subject, extName, extValue)
		if !ok {
			return
		}
		prefix := "ce-"
		if upper {
			prefix = "Ce-" // as http.Header would write it
		}
		h := nats.Header{"ce-specversion": {"1.0"}, prefix + "id": {id}, prefix + "source": {"/s"}, prefix + "type": {typ}}
		if subject != "" {
			h[prefix+"subject"] = []string{subject}
		}
		if extName != "" {
			h[prefix+extName] = []string{extValue}
		}
		if withTime {
			ts := time.Unix(0, nanos).UTC()
			want.SetTime(ts)
			h[prefix+"time"] = []string{ts.Format(time.RFC3339Nano)}
		}
		got, err := decode(h, data, testWrap)
		if err != nil {
			t.Fatalf("decode of %v: %v", h, err)
		}
		if msg := sourcetest.DiffEvent(got, want, data); msg != "" {
			t.Fatalf("decode of %v: %s", h, msg)
		}
	})
}
