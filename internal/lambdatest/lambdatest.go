// Package lambdatest runs serverless-offline (installed by
// scripts/services.sh) as a real Lambda Invoke API for tests: the
// functions of examples/webhook-function on free loopback ports, with the
// CI rule for a server that cannot run. Only tests import it.
package lambdatest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
)

// ErrCannotRun is the error of Start when serverless-offline cannot run
// here: serverless or node is not installed, or the CLI does not start.
var ErrCannotRun = errors.New("cannot run")

// Server is a running serverless-offline.
type Server struct {
	// Endpoint is its Lambda Invoke API, http://127.0.0.1:port.
	Endpoint string

	cmd    *exec.Cmd
	exited chan struct{}
	out    plugintest.LogBuffer
}

// Env puts test AWS credentials in the environment (for the SDK clients
// of the code under test and of the junction processes a test starts) and
// returns the endpoint in JUNCTION_TEST_LAMBDA_ENDPOINT, empty when the
// tests must start their own server.
func Env(t testing.TB) string {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return os.Getenv("JUNCTION_TEST_LAMBDA_ENDPOINT")
}

// Skip skips the test because serverless-offline could not run (why), or
// fails it when CI=true.
func Skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("serverless-offline: %s (run scripts/services.sh)", why)
	}
	t.Skipf("serverless-offline: %s (run scripts/services.sh, or set JUNCTION_TEST_LAMBDA_ENDPOINT)", why)
}

// Start runs serverless-offline in dir (the directory of
// examples/webhook-function) in its own process group and waits up to 60s
// for its Lambda port. cli is the serverless CLI: JUNCTION_SERVERLESS, else
// .cache/sls/node_modules/.bin/serverless under root (the repository, as a
// path from the test's package). The error wraps ErrCannotRun when the
// server cannot run here; otherwise it says why it did not become ready,
// with its output.
func Start(root, dir string) (*Server, error) {
	cli := os.Getenv("JUNCTION_SERVERLESS")
	if cli == "" {
		cli, _ = filepath.Abs(filepath.Join(root, ".cache/sls/node_modules/.bin/serverless"))
	}
	if _, err := os.Stat(cli); err != nil {
		return nil, fmt.Errorf("%w: %s is not installed", ErrCannotRun, cli)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return nil, fmt.Errorf("%w: node is not installed", ErrCannotRun)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s := &Server{exited: make(chan struct{})}
	s.cmd = exec.Command(cli, "offline", "start", "--host", "127.0.0.1",
		"--lambdaPort", ports[0], "--httpPort", ports[1], "--websocketPort", ports[2])
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "SLS_TELEMETRY_DISABLED=1", "SLS_NOTIFICATIONS_MODE=off",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	// Its own process group, so that Stop ends the workers it may spawn.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s: %v", ErrCannotRun, cli, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	addr := net.JoinHostPort("127.0.0.1", ports[0])
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			s.Endpoint = "http://" + addr
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("exited during start-up:\n%s", s.Output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("not ready after 60s:\n%s", s.Output())
		}
	}
}

// Output is what the server printed.
func (s *Server) Output() string { return s.out.String() }

// Stop ends the server's process group: SIGTERM, then SIGKILL after 5s.
func (s *Server) Stop() {
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
}

func freePorts(n int) ([]string, error) {
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		ports = append(ports, p)
	}
	return ports, nil
}
