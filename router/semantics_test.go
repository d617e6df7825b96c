package router

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
)

func TestPlace(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: out, type: test-recorder}
routes:
  - name: r
    to: [out]
    orderBy: data.customer
    delay: 1m
    deliverAt: data.at
    priority: data.prio
`)
	rt := p.Routes[0]
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		data      map[string]any
		key       string
		notBefore time.Time
		priority  int
		err       string
	}{
		{data: map[string]any{"customer": "c-1"}, key: "c-1", notBefore: now.Add(time.Minute)},
		{data: map[string]any{"customer": 42, "prio": 9}, key: "42", notBefore: now.Add(time.Minute), priority: 9},
		{data: map[string]any{"at": "2026-12-02T11:00:00Z", "prio": 3.0}, notBefore: now.Add(time.Hour), priority: 3},
		{data: map[string]any{"at": "2026-12-02T10:00:30Z"}, notBefore: now.Add(time.Minute)}, // the later of delay and deliverAt
		{data: map[string]any{"at": "tomorrow"}, err: "deliverAt: expected an RFC 3339 time"},
		{data: map[string]any{"at": 5}, err: "deliverAt: expected an RFC 3339 time (a string) or a time"},
		{data: map[string]any{"prio": 10}, err: "priority: expected an integer 0..9, got 10"},
		{data: map[string]any{"prio": 1.5}, err: "priority: expected an integer 0..9, got 1.5"},
		{data: map[string]any{"prio": "high"}, err: "priority: expected an integer 0..9, got string"},
		{data: map[string]any{"customer": map[string]any{}}, err: "orderBy: expected a string, number or bool"},
	} {
		pl, err := rt.place(filters.NewEnv(newEvent("e", "t", tc.data)), now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.data, err, tc.err)
			}
			continue
		}
		if err != nil || pl.key != tc.key || !pl.notBefore.Equal(tc.notBefore) || pl.priority != tc.priority {
			t.Errorf("%v: %+v %v, want key %q notBefore %v priority %d", tc.data, pl, err, tc.key, tc.notBefore, tc.priority)
		}
	}
}

func TestPlaceCompileErrors(t *testing.T) {
	for _, tc := range []struct{ route, want string }{
		{"orderBy: 'data.('", "orderBy"},
		{"priority: 'nosuchfn(1)'", "priority"},
		{"delay: -1s", "delay: must be between 0"},
		{"delay: 400d", "delay: must be between 0"},
	} {
		_, err := compileErr(fmt.Sprintf(`
sinks:
  - {name: out, type: test-recorder}
routes:
  - name: r
    to: [out]
    %s
`, tc.route))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to name %q", tc.route, err, tc.want)
		}
	}
}

// TestBadDeliverAtIsDeadLettered: an event whose deliverAt is not a time
// is dead-lettered for the route, with the reason; the others go.
func TestBadDeliverAtIsDeadLettered(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: out, type: test-recorder}
routes:
  - name: r
    to: [out]
    deliverAt: data.at
    orderBy: data.k
`)
	r := startRouter(t, p)
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{
		newEvent("ok", "t", map[string]any{"k": "a"}),
		newEvent("bad", "t", map[string]any{"at": "soon", "k": "a"}),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the good event", func() bool { return len(recorderNamed("out").got()) == 1 })
	got := recorderNamed("out").got()[0]
	if got.ID() != "ok" || got.Extensions()[ExtSeq] == nil {
		t.Errorf("delivered %s, want ok with %s", got, ExtSeq)
	}
	dls := deadLetters(t, r)
	if len(dls) != 1 || !strings.Contains(dls[0].Error, "deliverAt: expected an RFC 3339 time") {
		t.Errorf("dead-letter store = %+v, want the bad deliverAt", dls)
	}
}

func TestSeqValue(t *testing.T) {
	if v := seqValue(7); v != int32(7) {
		t.Errorf("seqValue(7) = %#v", v)
	}
	if v := seqValue(1 << 40); v != "1099511627776" {
		t.Errorf("seqValue(2^40) = %#v", v)
	}
}

// compileErr parses and compiles yml, returning the first error.
func compileErr(yml string) (*Plan, error) {
	cfg, err := config.Parse("test.yaml", []byte(yml), os.LookupEnv)
	if err != nil {
		return nil, err
	}
	return Compile(cfg)
}
