package s3event

import (
	"strings"
	"testing"
)

// FuzzConvert: any body gives events that are valid CloudEvents, a test
// event, or a one-line error; never a panic.
func FuzzConvert(f *testing.F) {
	for _, s := range []string{awsPut, minioPut, awsTest, snsEnvelope(awsPut), snsEnvelope(awsTest), `{"Records":[{}]}`, `{"Records":[{"eventName":"x","eventSource":"y","s3":{"bucket":{"name":"z"}}}]}`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, unwrap bool) {
		events, test, err := Convert(body, unwrap)
		if err != nil {
			if len(events) != 0 || test != nil {
				t.Fatal("an error with a result")
			}
			if msg := err.Error(); len(msg) > 2000 || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error not one bounded line: %q", msg)
			}
			return
		}
		if test != nil {
			if len(events) != 0 {
				t.Fatal("a test event with events")
			}
			return
		}
		if len(events) == 0 {
			t.Fatal("no events and no error")
		}
		for _, e := range events {
			if err := e.Validate(); err != nil {
				t.Fatalf("invalid event: %v", err)
			}
		}
	})
}
