package httpsource

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sources/sourcetest"
)

// TestExtensionValues sends extension values through the real handler, in
// structured and batch mode. The rule (CloudEvents type system and JSON
// format 2.2): CloudEvents has no floating-point type; a JSON number
// extension is an Integer, a whole number from -2147483648 to 2147483647,
// whatever its spelling (1e3 is 1000). Any other number, and an object or
// an array, is an invalid attribute value: 400 naming the attribute, and
// nothing journaled (a batch is refused whole). true/false are Booleans;
// null leaves the attribute unset.
func TestExtensionValues(t *testing.T) {
	const notInteger = ` is not an integer (CloudEvents has no floating-point type; send a whole number or a string)`
	const outOfRange = ` is out of range (CloudEvents integers are 32-bit: -2147483648 to 2147483647)`
	million := strings.Repeat("9", 1_000_000)
	tests := []struct {
		name, value string
		want        any    // the value delivered; nil for unset
		reason      string // "" when accepted; else the 400 reason after `invalid attribute "myext": `
	}{
		{name: "integer", value: "7", want: int32(7)},
		{name: "exponent is a whole number", value: "1e3", want: int32(1000)},
		{name: "zero fraction", value: "1.0", want: int32(1)},
		{name: "largest", value: "2147483647", want: int32(2147483647)},
		{name: "smallest", value: "-2147483648", want: int32(-2147483648)},
		{name: "true", value: "true", want: true},
		{name: "false", value: "false", want: false},
		{name: "null is unset", value: "null", want: nil},
		{name: "string", value: `"1.5"`, want: "1.5"},

		{name: "fraction", value: "1.5", reason: "1.5" + notInteger},
		{name: "tiny", value: "1e-400", reason: "1e-400" + notInteger},
		{name: "huge", value: "1e400", reason: "1e400" + outOfRange},
		{name: "a million digits", value: million, reason: million[:24] + "..." + outOfRange},
		{name: "above int32", value: "2147483648", reason: "2147483648" + outOfRange},
		{name: "below int32", value: "-2147483649", reason: "-2147483649" + outOfRange},
		{name: "object", value: `{"a":1}`, reason: "extension values must be strings, integers or booleans"},
		{name: "array", value: `[1]`, reason: "extension values must be strings, integers or booleans"},
	}
	send := func(t *testing.T, contentType, body string) (*httptest.ResponseRecorder, *sourcetest.Recorder) {
		t.Helper()
		s := build(t, newConfig(), 4<<20)
		rec := &sourcetest.Recorder{}
		req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		s.Handler(rec).ServeHTTP(w, req)
		return w, rec
	}
	check := func(t *testing.T, w *httptest.ResponseRecorder, rec *sourcetest.Recorder, prefix, reason string, want any, n int) {
		t.Helper()
		calls, events, rejected := rec.Snapshot()
		if reason != "" {
			wantBody := prefix + `invalid attribute "myext": ` + reason + "\n"
			if w.Code != 400 || w.Body.String() != wantBody {
				t.Fatalf("answer %d %q\nwant 400 %q", w.Code, w.Body.String(), wantBody)
			}
			if calls != 0 || rejected["malformed"] != 1 {
				t.Errorf("%d Ingest calls, rejected %v; want none and one malformed", calls, rejected)
			}
			return
		}
		if w.Code != 202 {
			t.Fatalf("answer %d %q, want 202", w.Code, w.Body.String())
		}
		if len(events) != n {
			t.Fatalf("%d events ingested, want %d", len(events), n)
		}
		for _, e := range events {
			got, ok := e.Extensions()["myext"]
			if got != want || ok != (want != nil) {
				t.Errorf("myext delivered as %#v (set %v), want %#v", got, ok, want)
			}
			checkJournalRoundTrip(t, e, want)
		}
	}
	for _, tt := range tests {
		t.Run("structured/"+tt.name, func(t *testing.T) {
			body := `{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":` + tt.value + `}`
			w, rec := send(t, ContentTypeStructured, body)
			check(t, w, rec, "", tt.reason, tt.want, 1)
		})
		t.Run("batch/"+tt.name, func(t *testing.T) {
			// The event with the value is the second of three.
			body := `[` + fmt.Sprintf(minimal, 0) + `,{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":` + tt.value + `},` + fmt.Sprintf(minimal, 2) + `]`
			w, rec := send(t, ContentTypeBatch, body)
			if tt.reason == "" {
				// Only the second event has myext.
				_, events, _ := rec.Snapshot()
				if w.Code != 202 || len(events) != 3 {
					t.Fatalf("answer %d %q with %d events, want 202 and 3", w.Code, w.Body.String(), len(events))
				}
				got, ok := events[1].Extensions()["myext"]
				if got != tt.want || ok != (tt.want != nil) {
					t.Errorf("myext delivered as %#v (set %v), want %#v", got, ok, tt.want)
				}
				checkJournalRoundTrip(t, events[1], tt.want)
				return
			}
			check(t, w, rec, "event[1]: ", tt.reason, nil, 0)
		})
	}
}

// TestBinaryExtensionIsString checks that binary mode is unchanged: a header
// value is a String, whatever it looks like.
func TestBinaryExtensionIsString(t *testing.T) {
	for _, v := range []string{"1.5", "1e400", "7", "true"} {
		events, err := ParseRequest(binaryHeaders("Ce-Myext", v), nil)
		if err != nil {
			t.Fatalf("ce-myext: %s: %v", v, err)
		}
		if got := events[0].Extensions()["myext"]; got != v {
			t.Errorf("ce-myext: %s delivered as %#v, want the string", v, got)
		}
	}
}

// checkJournalRoundTrip checks that e's extension myext comes back as want
// from the JSON format the journal stores.
func checkJournalRoundTrip(t *testing.T, e *event.Event, want any) {
	t.Helper()
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back event.Event
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatalf("journal decoding: %v", err)
	}
	if got := back.Extensions()["myext"]; got != want {
		t.Errorf("myext after the journal: %#v, want %#v", got, want)
	}
}
