package schedulesource

import (
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ticks(s Schedule, from time.Time, n int) []string {
	var out []string
	t := from
	for range n {
		t = s.Next(t)
		out = append(out, t.Format(time.RFC3339))
	}
	return out
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: got %v, want %v", what, got, want)
			return
		}
	}
}

func TestEvery(t *testing.T) {
	// Multiples of the period since the epoch, whenever asked, strictly after.
	same(t, "every 30s", ticks(Every(30*time.Second), utc("2026-01-01T10:00:07Z"), 3),
		[]string{"2026-01-01T10:00:30Z", "2026-01-01T10:01:00Z", "2026-01-01T10:01:30Z"})
	same(t, "on a tick", ticks(Every(30*time.Second), utc("2026-01-01T10:00:30Z"), 1), []string{"2026-01-01T10:01:00Z"})
	same(t, "every 1h", ticks(Every(time.Hour), utc("2026-01-01T10:59:59.9Z"), 2), []string{"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"})
	same(t, "every 7s", ticks(Every(7*time.Second), time.Unix(13, 0).UTC(), 2), []string{time.Unix(14, 0).UTC().Format(time.RFC3339), time.Unix(21, 0).UTC().Format(time.RFC3339)})
}

func TestCronUTC(t *testing.T) {
	c, err := ParseCron("0 2 * * *", nil)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "daily at 02:00 UTC", ticks(c, utc("2026-01-01T02:00:00Z"), 2), []string{"2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"})
	c, _ = ParseCron("*/15 9-10 * * 1-5", nil) // 2026-01-02 is a Friday
	same(t, "weekdays", ticks(c, utc("2026-01-02T10:40:00Z"), 3), []string{"2026-01-02T10:45:00Z", "2026-01-05T09:00:00Z", "2026-01-05T09:15:00Z"})
}

func TestCronTimezoneAndDST(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCron("0 2 * * *", paris)
	if err != nil {
		t.Fatal(err)
	}
	// Winter: 02:00 in Paris is 01:00 UTC.
	same(t, "winter", ticks(c, utc("2026-01-10T12:00:00Z"), 1), []string{"2026-01-11T02:00:00+01:00"})
	// 2026-03-29: clocks go from 02:00 to 03:00, there is no 02:00 that
	// day; the next days are at 02:00 summer time (00:00 UTC).
	same(t, "spring forward", ticks(c, utc("2026-03-27T12:00:00Z"), 3),
		[]string{"2026-03-28T02:00:00+01:00", "2026-03-30T02:00:00+02:00", "2026-03-31T02:00:00+02:00"})
	// 2026-10-25: clocks go from 03:00 back to 02:00; 02:00 comes twice
	// and the tick is made once.
	same(t, "fall back", ticks(c, utc("2026-10-23T12:00:00Z"), 3),
		[]string{"2026-10-24T02:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-26T02:00:00+01:00"})
	// A tick every 30 minutes through the repeated hour.
	h, _ := ParseCron("*/30 * * * *", paris)
	got := ticks(h, utc("2026-10-24T23:45:00Z"), 5)
	same(t, "half-hours through fall back", got, []string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
		"2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"})
	// Given hours: the repeated hour's ticks once, the first time.
	h, _ = ParseCron("*/30 2 * * *", paris)
	same(t, "hour 2 through fall back", ticks(h, utc("2026-10-24T23:45:00Z"), 3),
		[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:00:00+01:00"})
	ny, _ := time.LoadLocation("America/New_York")
	c, _ = ParseCron("30 8 * * *", ny)
	if got := c.Next(utc("2026-07-01T00:00:00Z")); !got.Equal(utc("2026-07-01T12:30:00Z")) {
		t.Errorf("New York summer: %v", got)
	}
}

func TestLatestTick(t *testing.T) {
	e := Every(10 * time.Second)
	cases := []struct {
		name              string
		s                 Schedule
		after, upTo, want string
	}{
		{"every: several missed, the last one", e, "2026-01-01T00:00:00Z", "2026-01-01T00:00:35Z", "2026-01-01T00:00:30Z"},
		{"every: upTo on a tick", e, "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z", "2026-01-01T00:00:30Z"},
		{"every: none missed", e, "2026-01-01T00:00:30Z", "2026-01-01T00:00:39Z", ""},
	}
	daily, _ := ParseCron("0 2 * * *", nil)
	cases = append(cases, []struct {
		name              string
		s                 Schedule
		after, upTo, want string
	}{
		{"cron: down three nights", daily, "2026-01-01T02:00:00Z", "2026-01-04T01:00:00Z", "2026-01-03T02:00:00Z"},
		{"cron: down one night", daily, "2026-01-01T02:00:00Z", "2026-01-02T02:30:00Z", "2026-01-02T02:00:00Z"},
		{"cron: none missed", daily, "2026-01-01T02:00:00Z", "2026-01-02T01:59:59Z", ""},
		{"cron: a year down", daily, "2025-01-01T02:00:00Z", "2026-01-04T01:00:00Z", "2026-01-03T02:00:00Z"},
	}...)
	for _, tc := range cases {
		got := LatestTick(tc.s, utc(tc.after), utc(tc.upTo))
		want := time.Time{}
		if tc.want != "" {
			want = utc(tc.want)
		}
		if !got.Equal(want) {
			t.Errorf("%s: %v, want %v", tc.name, got, want)
		}
	}
}

func TestPeriod(t *testing.T) {
	daily, _ := ParseCron("0 2 * * *", nil)
	if p := Period(daily, utc("2026-01-01T00:00:00Z")); p != 24*time.Hour {
		t.Errorf("daily: %v", p)
	}
	if p := Period(Every(30*time.Second), utc("2026-01-01T00:00:00Z")); p != 30*time.Second {
		t.Errorf("every: %v", p)
	}
}
