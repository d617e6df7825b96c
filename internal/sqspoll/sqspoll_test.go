package sqspoll

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestRefusedDelay(t *testing.T) {
	for n, want := range map[string]time.Duration{"": 30 * time.Second, "x": 30 * time.Second, "0": 30 * time.Second, "1": 30 * time.Second, "2": time.Minute, "3": 2 * time.Minute, "6": 15 * time.Minute, "99": 15 * time.Minute} {
		m := types.Message{Attributes: map[string]string{"ApproximateReceiveCount": n}}
		if got := RefusedDelay(30*time.Second, m); got != want {
			t.Errorf("receive count %q: delay %v, want %v", n, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	for i, step := range []time.Duration{100, 200, 400, 800, 800} {
		step *= time.Millisecond
		if d := b.Next(); d < step*3/4 || d > step {
			t.Errorf("delay %d: %v, want within [%v, %v]", i, d, step*3/4, step)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset: %v, want at most 100ms", d)
	}
}
