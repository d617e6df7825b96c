package s3event

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/s3event/s3eventtest"
)

// The notifications of s3eventtest.
const (
	awsPut   = s3eventtest.AWSPut
	minioPut = s3eventtest.MinIOPut
	awsTest  = s3eventtest.AWSTest
)

var snsEnvelope = s3eventtest.SNSEnvelope

// attrs lists an event's attributes for comparison.
func attrs(e *event.Event) map[string]string {
	m := map[string]string{
		"specversion":     e.SpecVersion(),
		"id":              e.ID(),
		"source":          e.Source(),
		"type":            e.Type(),
		"subject":         e.Subject(),
		"datacontenttype": e.DataContentType(),
	}
	if !e.Time().IsZero() {
		m["time"] = e.Time().UTC().Format(time.RFC3339Nano)
	}
	return m
}

func sameAttrs(t *testing.T, got *event.Event, want map[string]string) {
	t.Helper()
	g := attrs(got)
	for k, v := range want {
		if g[k] != v {
			t.Errorf("%s = %q, want %q", k, g[k], v)
		}
	}
	for k, v := range g {
		if _, ok := want[k]; !ok && v != "" {
			t.Errorf("unexpected %s = %q", k, v)
		}
	}
}

// record0 is the first record of a notification, compacted.
func record0(t *testing.T, body string) string {
	t.Helper()
	r, err := s3eventtest.Record0(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConvertAWS(t *testing.T) {
	events, test, err := Convert([]byte(awsPut), true)
	if err != nil || test != nil || len(events) != 1 {
		t.Fatalf("convert: %v %v %d events", err, test, len(events))
	}
	e := events[0]
	sameAttrs(t, e, map[string]string{
		"specversion":     "1.0",
		"id":              "C3D13FE58DE4C810.FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD.0a65d5da",
		"source":          "aws:s3.us-west-2.uploads",
		"type":            "com.amazonaws.s3.ObjectCreated:Put",
		"subject":         "incoming/file name.json",
		"time":            "2024-05-01T12:34:56.789Z",
		"datacontenttype": "application/json",
	})
	if string(e.Data()) != record0(t, awsPut) {
		t.Errorf("data is not the record:\n%s", e.Data())
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
}

func TestConvertMinIO(t *testing.T) {
	events, test, err := Convert([]byte(minioPut), false)
	if err != nil || test != nil || len(events) != 1 {
		t.Fatalf("convert: %v %v %d events", err, test, len(events))
	}
	sameAttrs(t, events[0], map[string]string{
		"specversion":     "1.0",
		"id":              "1822F2B9B8C8D1A0.dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8.fa0a1339",
		"source":          "minio:s3.uploads",
		"type":            "com.amazonaws.s3.ObjectCreated:Put",
		"subject":         "incoming/file name.json",
		"time":            "2026-02-12T10:00:00.123Z",
		"datacontenttype": "application/json",
	})
	var data map[string]any
	if err := json.Unmarshal(events[0].Data(), &data); err != nil {
		t.Fatal(err)
	}
	if data["eventName"] != "s3:ObjectCreated:Put" {
		t.Errorf("data.eventName = %v: the data is the record unchanged", data["eventName"])
	}
}

func TestConvertManyRecords(t *testing.T) {
	r := record0(t, awsPut)
	r2 := strings.Replace(strings.Replace(r, "ObjectCreated:Put", "ObjectRemoved:Delete", 1), "C3D13FE58DE4C810", "D4E24FF69EF5D921", 1)
	events, _, err := Convert([]byte(`{"Records":[`+r+`,`+r2+`]}`), true)
	if err != nil || len(events) != 2 {
		t.Fatalf("convert: %v, %d events", err, len(events))
	}
	if events[0].Type() != "com.amazonaws.s3.ObjectCreated:Put" || events[1].Type() != "com.amazonaws.s3.ObjectRemoved:Delete" {
		t.Errorf("types %q %q", events[0].Type(), events[1].Type())
	}
	if events[0].ID() == events[1].ID() {
		t.Error("two records, one id")
	}
}

func TestDecodeKey(t *testing.T) {
	cases := []struct{ in, want string }{
		{"incoming%2Ffile+name.json", "incoming/file name.json"},
		{"incoming/file+name.json", "incoming/file name.json"},
		{"plain/key.txt", "plain/key.txt"},
		{"100%25+done", "100% done"},
		{"a%2Bb", "a+b"},
		{"caf%C3%A9.png", "café.png"},
		{"not%zzencoded", "not%zzencoded"},
		{"trailing%", "trailing%"},
	}
	for _, tc := range cases {
		if got := decodeKey(tc.in); got != tc.want {
			t.Errorf("decodeKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConvertIDs(t *testing.T) {
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	r := record0(t, awsPut)
	noID2 := strings.Replace(r, `"x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"`, `"x-amz-id-3":"x"`, 1)
	noElements := strings.Replace(r, `"responseElements"`, `"otherElements"`, 1)
	otherKey := strings.Replace(noElements, "incoming/file+name.json", "incoming/other.json", 1)
	id := func(rec string) string {
		t.Helper()
		events, _, err := Convert([]byte(`{"Records":[`+rec+`]}`), false)
		if err != nil {
			t.Fatal(err)
		}
		return events[0].ID()
	}
	if got := id(r); got != "C3D13FE58DE4C810.FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD.0a65d5da" {
		t.Errorf("with both request ids: %q", got)
	}
	for _, rec := range []string{noID2, noElements, otherKey} {
		if got := id(rec); !hexID.MatchString(got) {
			t.Errorf("without the request ids: id %q, want 32 hex digits", got)
		}
	}
	// One request, two objects (a multi-object delete): two ids.
	sameRequestOtherKey := strings.Replace(r, "incoming/file+name.json", "incoming/other.json", 1)
	if id(sameRequestOtherKey) == id(r) {
		t.Error("two objects of one request got one id")
	}
	if id(noElements) != id(noElements) {
		t.Error("the hash id is not stable")
	}
	if id(noElements) == id(otherKey) {
		t.Error("two records, one hash id")
	}
}

func TestConvertTestEvent(t *testing.T) {
	for name, body := range map[string]string{"plain": awsTest, "in an SNS envelope": snsEnvelope(awsTest)} {
		events, test, err := Convert([]byte(body), true)
		if err != nil || len(events) != 0 || test == nil || test.Bucket != "uploads" {
			t.Errorf("%s: events %d, test %+v, err %v", name, len(events), test, err)
		}
	}
}

func TestConvertSNSEnvelope(t *testing.T) {
	events, _, err := Convert([]byte(snsEnvelope(awsPut)), true)
	if err != nil || len(events) != 1 {
		t.Fatalf("convert: %v, %d events", err, len(events))
	}
	if events[0].Subject() != "incoming/file name.json" || events[0].Source() != "aws:s3.us-west-2.uploads" {
		t.Errorf("subject %q source %q", events[0].Subject(), events[0].Source())
	}
	if string(events[0].Data()) != record0(t, awsPut) {
		t.Errorf("data is not the record: %s", events[0].Data())
	}
}

func TestConvertErrors(t *testing.T) {
	r := record0(t, awsPut)
	rec := func(old, new string) string { return `{"Records":[` + strings.Replace(r, old, new, 1) + `]}` }
	cases := []struct {
		name, body string
		unwrap     bool
		want       string
	}{
		{"not JSON", `{"Records":`, true, "not an S3 event notification: invalid JSON at byte 11: unexpected end of JSON input"},
		{"not an object", `[1,2]`, true, "not an S3 event notification: expected a JSON object, got array"},
		{"no Records", `{"hello":"world"}`, true, "not an S3 event notification: no Records"},
		{"empty Records", `{"Records":[]}`, true, "not an S3 event notification: Records is empty"},
		{"Records not a list", `{"Records":{"a":1}}`, true, "not an S3 event notification: Records: expected a list, got object"},
		{"record not an object", `{"Records":[42]}`, true, "Records[0]: expected a JSON object, got number"},
		{"eventName missing", rec(`"eventName":"ObjectCreated:Put",`, ""), true, "Records[0]: eventName is missing"},
		{"eventName a number", rec(`"eventName":"ObjectCreated:Put"`, `"eventName":7`), true, "Records[0]: eventName: expected a string, got number"},
		{"eventSource missing", rec(`"eventSource":"aws:s3",`, ""), true, "Records[0]: eventSource is missing"},
		{"bucket missing", rec(`"name":"uploads",`, ""), true, "Records[0]: s3.bucket.name is missing"},
		{"eventTime", rec("2024-05-01T12:34:56.789Z", "yesterday"), true, `Records[0]: eventTime "yesterday" is not an RFC 3339 time`},
		{"source not a URI", rec(`"eventSource":"aws:s3"`, `"eventSource":"a b%zz"`), true, `Records[0]: source "a b%zz.us-west-2.uploads" (eventSource.awsRegion.bucket) is not a URI reference`},
		{"SNS envelope not unwrapped", snsEnvelope(awsPut), false, "an SNS message where an S3 event notification was expected"},
		{"SNS envelope twice", snsEnvelope(snsEnvelope(awsPut)), true, "SNS message: an SNS message where an S3 event notification was expected"},
		{"SNS not a notification", strings.Replace(snsEnvelope(awsPut), `"Type":"Notification"`, `"Type":"SubscriptionConfirmation"`, 1), true, `SNS message of type "SubscriptionConfirmation" is not a Notification`},
		{"SNS Message not JSON", strings.Replace(snsEnvelope(awsPut), `"Message":"{`, `"Message":"x{`, 1), true, "SNS message: not an S3 event notification: invalid JSON at byte 1: invalid character 'x' looking for beginning of value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, test, err := Convert([]byte(tc.body), tc.unwrap)
			if err == nil {
				t.Fatalf("no error; %d events, test %v", len(events), test)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func BenchmarkConvertAWS(b *testing.B) {
	body := []byte(awsPut)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := Convert(body, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConvertMinIO(b *testing.B) {
	body := []byte(minioPut)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := Convert(body, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConvertSNSEnvelope(b *testing.B) {
	body := []byte(snsEnvelope(awsPut))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := Convert(body, true); err != nil {
			b.Fatal(err)
		}
	}
}
