package sinks

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestHTTPStatusError(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	const (
		ok = iota
		permanent
		retryable
	)
	cases := []struct {
		status     int
		retryAfter string
		want       int
		after      time.Duration
		text       string
	}{
		{status: 200, want: ok},
		{status: 201, want: ok},
		{status: 204, want: ok},
		{status: 299, want: ok},
		{status: 301, want: permanent, text: "HTTP 301 Moved Permanently"},
		{status: 400, want: permanent, text: "HTTP 400 Bad Request"},
		{status: 401, retryAfter: "30", want: permanent, text: "HTTP 401 Unauthorized"}, // Retry-After ignored
		{status: 404, want: permanent, text: "HTTP 404 Not Found"},
		{status: 408, want: retryable, text: "HTTP 408 Request Timeout"},
		{status: 409, want: permanent, text: "HTTP 409 Conflict"},
		{status: 410, want: permanent, text: "HTTP 410 Gone"},
		{status: 413, want: permanent, text: "HTTP 413 Request Entity Too Large"},
		{status: 422, want: permanent, text: "HTTP 422 Unprocessable Entity"},
		{status: 429, retryAfter: "120", want: retryable, after: 2 * time.Minute, text: "HTTP 429 Too Many Requests"},
		{status: 429, retryAfter: date(90 * time.Second), want: retryable, after: 90 * time.Second, text: "HTTP 429 Too Many Requests"},
		{status: 500, want: retryable, text: "HTTP 500 Internal Server Error"},
		{status: 502, retryAfter: "86400", want: retryable, after: MaxRetryAfter, text: "HTTP 502 Bad Gateway"},
		{status: 503, retryAfter: date(48 * time.Hour), want: retryable, after: MaxRetryAfter, text: "HTTP 503 Service Unavailable"},
		{status: 503, retryAfter: "soon", want: retryable, text: "HTTP 503 Service Unavailable"},
		{status: 504, retryAfter: date(-time.Minute), want: retryable, text: "HTTP 504 Gateway Timeout"},
		{status: 599, want: retryable, text: "HTTP 599 "},
		{status: 600, want: permanent, text: "HTTP 600 "},
		{status: 100, want: permanent, text: "HTTP 100 Continue"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.retryAfter), func(t *testing.T) {
			h := http.Header{}
			if tc.retryAfter != "" {
				h.Set("Retry-After", tc.retryAfter)
			}
			err := HTTPStatusError(tc.status, h, now)
			if tc.want == ok {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got nil, want an error")
			}
			if err.Error() != tc.text {
				t.Errorf("text: got %q, want %q", err, tc.text)
			}
			perm, after := Classify(err)
			if perm != (tc.want == permanent) {
				t.Errorf("permanent: got %v", perm)
			}
			if after != tc.after {
				t.Errorf("after: got %v, want %v", after, tc.after)
			}
			var pe *PermanentError
			var re *RetryableError
			if errors.As(err, &pe) == errors.As(err, &re) {
				t.Errorf("%T is not exactly one of PermanentError and RetryableError", err)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"   ", 0},
		{"0", 0},
		{"-5", 0},
		{"1", time.Second},
		{" 30 ", 30 * time.Second},
		{"3600", time.Hour},
		{"3601", MaxRetryAfter},
		{"9223372036", MaxRetryAfter}, // would overflow time.Duration
		{"1.5", 0},
		{"1e3", 0},
		{"0x10", 0},
		{"+10", 10 * time.Second},
		{"soon", 0},
		{now.Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second},
		{now.Format(http.TimeFormat), 0},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(2 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{now.Add(10 * time.Second).Format(time.RFC850), 10 * time.Second}, // obsolete RFC 850 date
		{now.Add(10 * time.Second).Format(time.ANSIC), 10 * time.Second},  // asctime date
		{now.Add(10 * time.Second).Format(time.RFC3339), 0},               // not an HTTP date
		{"Mon, 06 May 2024 07:08:69 GMT", 0},                              // invalid seconds
	}
	for _, tc := range cases {
		if got := RetryAfter(tc.in, now); got != tc.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		name      string
		err       error
		permanent bool
		after     time.Duration
	}{
		{"nil", nil, false, 0},
		{"unclassified", base, false, 0},
		{"permanent", Permanent(base), true, 0},
		{"retryable", Retryable(base, 0), false, 0},
		{"retryable with delay", Retryable(base, 3*time.Second), false, 3 * time.Second},
		{"wrapped permanent", fmt.Errorf("POST /hook: %w", Permanent(base)), true, 0},
		{"wrapped twice", fmt.Errorf("deliver: %w", fmt.Errorf("POST /hook: %w", Retryable(base, time.Minute))), false, time.Minute},
		{"joined", errors.Join(errors.New("other"), Permanent(base)), true, 0},
		{"HTTP status wrapped", fmt.Errorf("POST /hook: %w", HTTPStatusError(429, http.Header{"Retry-After": {"7"}}, time.Now())), false, 7 * time.Second},
		{"failure", &Failure{Msg: "POST /hook: HTTP 429", Err: Retryable(base, 2*time.Second)}, false, 2 * time.Second},
		{"permanent failure", &Failure{Msg: "sqs orders: InvalidMessageContents", Err: Permanent(base)}, true, 0},
		// A permanent mark anywhere in the chain wins.
		{"permanent around retryable", Permanent(Retryable(base, time.Second)), true, 0},
		{"retryable around permanent", Retryable(Permanent(base), time.Second), true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			perm, after := Classify(tc.err)
			if perm != tc.permanent || after != tc.after {
				t.Errorf("Classify = (%v, %v), want (%v, %v)", perm, after, tc.permanent, tc.after)
			}
		})
	}
	if Permanent(nil) != nil || Retryable(nil, time.Second) != nil {
		t.Error("Permanent(nil) or Retryable(nil) is not nil")
	}
	p := Permanent(base)
	if p.Error() != "boom" || !errors.Is(p, base) {
		t.Errorf("Permanent: text %q, Is(base) %v", p, errors.Is(p, base))
	}
	r := Retryable(base, time.Second)
	if r.Error() != "boom" || !errors.Is(r, base) {
		t.Errorf("Retryable: text %q, Is(base) %v", r, errors.Is(r, base))
	}
	f := &Failure{Msg: "lambda fn: boom", Err: Permanent(base)}
	if f.Error() != "lambda fn: boom" || !errors.Is(f, base) {
		t.Errorf("Failure: text %q, Is(base) %v", f, errors.Is(f, base))
	}
}
