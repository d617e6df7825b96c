package schedulesource

import (
	"errors"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// TestRunWithoutClaims: with an Ingester that offers no sources.Claims
// (one process, no journal), every tick is emitted; a tick the Ingester
// refuses is emitted again (same id) until accepted, and Run returns nil
// when stopped.
func TestRunWithoutClaims(t *testing.T) {
	c, errs := plugintest.Decode(t, "every: 1s\nevent: {type: t, source: /s}", `source "beat"`, NewConfig)
	if errs != "" {
		t.Fatal(errs)
	}
	built, err := c.Build(t.Context(), sources.Deps{Name: "beat"})
	if err != nil {
		t.Fatal(err)
	}
	src := built.(*Source)
	src.retry = 100 * time.Millisecond
	in := &sourcetest.Recorder{Fail: func(call int, _ []*event.Event) error {
		if call == 1 {
			return errors.New("journal unavailable")
		}
		return nil
	}}
	stop := sourcetest.Run(t, src, in, 2*time.Second)
	plugintest.Eventually(t, 5*time.Second, "3 ticks", func() bool { return in.Count() >= 3 })
	stop()
	evs := in.Events()
	if in.Calls() < 4 {
		t.Errorf("%d calls: the refused tick was not tried again", in.Calls())
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Time().Sub(evs[i-1].Time()) != time.Second {
			t.Errorf("ticks %v then %v: one a second, none lost", evs[i-1].Time(), evs[i].Time())
		}
	}
}
