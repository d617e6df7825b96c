// Command junction is the Junction event router: serve, validate, bench,
// version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/router"
	_ "github.com/junctionhq/junction/sinks/all"
	_ "github.com/junctionhq/junction/sources/all"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `Junction routes CloudEvents from HTTP, webhooks and queues to webhooks,
queues and functions, durably, with retries and dead-lettering.

Usage:
  junction serve [--config FILE]      run the router
  junction validate --config FILE     check a config without running it
  junction bench [flags]              run a built-in load test (junction bench -h)
  junction version                    print the version

Without --config, serve reads junction.yaml in the working directory if
there is one, else runs a built-in default: CloudEvents over HTTP on
127.0.0.1:8080/events printed on standard output, admin on 127.0.0.1:9090.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "junction", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "junction: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// loadConfig reads path, or junction.yaml, or the built-in default.
func loadConfig(path string, log *slog.Logger) (*config.Config, error) {
	if path == "" {
		if _, err := os.Stat("junction.yaml"); err == nil {
			path = "junction.yaml"
		}
	}
	if path == "" {
		if log != nil {
			log.Info("no --config and no junction.yaml here: running the built-in default (CloudEvents on http://127.0.0.1:8080/events, printed on stdout; see README.md)")
		}
		return config.Default(os.LookupEnv)
	}
	return config.Load(path)
}

// compileConfig loads the config (see loadConfig) and compiles its plan.
func compileConfig(path string, log *slog.Logger) (*config.Config, *router.Plan, error) {
	cfg, err := loadConfig(path, log)
	if err != nil {
		return nil, nil, err
	}
	plan, err := router.Compile(cfg)
	return cfg, plan, err
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: ./junction.yaml if present, else the built-in default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "junction serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	boot := newLogger(stderr, "info", "text")
	cfg, plan, err := compileConfig(*cfgPath, boot)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	log.Info("starting junction", "version", versionString(), "config", cfg.File, "plan", plan.Summary())
	for _, w := range plan.Warnings {
		log.Warn(w.Error())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := router.New(ctx, plan, router.Options{Logger: log})
	if err == nil {
		err = r.Listen() // closes the router when it fails
	}
	if err != nil {
		// A start-up failure (journal dir locked or unwritable, journal
		// server unreachable, a sink that cannot open, a port in use) is
		// the user's to fix: one plain line, no log record or trace.
		fmt.Fprintf(stderr, "junction: cannot start: %s\n", oneLine(err.Error()))
		return 1
	}
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file to check (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "junction validate: --config FILE is required")
		return 2
	}
	_, plan, err := compileConfig(*cfgPath, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range plan.Warnings {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "%s: ok: %s\n", *cfgPath, plan.Summary())
	return 0
}

// oneLine joins the lines of a multi-line message with "; ".
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
