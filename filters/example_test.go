package filters_test

import (
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
)

func ExampleCompileFilter() {
	m, err := filters.CompileFilter(config.Expr{Src: `type == "com.example.order.created" && data.amount > 100 && data.customer.vip == nil`})
	if err != nil {
		fmt.Println(err)
		return
	}
	e := event.New()
	e.SetID("1")
	e.SetSource("/orders")
	e.SetType("com.example.order.created")
	_ = e.SetData(event.ApplicationJSON, map[string]any{"amount": 150})

	ok, err := m.Match(filters.NewEnv(&e))
	fmt.Println(ok, err)
	// Output: true <nil>
}

func ExampleCompileTransform() {
	t, err := filters.CompileTransform(&config.Transform{
		Attributes: config.ExprMap{
			{Name: "type", Expr: config.Expr{Src: `"com.example.order.big"`}},
			{Name: "subject", Expr: config.Expr{Src: `data.customerId`}},
		},
		Data: config.Expr{Src: `{"total": data.amount}`},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	e := event.New()
	e.SetID("1")
	e.SetSource("/orders")
	e.SetType("com.example.order.created")
	_ = e.SetData(event.ApplicationJSON, map[string]any{"amount": 150, "customerId": "c-7"})

	out, err := t.Apply(filters.NewEnv(&e))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Type(), out.Subject(), string(out.Data()), out.DataContentType())
	// Output: com.example.order.big c-7 {"total":150} application/json
}

func ExampleWithBudget() {
	// 100 units: a loop may visit 100 elements in all.
	m, err := filters.CompileFilter(config.Expr{Src: `any(data.items, {# == "x"})`}, filters.WithBudget(100))
	if err != nil {
		fmt.Println(err)
		return
	}
	e := event.New()
	e.SetID("1")
	e.SetSource("/orders")
	e.SetType("com.example.order.created")
	_ = e.SetData(event.ApplicationJSON, map[string]any{"items": make([]string, 101)})

	ok, err := m.Match(filters.NewEnv(&e))
	fmt.Println(ok, errors.Is(err, filters.ErrBudget))
	fmt.Println(err)
	// Output:
	// false true
	// evaluate filter: expression cost budget exceeded (100 units) (1:1)
}
