package lambdasink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
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
	offline.stop()
	os.Exit(code)
}

// offline is the serverless-offline process the package's tests share,
// started by the first test that needs it.
var offline server

type server struct {
	once     sync.Once
	cmd      *exec.Cmd
	exited   chan struct{}
	endpoint string
	skip     string // why it could not start
	output   plugintest.LogBuffer
}

func (s *server) log() string { return s.output.String() }

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// serverlessCLI is the serverless CLI that scripts/services.sh installs.
func serverlessCLI() string {
	if v := os.Getenv("JUNCTION_SERVERLESS"); v != "" {
		return v
	}
	p, _ := filepath.Abs("../../.cache/sls/node_modules/.bin/serverless")
	return p
}

// endpoint returns the Lambda endpoint of the test server: the one in
// JUNCTION_TEST_LAMBDA_ENDPOINT, else a serverless-offline started in
// examples/webhook-function on free ports. Outside CI the test is skipped
// when it cannot be started.
func endpoint(t testing.TB) string {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	if v := os.Getenv("JUNCTION_TEST_LAMBDA_ENDPOINT"); v != "" {
		return v
	}
	offline.once.Do(func() { offline.start(t) })
	if offline.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("serverless-offline: %s (run scripts/services.sh)", offline.skip)
		}
		t.Skipf("serverless-offline: %s (run scripts/services.sh, or set JUNCTION_TEST_LAMBDA_ENDPOINT)", offline.skip)
	}
	return offline.endpoint
}

func (s *server) start(t testing.TB) {
	cli := serverlessCLI()
	if _, err := os.Stat(cli); err != nil {
		s.skip = fmt.Sprintf("%s is not installed", cli)
		return
	}
	if _, err := exec.LookPath("node"); err != nil {
		s.skip = "node is not installed"
		return
	}
	lambdaPort := freePort(t)
	s.cmd = exec.Command(cli, "offline", "start", "--host", "127.0.0.1",
		"--lambdaPort", lambdaPort, "--httpPort", freePort(t), "--websocketPort", freePort(t))
	s.cmd.Dir = "../../examples/webhook-function"
	s.cmd.Env = append(os.Environ(), "SLS_TELEMETRY_DISABLED=1", "SLS_NOTIFICATIONS_MODE=off",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
	s.cmd.Stdout, s.cmd.Stderr = &s.output, &s.output
	// Its own process group, so that stop ends the workers it may spawn.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.skip = fmt.Sprintf("start %s: %v", cli, err)
		return
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	addr := net.JoinHostPort("127.0.0.1", lambdaPort)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			s.endpoint = "http://" + addr
			return
		}
		select {
		case <-s.exited:
			s.skip = "exited during start-up:\n" + s.log()
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			s.skip = "not ready after 60s:\n" + s.log()
			return
		}
	}
}

// stop ends the process group it started, by its id.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
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
