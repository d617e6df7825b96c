package sinks

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestStatusOf: the status code of an HTTP answer survives wrapping, and
// the text stays "HTTP 503 Service Unavailable".
func TestStatusOf(t *testing.T) {
	for _, status := range []int{404, 429, 503} {
		err := HTTPStatusError(status, http.Header{}, time.Now())
		wrapped := &Failure{Msg: "webhook x: " + err.Error(), Err: fmt.Errorf("deliver: %w", err)}
		if got := StatusOf(wrapped); got != status {
			t.Errorf("StatusOf(%v) = %d, want %d", wrapped, got, status)
		}
		if want := fmt.Sprintf("HTTP %d %s", status, http.StatusText(status)); err.Error() != want {
			t.Errorf("text %q, want %q", err, want)
		}
	}
	if got := StatusOf(fmt.Errorf("dial: refused")); got != 0 {
		t.Errorf("StatusOf(network error) = %d, want 0", got)
	}
}
