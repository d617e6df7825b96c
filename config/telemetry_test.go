package config

import (
	"strings"
	"testing"
)

func TestTelemetry(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("telemetry:\n  otlp:\n    endpoint: ${OTLP:-http://127.0.0.1:4318/}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Telemetry.OTLP
	if o == nil || o.TracesURL() != "http://127.0.0.1:4318/v1/traces" || o.ServiceName != DefaultServiceName || o.Ratio() != 1 {
		t.Fatalf("otlp = %+v", o)
	}
	if cfg, err := Parse("c.yaml", nil, noEnv); err != nil || cfg.Telemetry.OTLP != nil {
		t.Fatalf("no telemetry key: %+v, %v", cfg.Telemetry, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"telemetry:\n  otlp: {}\n", "c.yaml:2:9: telemetry.otlp.endpoint: required"},
		{"telemetry:\n  otlp:\n    endpoint: 127.0.0.1:4318\n", "c.yaml:3:15: telemetry.otlp.endpoint: must be an http or https URL"},
		{"telemetry:\n  otlp:\n    endpoint: http://c:4318/v1/traces\n", "c.yaml:3:15: telemetry.otlp.endpoint: the base URL, without /v1/traces"},
		{"telemetry:\n  otlp:\n    endpoint: http://c:4318\n    sampleRatio: 2\n", "c.yaml:4:18: telemetry.otlp.sampleRatio: must be between 0 and 1"},
		{"telemetry:\n  otlp:\n    endpoint: http://c:4318\n    port: 1\n", `c.yaml:4:5: telemetry.otlp: unknown key "port"`},
	} {
		_, err := Parse("c.yaml", []byte(tc.yaml), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
