package main

import (
	"strings"
	"testing"
	"time"
)

func TestReplayTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, tt := range []struct{ in, want, err string }{
		{"now", "2026-01-02T15:04:05Z", ""},
		{"-1h30m", "2026-01-02T13:34:05Z", ""},
		{"2026-01-01T10:00:00+02:00", "2026-01-01T10:00:00+02:00", ""},
		{"2026-01-01T10:00:00.25Z", "2026-01-01T10:00:00.25Z", ""},
		{"-0s", "", "not -DURATION"},
		{"-soon", "", "not -DURATION"},
		{"2026-01-01", "", "not an RFC 3339 time"},
	} {
		got, err := replayTime(tt.in, now)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("replayTime(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}
