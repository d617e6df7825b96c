package amqpsource

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// build makes a source from YAML-like settings.
func build(t testing.TB, c *Config, logs io.Writer) *Source {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	s, err := c.Build(context.Background(), sourcesDeps("q", logs))
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Source)
}

// run runs s in the background until the test ends and checks that Run
// returned nil.
func run(t testing.TB, s *Source, in sources.Ingester) (stop func()) {
	t.Helper()
	return sourcetest.Run(t, s, in, 10*time.Second)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
