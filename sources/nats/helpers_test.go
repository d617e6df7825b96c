package natssource

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/junctionhq/junction/internal/natstest"
	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// decoded decodes src, the source's own keys, as the loader does; the test
// fails on any config error.
func decoded(t testing.TB, src string) *Config {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatal(errs)
	}
	return c
}

// run builds c, a config from decoded, and runs it with in until the test
// ends; Run must return nil.
func run(t testing.TB, c *Config, in sources.Ingester) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = sourcetest.Logger(os.Stderr)
	}
	built, err := c.Build(context.Background(), sources.Deps{Name: "natstest", Logger: log})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	sourcetest.Run(t, built.(*Source), in, 15*time.Second)
}

// jsConfig is the config of a JetStream source on stream of the server at
// url, with a durable of its own.
func jsConfig(url, stream string) string {
	return fmt.Sprintf("url: %s\nstream: %s\ndurable: d_%s\n", url, stream, natstest.Suffix())
}

// publish publishes a message with headers kv (name, value, ...) to the
// stream and waits for its PubAck.
func publish(t testing.TB, js jetstream.JetStream, subject, data string, kv ...string) {
	t.Helper()
	m := nats.NewMsg(subject)
	for i := 0; i+1 < len(kv); i += 2 {
		m.Header.Set(kv[i], kv[i+1])
	}
	m.Data = []byte(data)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// lastDeadLetter returns the last message on subject in stream, a
// dead-letter stream; the test fails when there is none.
func lastDeadLetter(t testing.TB, js jetstream.JetStream, stream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	return m
}
