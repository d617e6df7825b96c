package lambdasink

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/lambdatest"
	"github.com/junctionhq/junction/sinks"
)

// The functions of examples/webhook-function as serverless-offline names
// them (service-stage-function).
const (
	fnLabelPush = "webhook-function-dev-label-push"
	fnEcho      = "webhook-function-dev-echo"
	fnPlain     = "webhook-function-dev-plain"
	fnInvalid   = "webhook-function-dev-invalid"
	fnBoom      = "webhook-function-dev-boom"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if offline.srv != nil {
		offline.srv.Stop()
	}
	os.Exit(code)
}

// offline is the serverless-offline the package's tests share, started by
// the first test that needs it.
var offline struct {
	once sync.Once
	srv  *lambdatest.Server
	err  error // why it could not start
}

// endpoint returns the Lambda endpoint of the test server: the one in
// JUNCTION_TEST_LAMBDA_ENDPOINT, else a serverless-offline started in
// examples/webhook-function on free ports. Outside CI the test is skipped
// when it cannot be started.
func endpoint(t testing.TB) string {
	t.Helper()
	if v := lambdatest.Env(t); v != "" {
		return v
	}
	offline.once.Do(func() {
		offline.srv, offline.err = lambdatest.Start("../..", "../../examples/webhook-function")
	})
	if offline.err != nil {
		lambdatest.Skip(t, offline.err.Error())
	}
	return offline.srv.Endpoint
}

// build makes a sink for function on the test server, with the config
// tweaked by set.
func build(t testing.TB, function string, set func(*Config)) *Sink {
	t.Helper()
	c := NewConfig()
	c.Function = function
	c.Region = "us-east-1"
	c.Endpoint = endpoint(t)
	if set != nil {
		set(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := New(context.Background(), c, sinks.Deps{Name: "fn", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
