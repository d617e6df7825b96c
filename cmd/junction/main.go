// Command junction is the Junction event router: serve, validate, bench,
// healthcheck, version, help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/router"
	_ "github.com/junctionhq/junction/sinks/all"
	"github.com/junctionhq/junction/sources"
	_ "github.com/junctionhq/junction/sources/all"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `Junction routes CloudEvents from HTTP, webhooks and queues to webhooks,
queues and functions, durably, with retries and dead-lettering.

Usage:
  junction COMMAND [flags] [arguments]

Commands:
  serve [--config FILE]          run the router
  validate [FILE]                check a config without running it
  bench [flags]                  run a built-in load test
  test [--config FILE] FILE...   run route tests: events in, what each sink gets
  schema                         print the JSON Schema of the config
  healthcheck [--admin URL]      ask a running junction whether it is healthy
  replay --from T [--to T]       route the archived events of a period again
  events get ID [--source S]     print the trace of an event (accepted, routes, attempts)
  deadletters list|redrive       list dead letters, or deliver them again
  reload [--admin URL]           make a running junction read its config again
  status [--admin URL]           show a running junction's sources, routes and sinks
  version                        print the version and the Go version
  help [COMMAND]                 print the help of a command

Run 'junction help COMMAND' (or 'junction COMMAND --help') for its flags and
examples. -c is short for --config.

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
		return serve(args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "test":
		return routeTests(args[1:], stdout, stderr)
	case "schema":
		return schemaCmd(args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheck(args[1:], stdout, stderr)
	case "reload":
		return reloadCmd(args[1:], stdout, stderr)
	case "status":
		return statusCmd(args[1:], stdout, stderr)
	case "replay":
		return replay(args[1:], stdout, stderr)
	case "events":
		return eventsCmd(args[1:], stdout, stderr)
	case "deadletters":
		return deadlettersCmd(args[1:], stdout, stderr)
	case "version":
		return versionCmd(args[1:], stdout, stderr)
	case "--version", "-v":
		return versionCmd(nil, stdout, stderr)
	case "help":
		return help(args[1:], stdout, stderr)
	case "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "junction: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// help prints the overview, or a command's help as COMMAND --help does.
func help(args []string, stdout, stderr io.Writer) int {
	rest, code, ok := parseArgs(newFlagSet("help"), args, stdout, stderr)
	switch {
	case !ok:
		return code
	case len(rest) == 0:
		fmt.Fprint(stdout, usage)
		return 0
	case len(rest) == 2 && helps[rest[0]+" "+rest[1]].usage != "": // help events get
		return run([]string{rest[0], rest[1], "--help"}, stdout, stderr)
	case len(rest) > 1:
		return usageError(stderr, "help", fmt.Sprintf("one COMMAND at most, got %q", rest))
	case rest[0] == "help":
		printHelp(stdout, "help", newFlagSet("help"))
		return 0
	case helps[rest[0]].usage == "":
		fmt.Fprintf(stderr, "junction: unknown command %q\n\n%s", rest[0], usage)
		return 2
	}
	return run([]string{rest[0], "--help"}, stdout, stderr)
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, "version", fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	fmt.Fprintf(stdout, "junction %s (%s)\n", versionString(), runtime.Version())
	return 0
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
			// No address here: JUNCTION_HTTP_LISTEN may change it, and the
			// real URLs are logged once listening.
			log.Info("no --config and no junction.yaml here: running the built-in default (CloudEvents over HTTP, every event printed on stdout; see README.md)")
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

func serve(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve")
	cfgPath := configFlag(fs, "the config `FILE` (default: ./junction.yaml if present, else the built-in default)")
	watch := fs.Bool("watch", false, "reload the config each time its file changes (as SIGHUP and POST /api/v1/reload do)")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, "serve", fmt.Sprintf("unexpected argument %q (the config is --config FILE)", rest[0]))
	}
	boot := newLogger(stderr, "info", "text")
	cfg, plan, err := compileConfig(*cfgPath, boot)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := cfg.CheckExposure(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	// The start-up lines (version, journal, every URL, ready) show at any
	// log.level: they are how a user finds the ports. They are INFO records
	// in the configured format, not ERROR ones nor plain text, so that a
	// JSON log stays one JSON object a line and nothing alerts on them.
	start := newLogger(stderr, "info", cfg.Log.Format)
	start.Info("starting junction", "version", versionString(), "go", runtime.Version(), "config", cfg.File, "plan", plan.Summary())
	for _, w := range plan.Warnings {
		log.Warn(w.Error())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	file := cfg.File // "" for the built-in default
	if file == config.DefaultName {
		file = ""
	}
	if *watch && file == "" {
		return usageError(stderr, "serve", "--watch needs a config file (--config FILE or ./junction.yaml); the built-in default has none")
	}
	// SIGHUP, and with --watch a change of the file, reload the config.
	changed := make(chan string, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				trigger(changed, "SIGHUP")
			case <-ctx.Done():
				return
			}
		}
	}()
	if *watch {
		if err := watchConfig(ctx, file, log, func() { trigger(changed, "--watch") }); err != nil {
			fmt.Fprintf(stderr, "junction: cannot start: %s\n", joinLines(err.Error()))
			return 1
		}
	}
	// A reload reads the same file again (or the built-in default).
	load := func() (*router.Plan, error) {
		_, p, err := compileConfig(file, nil)
		return p, err
	}
	r, err := router.New(ctx, plan, router.Options{Logger: log, StartupLogger: start, Load: load, Version: versionString()})
	if err == nil {
		err = r.Listen() // closes the router when it fails
	}
	if err != nil {
		// A start-up failure (journal dir locked or unwritable, journal
		// server unreachable, a sink that cannot open, a port in use) is
		// the user's to fix: one plain line, no log record or trace.
		fmt.Fprintf(stderr, "junction: cannot start: %s\n", joinLines(err.Error()))
		return 1
	}
	logStartup(start, cfg, plan, r.IngressAddr())
	go reloadOn(ctx, r, log, cfg.File, changed)
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// trigger asks reloadOn for a reload; one already asked for covers it.
func trigger(changed chan string, why string) {
	select {
	case changed <- why:
	default:
	}
}

// reloadOn reloads r's config each time changed says why, until ctx ends.
func reloadOn(ctx context.Context, r *router.Router, log *slog.Logger, file string, changed <-chan string) {
	for {
		select {
		case why := <-changed:
			log.Info("reloading the config", "trigger", why, "file", file)
			r.ReloadConfig(ctx) // it logs what it did, or why not
		case <-ctx.Done():
			return
		}
	}
}

// logStartup logs the journal and the URL of each source on the HTTP
// ingress, now listening on ingress (the router logs the admin URL and
// "junction ready").
func logStartup(log *slog.Logger, cfg *config.Config, plan *router.Plan, ingress string) {
	if cfg.Journal.URL != "" {
		log.Info("journal", "url", redactURLs(cfg.Journal.URL), "stream", cfg.Journal.Stream)
	} else {
		dir := cfg.Journal.Dir
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		log.Info("journal", "dir", dir)
	}
	if a := cfg.Journal.Archive; a != nil {
		log.Info("archive on: accepted events kept for replays", "maxAge", a.MaxAge.String(), "maxBytes", a.MaxBytes.String(),
			"replayRate", a.ReplayRate)
	}
	if ingress == "" {
		return
	}
	scheme := "http"
	if cfg.HTTP.TLS != nil {
		scheme = "https"
	}
	for _, sp := range plan.Sources {
		if hc, ok := sp.Config.(sources.HTTPConfig); ok && hc.HTTPPath() != "" {
			log.Info("source listening", "source", sp.Plugin.Name, "type", sp.Plugin.Type, "url", scheme+"://"+ingress+hc.HTTPPath())
		}
	}
}

// redactURLs hides the user info (a password, or a NATS token as the user)
// in a comma-separated list of URLs.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			if u.User != nil {
				u.User = url.User("xxxxx")
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate")
	cfgPath := configFlag(fs, "the config `FILE` to check, the same as the FILE argument")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	path := *cfgPath
	switch {
	case len(rest) > 1:
		return usageError(stderr, "validate", fmt.Sprintf("one FILE at most, got %d: %s", len(rest), strings.Join(rest, " ")))
	case len(rest) == 1 && path != "" && rest[0] != path:
		return usageError(stderr, "validate", fmt.Sprintf("two configs: %s and --config %s; give one", rest[0], path))
	case len(rest) == 1:
		path = rest[0]
	}
	if path == "" {
		if _, err := os.Stat("junction.yaml"); err != nil {
			return usageError(stderr, "validate", "which config? give FILE or --config FILE (there is no junction.yaml here)")
		}
		path = "junction.yaml"
	}
	cfg, plan, err := compileConfig(path, nil)
	if err == nil {
		err = cfg.CheckExposure() // serve would refuse it
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range plan.Warnings {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "%s: ok: %s\n", path, plan.Summary())
	return 0
}

// joinLines joins the lines of a multi-line message (an error that lists
// several problems) with "; ", for one line on the terminal.
func joinLines(s string) string {
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
