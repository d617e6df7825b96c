package router

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// TestCostBudget: an event that makes a route's expression exceed its cost
// budget (here 1,000 × 1,000 loop iterations) fails that route: a filter
// error, counted, or a transform error, dead-lettered. An ordinary event on
// the same routes is delivered.
func TestCostBudget(t *testing.T) {
	p := compile(t, `
sinks:
  - {name: budget-out, type: test-recorder}
  - {name: budget-tout, type: test-recorder}
  - {name: budget-dead, type: test-recorder}
routes:
  - name: quadratic-filter
    filter: '!any(data.a, {any(data.b, {# == "x"})})'
    to: [budget-out]
  - name: quadratic-transform
    transform:
      data: 'count(data.a, {any(data.b, {# == "x"})})'
    to: [budget-tout]
    delivery: {deadLetter: budget-dead}
`)
	r := startRouter(t, p)
	list := func(n int, s string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	hostile := newEvent("hostile", "t", map[string]any{"a": list(1000, "p"), "b": list(1000, "q")})
	ordinary := newEvent("ordinary", "t", map[string]any{"a": list(3, "p"), "b": list(3, "q")})
	start := time.Now()
	if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{hostile, ordinary}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ingested in %v", time.Since(start))
	eventually(t, 5*time.Second, "deliveries and a dead letter", func() bool {
		return len(recorderNamed("budget-out").got()) == 1 && len(recorderNamed("budget-tout").got()) == 1 &&
			len(recorderNamed("budget-dead").got()) == 1
	})
	if e := recorderNamed("budget-out").got()[0]; e.ID() != "ordinary" {
		t.Errorf("filtered route delivered %s, want only the ordinary event", e.ID())
	}
	if e := recorderNamed("budget-tout").got()[0]; e.ID() != "ordinary" || string(e.Data()) != "0" {
		t.Errorf("transformed route delivered %s with data %s, want the ordinary event with 0", e.ID(), e.Data())
	}
	dl := recorderNamed("budget-dead").got()[0]
	if reason := fmt.Sprint(dl.Extensions()[ExtError]); dl.ID() != "hostile" ||
		!strings.HasPrefix(reason, "transform: evaluate transform data: expression cost budget exceeded") {
		t.Errorf("dead letter %s: %s", dl.ID(), reason)
	}
	if got := value(r.metrics.FilterErrors.WithLabelValues("quadratic-filter")); got != 1 {
		t.Errorf("filter errors = %v, want 1", got)
	}
	if got := value(r.metrics.TransformErrs.WithLabelValues("quadratic-transform")); got != 1 {
		t.Errorf("transform errors = %v, want 1", got)
	}
}
