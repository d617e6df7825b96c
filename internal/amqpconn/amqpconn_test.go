package amqpconn

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, want, host string
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", "", "127.0.0.1:5672"},
		{"amqps://u:p%40ss@rabbit.example.com/prod", "", "rabbit.example.com:5671"},
		{"", "required: the broker's AMQP URI, such as amqp://user:password@host:5672/vhost", ""},
		{"https://h/", `scheme must be amqp or amqps, not "https"`, ""},
		{"amqp://", "missing host", ""},
		{"amqp://u:s3cr#t@h/", "invalid AMQP URI: invalid port (a password with reserved characters such as @ : / ? # must be percent-encoded)", ""},
		{"amqp://u:s3cret@h:port/", "invalid AMQP URI: invalid port (a password with reserved characters such as @ : / ? # must be percent-encoded)", ""},
		{"amqp://u:s3cret@a b/", "invalid AMQP URI: malformed (a password with reserved characters such as @ : / ? # must be percent-encoded)", ""},
	} {
		uri, err := ParseURL(tc.url)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q): error %q, want %q", tc.url, got, tc.want)
		}
		if strings.Contains(got, "s3cr") || strings.Contains(got, "p%40ss") {
			t.Errorf("ParseURL(%q): the error shows the password: %s", tc.url, got)
		}
		if err == nil && HostPort(uri) != tc.host {
			t.Errorf("HostPort(%q) = %q, want %q", tc.url, HostPort(uri), tc.host)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	for i, step := range []time.Duration{100, 200, 400, 400} {
		step *= time.Millisecond
		if d := b.Next(); d < step/2 || d > step {
			t.Errorf("wait %d: %v, want between %v and %v", i+1, d, step/2, step)
		}
	}
	b.Reset()
	if d := b.Next(); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("after Reset: %v, want between 50ms and 100ms", d)
	}
}

func TestDialRefused(t *testing.T) {
	// Port 1 on loopback is closed: the dial fails at once, not after
	// DialTimeout.
	start := time.Now()
	_, err := Dial(context.Background(), "amqp://guest:s3cret@127.0.0.1:1/", "test")
	if err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Dial took %v", time.Since(start))
	}
}

func TestDialDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// A non-routable address: only the deadline ends the dial.
	start := time.Now()
	if _, err := Dial(ctx, "amqp://10.255.255.1:5672/", "test"); err == nil {
		t.Fatal("Dial to a non-routable address succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial ended after %v, want about 200ms (ctx's deadline)", d)
	}
}
