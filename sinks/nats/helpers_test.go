package natssink

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/sinks"
)

// newEvent is a CloudEvent with every attribute set.
func newEvent(id string) *event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/shop")
	e.SetType("com.example.order.created")
	e.SetSubject("order 42 ✓")
	e.SetTime(time.Date(2024, 5, 1, 10, 0, 0, 500, time.UTC))
	e.SetDataSchema("https://example.com/order.json")
	e.SetExtension("tenant", "acme")
	e.SetExtension("priority", 3)
	_ = e.SetData("application/json", map[string]any{"amount": 120, "customer": "c-1"})
	return &e
}

// build validates and builds a sink from YAML.
func build(t testing.TB, src string) *Sink {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatal(errs)
	}
	s, err := c.Build(context.Background(), sinks.Deps{Name: "natstest"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Sink)
}
