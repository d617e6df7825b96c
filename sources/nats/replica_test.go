package natssource

import (
	"strings"
	"testing"
)

// TestReplicaWarning: only core NATS without a queue group warns about
// replicas sharing a journal.
func TestReplicaWarning(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		warn bool
	}{
		{"subject: a.>", true},
		{"subject: a.>\nqueue: junction", false},
		{"stream: ORDERS", false},
	} {
		w := decoded(t, tc.yaml).ReplicaWarning()
		if (w != "") != tc.warn || tc.warn && !strings.Contains(w, "set queue") {
			t.Errorf("%q: warning %q, want one: %v", tc.yaml, w, tc.warn)
		}
	}
}
