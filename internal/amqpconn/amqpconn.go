// Package amqpconn holds the connection code shared by the amqp source and
// sink: URL checks that never echo credentials, a bounded dial and the
// reconnect backoff.
package amqpconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junctionhq/junction/internal/backoff"
)

// DialTimeout bounds a dial, the TLS and AMQP handshakes included.
const DialTimeout = 10 * time.Second

// ParseURL checks an AMQP URI without echoing it: it may hold a password.
func ParseURL(s string) (amqp.URI, error) {
	if s == "" {
		return amqp.URI{}, errors.New("required: the broker's AMQP URI, such as amqp://user:password@host:5672/vhost")
	}
	u, err := url.Parse(s)
	if err != nil {
		// Never quote url.Parse's error: it may hold part of a password
		// (with an unencoded '#', the password ends up as the port).
		what := "malformed"
		if strings.Contains(err.Error(), "invalid port") {
			what = "invalid port"
		}
		return amqp.URI{}, fmt.Errorf("invalid AMQP URI: %s (a password with reserved characters such as @ : / ? # must be percent-encoded)", what)
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return amqp.URI{}, fmt.Errorf("scheme must be amqp or amqps, not %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return amqp.URI{}, errors.New("missing host")
	}
	uri, err := amqp.ParseURI(s)
	if err != nil {
		return amqp.URI{}, fmt.Errorf("invalid AMQP URI: %v", err)
	}
	return uri, nil
}

// HostPort is uri's host:port, which logs and errors may show.
func HostPort(uri amqp.URI) string {
	return net.JoinHostPort(uri.Host, fmt.Sprint(uri.Port))
}

// Dial connects to rawURL, naming the connection name on the broker. The
// dial and the handshakes end by DialTimeout or ctx's deadline, whichever
// is sooner.
func Dial(ctx context.Context, rawURL, name string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	deadline := time.Now().Add(DialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return amqp.DialConfig(rawURL, amqp.Config{
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bounds the TLS and AMQP handshakes; amqp091 clears it once
			// the connection is open.
			if err := c.SetDeadline(deadline); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	})
}

// Backoff is the reconnect loops' backoff (see internal/backoff).
type Backoff = backoff.Backoff
