package natssource

import (
	"strings"
	"testing"
)

// TestReplicaWarning: only core NATS without a queue group warns about
// replicas sharing a journal.
func TestReplicaWarning(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		warn bool
	}{
		{Config{Subject: "a.>"}, true},
		{Config{Subject: "a.>", Queue: "junction"}, false},
		{Config{Stream: "ORDERS"}, false},
	} {
		w := tc.c.ReplicaWarning()
		if (w != "") != tc.warn || tc.warn && !strings.Contains(w, "set queue") {
			t.Errorf("%+v: warning %q, want one: %v", tc.c, w, tc.warn)
		}
	}
}
