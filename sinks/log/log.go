// Package logsink is the "log" sink: it writes each delivered event as one
// line of CloudEvents JSON (the structured-mode form) to stdout, stderr or a
// file. It suits dead letters, debugging and tests.
package logsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/cejson"
	"github.com/junctionhq/junction/sinks"
)

// Type is the sink type name in the config.
const Type = "log"

// Special values of Config.Output.
const (
	OutputStdout = "stdout"
	OutputStderr = "stderr"
)

func init() {
	sinks.Register(Type, func() sinks.Config { return NewConfig() })
}

// Config is the log sink's config.
type Config struct {
	// Output is "stdout" (default), "stderr", or the path of a file that
	// is opened for appending and created if missing (write ./stdout for a
	// file of that name).
	Output string `yaml:"output"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config { return &Config{Output: OutputStdout} }

var _ sinks.Config = (*Config)(nil)

// Validate checks the config without I/O.
func (c *Config) Validate() error {
	if c.Output == "" {
		return config.FieldErrorf("output", "must be stdout, stderr or a file path")
	}
	if c.Output != OutputStdout && c.Output != OutputStderr && !strings.ContainsAny(c.Output, `/\.`) {
		if s := config.Suggest(c.Output, []string{OutputStdout, OutputStderr}); s != "" {
			return config.FieldErrorf("output", "%q: did you mean %s? (a file in the working directory is written ./%s)", c.Output, s, c.Output)
		}
	}
	return nil
}

// Build opens the output.
func (c *Config) Build(ctx context.Context, deps sinks.Deps) (sinks.Sink, error) {
	return New(c, deps)
}

// New makes a log sink, opening its output file if it has one.
func New(c *Config, deps sinks.Deps) (*Log, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	l := &Log{output: c.Output}
	switch c.Output {
	case OutputStdout:
		l.w = os.Stdout
	case OutputStderr:
		l.w = os.Stderr
	default:
		f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("open log output %s: %w", c.Output, err)
		}
		l.w, l.file = f, f
	}
	if deps.Logger != nil {
		deps.Logger.Debug("log sink ready", "output", c.Output)
	}
	return l, nil
}

// Log is the log sink. It is safe for concurrent use: each event is one
// write of one whole line.
type Log struct {
	output string
	mu     sync.Mutex
	w      io.Writer
	file   *os.File // nil for stdout and stderr
	buf    bytes.Buffer
}

var _ sinks.Sink = (*Log)(nil)

// Deliver writes e as one JSON line. An event that cannot be encoded is a
// permanent failure; a failed write is retryable.
func (l *Log) Deliver(ctx context.Context, e *event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
	if err := cejson.Write(e, &l.buf); err != nil {
		return sinks.Permanent(fmt.Errorf("encode event %s: %w", e.ID(), err))
	}
	l.buf.WriteByte('\n')
	if _, err := l.w.Write(l.buf.Bytes()); err != nil {
		return sinks.Retryable(fmt.Errorf("write event %s to %s: %w", e.ID(), l.output, err), 0)
	}
	// Do not keep a huge buffer alive after one large event.
	if l.buf.Cap() > 1<<20 {
		l.buf = bytes.Buffer{}
	}
	return nil
}

// Close closes the output file; stdout and stderr stay open.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	l.w = closedWriter{}
	if err != nil {
		return fmt.Errorf("close log output: %w", err)
	}
	return nil
}

// errClosed is returned by Deliver after Close.
var errClosed = errors.New("sink closed")

type closedWriter struct{}

func (closedWriter) Write([]byte) (int, error) { return 0, errClosed }
