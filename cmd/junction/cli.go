package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// cmdHelp is what `junction help CMD` and `junction CMD --help` print
// around the flags.
type cmdHelp struct {
	usage    string // the synopsis after "Usage: "
	desc     string
	examples string
}

var helps = map[string]cmdHelp{
	"serve": {
		usage: "junction serve [--config FILE] [--watch]",
		desc: `Runs the router: the HTTP ingress, the sources, the journal, deliveries to
the sinks, and the admin API (/healthz, /readyz, /metrics). Without --config
it reads junction.yaml in the working directory if there is one, else runs a
built-in default (CloudEvents over HTTP on 127.0.0.1:8080/events printed on
standard output, admin on 127.0.0.1:9090, the journal in ./data; the
environment variables JUNCTION_HTTP_LISTEN, JUNCTION_ADMIN_LISTEN and
JUNCTION_JOURNAL_DIR change them).

At start it prints the URL of each HTTP source, the journal and the admin
URL, then "junction ready", whatever log.level says. An invalid config never
starts: serve exits 1 with the same FILE:LINE:COL lines as validate.
SIGINT or SIGTERM stops it gracefully: sources stop, deliveries in flight
drain for up to 15 s, then it exits 0.

SIGHUP reloads the config file, as 'junction reload' does; with --watch,
every change of the file does too (its directory is watched, so an editor
or a ConfigMap that replaces the file is followed). A config with errors is
logged and not applied: the running one keeps running.`,
		examples: `junction serve
junction serve -c junction.yaml --watch
JUNCTION_HTTP_LISTEN=0.0.0.0:8080 junction serve
kill -HUP $(pidof junction)     # reload the config`,
	},
	"reload": {
		usage: "junction reload [--admin URL] [-c FILE] [--json]",
		desc: `Makes a running junction read its config file again (POST /api/v1/reload)
and apply it without a restart: new routes apply to events accepted from
then on, deliveries already in the journal keep going, new sinks and
sources start, removed sources stop, and a removed sink's pending
deliveries stay in the journal until a config names it again (a warning
says how many). Sinks and sources whose config did not change keep running.

Prints the new summary and what changed, exit 0. When the config has
errors, prints them as FILE:LINE:COL: message (as validate does) and exits
1: the running config is kept. journal.*, admin.* and http.* (but
http.maxBodySize) cannot change while junction runs; a reload that changes
them fails the same way (log.* and telemetry changes apply at the next
start, with a warning; TLS certificate files are re-read on their own). The same as SIGHUP, and as
serve --watch on every change of the file.`,
		examples: `junction reload
junction reload -c /etc/junction/junction.yaml
junction reload --admin http://10.0.0.5:9090 --json`,
	},
	"status": {
		usage: "junction status [--admin URL] [-c FILE] [--json]",
		desc: `Shows what a running junction runs (GET /api/v1/status): its sources and
whether each is ready, its routes (sources and sinks), and its sinks with
their pending deliveries, circuit state (closed, open, half-open), rate
limit and last error.`,
		examples: `junction status
junction status --json
junction status --admin http://10.0.0.5:9090 --token "$TOKEN"`,
	},
	"validate": {
		usage: "junction validate [FILE] [--config FILE]",
		desc: `Checks a config without running it: YAML, every source, sink and route,
expressions, and ${NAME} environment variables. Exit 0 and a one-line
summary (warnings on stderr), or exit 1 with every error as
FILE:LINE:COL: message. The file is the argument or --config; without
either, junction.yaml in the working directory.`,
		examples: `junction validate junction.yaml
junction validate -c deploy/junction.yaml
junction validate            # ./junction.yaml`,
	},
	"bench": {
		usage: "junction bench [flags]",
		desc: `Starts a router with a local webhook sink in this process, sends CloudEvents
in binary mode over HTTP, and reports throughput, end-to-end latency, losses
and duplicates. Exit 1 when an accepted event was lost.`,
		examples: `junction bench
junction bench --duration 30s --connections 64 --fsync always
junction bench --json > result.json
junction bench --tls --duration 30s
junction bench --url http://127.0.0.1:8080/events --sink 127.0.0.1:9999`,
	},
	"test": {
		usage: "junction test [--config FILE] FILE...",
		desc: `Runs route tests: each test sends one CloudEvent through the config's
routes (filters, transforms, orderBy, delay, priority, dead-lettering of
failed transforms) exactly as serve would, without starting anything: no
journal, no sources, no sinks, no network. It checks, per sink, the events
the sink would receive, in order; a sink the test does not list must
receive nothing. Each expected event is a subset match: the attributes and
data fields it names must be equal, others are not compared.

  tests:
    - name: big orders go to billing
      event: {specversion: "1.0", id: "1", source: /shop, type: com.example.order.created,
              datacontenttype: application/json, data: {amount: 150, orderId: o1}}
      source: events      # optional: the source it arrives on (default: the first)
      expect:
        billing:
          - {type: com.example.order.big, data: {id: o1, total: 150}}
    - name: small orders match nothing
      event: {specversion: "1.0", id: "2", source: /shop, type: com.example.order.created,
              datacontenttype: application/json, data: {amount: 5}}
      expect: {}          # no sink receives anything

Prints each test's name and ok or FAIL; a failure shows the sink, the path
of the first difference, what was expected and what the sink got. Exit 0
when every test passes, else 1 (also for an invalid config or test file,
with FILE:LINE:COL lines). The config is --config, else ./junction.yaml.`,
		examples: `junction test -c junction.yaml tests.yaml
junction test examples/quickstart/tests.yaml --config examples/quickstart/junction.yaml`,
	},
	"schema": {
		usage: "junction schema",
		desc: `Prints the JSON Schema (draft 2020-12) of the config file: every top-level
key, every source and sink type with its own keys (chosen by type), routes
and delivery policies. Unknown keys are refused, as validate refuses them.
Editors that speak YAML (the YAML language server in VS Code, JetBrains
IDEs) then complete and check junction.yaml: save the schema and name it on
the file's first line:

  junction schema > junction.schema.json
  # yaml-language-server: $schema=./junction.schema.json

The schema checks structure only; validate also checks names, references,
expressions and values.`,
		examples: `junction schema > junction.schema.json`,
	},
	"healthcheck": {
		usage: "junction healthcheck [--admin URL] [--ready]",
		desc: `Asks a running junction's admin API whether it is alive (GET /healthz) or,
with --ready, ready to take events (GET /readyz: the journal takes writes
and every source is connected). Exit 0 on 200, else exit 1 with the reason.
Made for container health checks (the image has no curl). The admin URL is
--admin, else admin.listen of --config or ./junction.yaml, else the built-in
default's (http://127.0.0.1:9090, or JUNCTION_ADMIN_LISTEN).`,
		examples: `junction healthcheck
junction healthcheck --ready --admin http://10.0.0.5:9090
junction healthcheck -c /etc/junction/junction.yaml`,
	},
	"replay": {
		usage: "junction replay --from T [--to T] [--route R]... [--filter EXPR] [--wait] | replay list | replay get ID",
		desc: `Routes the events a running junction accepted in a period again, from its
archive (journal.archive in the config must be on): each event accepted from
--from (included) to --to (excluded) that passes --filter goes again through
the current routes, or only the --route ones, and their sinks receive it
with the extension junctionreplay set to the replay's id. Replayed events
are not deduplicated and not archived again. Prints the replay's id; with
--wait, a line per change of its progress until it ends (exit 1 if it
failed). Times are RFC 3339, now, or -DURATION before now.

replay list prints every replay, newest first; replay get ID one replay.`,
		examples: `junction replay --from 2026-01-02T10:00:00Z --to 2026-01-02T11:00:00Z
junction replay --from -1h --route billing --filter 'type == "order.created"' --wait
junction replay list
junction replay get rp-4f3kq7pj2mxa6z5b --json`,
	},
	"version": {
		usage:    "junction version",
		desc:     `Prints the version and the Go version junction was built with.`,
		examples: `junction version`,
	},
	"help": {
		usage: "junction help [COMMAND]",
		desc: `Prints the overview of the commands, or a command's description, flags and
examples (the same as junction COMMAND --help).`,
		examples: `junction help
junction help validate`,
	},
}

// shortNames maps a flag to its one-letter alias.
var shortNames = map[string]string{"config": "c"}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseArgs prints errors and help itself
	fs.Usage = func() {}
	return fs
}

// configFlag registers --config FILE and its alias -c.
func configFlag(fs *flag.FlagSet, usage string) *string {
	p := fs.String("config", "", usage)
	fs.StringVar(p, shortNames["config"], "", "")
	return p
}

// parseArgs parses flags anywhere among the arguments (Go's flag package
// stops at the first non-flag) and returns the arguments. After "--" all
// are arguments. On -h or --help it prints the command's help on stdout
// (ok false, code 0); on a bad flag, the error on stderr (ok false, code 2).
func parseArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (rest []string, code int, ok bool) {
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, fs.Name(), fs)
			return nil, 0, false
		}
		if err != nil {
			return nil, usageError(stderr, fs.Name(), longFlags(err.Error())), false
		}
		left := fs.Args()
		if used := args[:len(args)-len(left)]; len(used) > 0 && used[len(used)-1] == "--" {
			return append(rest, left...), 0, true
		}
		if len(left) == 0 {
			return rest, 0, true
		}
		rest, args = append(rest, left[0]), left[1:]
	}
}

// usageError prints "junction CMD: msg" and where the help is; exit 2.
func usageError(stderr io.Writer, cmd, msg string) int {
	fmt.Fprintf(stderr, "junction %s: %s\nRun 'junction help %s' for usage.\n", cmd, msg, cmd)
	return 2
}

var singleDash = regexp.MustCompile(`(: |flag )-([A-Za-z0-9][A-Za-z0-9_-]+)`)

// longFlags rewrites the flag package's "-name" in its errors as "--name".
func longFlags(msg string) string { return singleDash.ReplaceAllString(msg, "$1--$2") }

// printHelp prints a command's usage, description, flags with --long names,
// and examples.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	h := helps[name]
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", h.usage, h.desc)
	type row struct{ left, usage string }
	var rows []row
	aliases := map[string]bool{}
	for _, s := range shortNames {
		aliases[s] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if aliases[f.Name] && f.Usage == "" {
			return
		}
		left := "--" + f.Name
		if s, ok := shortNames[f.Name]; ok && fs.Lookup(s) != nil {
			left = "-" + s + ", " + left
		} else {
			left = "    " + left
		}
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			left += " " + strings.ToUpper(arg)
		}
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" {
			usage += " (default " + d + ")"
		}
		rows = append(rows, row{left, usage})
	})
	rows = append(rows, row{"-h, --help", "print this help"})
	width := 0
	for _, r := range rows {
		width = max(width, len(r.left))
	}
	width = min(width, 24)
	for _, r := range rows {
		lines := wrap(r.usage, 78-4-width)
		if len(r.left) > width {
			fmt.Fprintf(w, "  %s\n", r.left)
		} else {
			fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, lines[0])
			lines = lines[1:]
		}
		for _, l := range lines {
			fmt.Fprintf(w, "  %-*s  %s\n", width, "", l)
		}
	}
	fmt.Fprintf(w, "\nExamples:\n")
	for _, l := range strings.Split(h.examples, "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// wrap splits s into lines of at most n bytes at spaces.
func wrap(s string, n int) []string {
	var lines []string
	var cur string
	for _, word := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(word) > n {
			lines = append(lines, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += word
	}
	return append(lines, cur)
}
