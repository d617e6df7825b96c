package amqpsource

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/junctionhq/junction/sources"
	"github.com/junctionhq/junction/sources/sourcetest"
)

// decoded decodes src, the source's own keys, as the loader does; the
// test fails on any config error.
func decoded(t testing.TB, src string) *Config {
	t.Helper()
	c, errs := check(t, src)
	if errs != "" {
		t.Fatal(errs)
	}
	return c
}

// build decodes src as decoded does and builds the source, named "q".
func build(t testing.TB, src string, logs io.Writer) *Source {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	s, err := decoded(t, src).Build(context.Background(), sourcesDeps("q", logs))
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Source)
}

// consume is the config of a source that consumes queue q of the broker at
// u with prefetch.
func consume(u, q string, prefetch int) string {
	return fmt.Sprintf("url: %s\nqueue: %s\nprefetch: %d\n", u, q, prefetch)
}

// run runs s in the background until the test ends and checks that Run
// returned nil.
func run(t testing.TB, s *Source, in sources.Ingester) (stop func()) {
	t.Helper()
	return sourcetest.Run(t, s, in, 10*time.Second)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
