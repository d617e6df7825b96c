package config

import (
	"testing"
	"time"
)

// TestTraceDefaults: the event log is on and kept 24h unless the config
// says otherwise.
func TestTraceDefaults(t *testing.T) {
	for _, tc := range []struct {
		yml       string
		on        bool
		retention time.Duration
	}{
		{"journal: {dir: ./d}\n", true, 24 * time.Hour},
		{"journal: {dir: ./d, trace: false}\n", false, 24 * time.Hour},
		{"journal: {dir: ./d, traceRetention: 2d}\n", true, 48 * time.Hour},
	} {
		cfg, err := Parse("t.yaml", []byte(tc.yml), noEnv)
		if err != nil {
			t.Fatalf("%s: %v", tc.yml, err)
		}
		j := cfg.Journal
		if *j.Trace != tc.on || time.Duration(j.TraceRetention) != tc.retention || j.TraceMaxBytes != DefaultTraceMaxBytes {
			t.Errorf("%s: trace %v, retention %v, maxBytes %v; want %v, %v, %v", tc.yml, *j.Trace, j.TraceRetention, j.TraceMaxBytes, tc.on, tc.retention, DefaultTraceMaxBytes)
		}
	}
}
