package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The ops commands on events and dead letters: clients of the admin API
// (GET /api/v1/events/{id}, GET /api/v1/deadletters, POST
// /api/v1/deadletters/redrive).

func init() {
	helps["events"] = cmdHelp{
		usage: "junction events get ID [--source S] [--admin URL] [--json]",
		desc: `Commands on accepted events. get prints the trace of an event from the
event log: when and by which source it was accepted, each route it matched
(or that none did), and per delivery its sink, state (pending, delivered,
dead_lettered, dropped) and every attempt with its time, outcome, status,
duration and error. Traces are kept for journal.traceRetention (24h by
default). Run 'junction events get --help' for its flags.`,
		examples: `junction events get order-1234
junction events get order-1234 --source /shop --json`,
	}
	helps["events get"] = cmdHelp{
		usage: "junction events get ID [--source S] [--admin URL] [--json]",
		desc: `Prints the trace of the event with id ID (GET /api/v1/events/ID): when and
by which source it was accepted, each route it matched, and per delivery
its state and attempts. When events from several CloudEvents sources share
the id, all are printed; --source picks one. Exit 1 when the event is
unknown or its trace expired (journal.traceRetention).`,
		examples: `junction events get order-1234
junction events get order-1234 --source /shop
junction events get order-1234 --json --admin http://10.0.0.5:9090`,
	}
	helps["deadletters"] = cmdHelp{
		usage: "junction deadletters list|redrive [flags]",
		desc: `Commands on the dead-letter store: every delivery given up on (its policy
exhausted, a permanent failure, a failed transform), kept for
journal.deadLetterRetention. list shows them, newest first; redrive
delivers them again to their original sink with a fresh policy. Run
'junction deadletters list --help' or 'junction deadletters redrive --help'
for their flags.`,
		examples: `junction deadletters list --route orders
junction deadletters redrive --route orders --sink billing`,
	}
	helps["deadletters list"] = cmdHelp{
		usage: "junction deadletters list [--route R] [--sink S] [--limit N] [--after CURSOR] [--json]",
		desc: `Lists dead letters, newest first (GET /api/v1/deadletters): each entry's id,
when it was dead-lettered, its route and sink, how many attempts were made
and the last error. When there are more, the last line gives the --after
CURSOR of the next page.`,
		examples: `junction deadletters list
junction deadletters list --route orders --sink billing --limit 20
junction deadletters list --after 1234 --json`,
	}
	helps["deadletters redrive"] = cmdHelp{
		usage: "junction deadletters redrive [ID...] [--route R] [--sink S] [--all]",
		desc: `Delivers dead letters again to their original sink with a fresh delivery
policy (POST /api/v1/deadletters/redrive) and prints "redriven N". Give the
entries' ids (from list), or --route and/or --sink to take every entry of
that route or sink, or --all for the whole store. A redriven entry leaves
the store; if it fails again it comes back.`,
		examples: `junction deadletters redrive 17 18
junction deadletters redrive --route orders --sink billing
junction deadletters redrive --all`,
	}
}

// eventsCmd runs junction events SUBCOMMAND.
func eventsCmd(args []string, stdout, stderr io.Writer) int {
	return subcommand("events", map[string]func([]string, io.Writer, io.Writer) int{"get": eventsGet}, args, stdout, stderr)
}

// deadlettersCmd runs junction deadletters SUBCOMMAND.
func deadlettersCmd(args []string, stdout, stderr io.Writer) int {
	return subcommand("deadletters", map[string]func([]string, io.Writer, io.Writer) int{
		"list": deadlettersList, "redrive": deadlettersRedrive,
	}, args, stdout, stderr)
}

// subcommand runs the subcommand of cmd that args name; with none, or on
// --help, it prints cmd's help.
func subcommand(cmd string, subs map[string]func([]string, io.Writer, io.Writer) int, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageError(stderr, cmd, "which one? "+subNames(subs))
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printHelp(stdout, cmd, newFlagSet(cmd))
		return 0
	}
	run, ok := subs[args[0]]
	if !ok {
		return usageError(stderr, cmd, fmt.Sprintf("unknown subcommand %q (%s)", args[0], subNames(subs)))
	}
	return run(args[1:], stdout, stderr)
}

func subNames(subs map[string]func([]string, io.Writer, io.Writer) int) string {
	names := slices.Sorted(maps.Keys(subs))
	return strings.Join(names, " or ")
}

// opsCall makes one call of the admin API for command cmd.
func opsCall(cf *clientFlags, method, path string, in, out any) (json.RawMessage, error) {
	c, err := cf.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	return c.call(ctx, method, path, in, out)
}

// eventTrace is the trace of one event, as GET /api/v1/events/{id} answers.
type eventTrace struct {
	ID         string     `json:"id"`
	Source     string     `json:"source"`
	Type       string     `json:"type"`
	AcceptedAt *time.Time `json:"acceptedAt"`
	SourceName string     `json:"sourceName"`
	Unrouted   bool       `json:"unrouted"`
	Routes     []struct {
		Route      string `json:"route"`
		Deliveries []struct {
			Sink     string `json:"sink"`
			State    string `json:"state"`
			Attempts []struct {
				At         time.Time `json:"at"`
				Attempt    int       `json:"attempt"`
				Outcome    string    `json:"outcome"`
				Status     int       `json:"status"`
				Error      string    `json:"error"`
				DurationMs float64   `json:"durationMs"`
			} `json:"attempts"`
		} `json:"deliveries"`
	} `json:"routes"`
}

// eventsGet runs junction events get ID.
func eventsGet(args []string, stdout, stderr io.Writer) int {
	const cmd = "events get"
	fs := newFlagSet(cmd)
	cf := addClientFlags(fs)
	source := fs.String("source", "", "the event's CloudEvents `SOURCE`, when several events share the id")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) != 1 {
		return usageError(stderr, cmd, "give one event ID")
	}
	path := "/api/v1/events/" + url.PathEscape(rest[0])
	if isSet(fs, "source") {
		path += "?source=" + url.QueryEscape(*source)
	}
	var doc struct {
		eventTrace
		Events []eventTrace `json:"events"`
	}
	raw, err := opsCall(cf, "GET", path, nil, &doc)
	if err != nil {
		return clientError(stderr, cmd, err)
	}
	if *cf.json {
		printJSON(stdout, raw)
		return 0
	}
	traces := doc.Events
	if traces == nil {
		traces = []eventTrace{doc.eventTrace}
	}
	for i, t := range traces {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printTrace(stdout, t)
	}
	return 0
}

// traceTime is how events get prints times: RFC 3339 in milliseconds.
const traceTime = "2006-01-02T15:04:05.000Z07:00"

// printTrace writes a trace as a tree, for people.
func printTrace(w io.Writer, t eventTrace) {
	fmt.Fprintf(w, "event %s  source %s", t.ID, t.Source)
	if t.Type != "" {
		fmt.Fprintf(w, "  type %s", t.Type)
	}
	fmt.Fprintln(w)
	if t.AcceptedAt != nil {
		fmt.Fprintf(w, "accepted %s by source %s\n", t.AcceptedAt.UTC().Format(traceTime), t.SourceName)
	}
	if t.Unrouted {
		fmt.Fprintln(w, "no route matched (unrouted)")
	}
	for _, r := range t.Routes {
		fmt.Fprintf(w, "route %s\n", r.Route)
		for _, d := range r.Deliveries {
			fmt.Fprintf(w, "  sink %s: %s\n", d.Sink, d.State)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, a := range d.Attempts {
				n, status, took := "-", "", ""
				if a.Attempt > 0 {
					n = "#" + strconv.Itoa(a.Attempt)
					took = strconv.FormatFloat(a.DurationMs, 'f', 1, 64) + "ms"
				}
				if a.Status != 0 {
					status = strconv.Itoa(a.Status)
				}
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", n, a.At.UTC().Format(traceTime), a.Outcome, status, took, a.Error)
			}
			tw.Flush()
		}
	}
}

// deadlettersList runs junction deadletters list.
func deadlettersList(args []string, stdout, stderr io.Writer) int {
	const cmd = "deadletters list"
	fs := newFlagSet(cmd)
	cf := addClientFlags(fs)
	route := fs.String("route", "", "only the dead letters of `ROUTE`")
	sink := fs.String("sink", "", "only the dead letters of `SINK`")
	limit := fs.Int("limit", 100, "at most `N` entries (1 to 1000)")
	after := fs.String("after", "", "the page after `CURSOR` (printed at the end of the previous page)")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, cmd, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	if *limit < 1 || *limit > 1000 {
		return usageError(stderr, cmd, "--limit: must be between 1 and 1000")
	}
	q := url.Values{}
	for k, v := range map[string]string{"route": *route, "sink": *sink, "after": *after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(*limit))
	var doc struct {
		DeadLetters []struct {
			ID       string    `json:"id"`
			Route    string    `json:"route"`
			Sink     string    `json:"sink"`
			Attempts int       `json:"attempts"`
			Error    string    `json:"error"`
			Time     time.Time `json:"time"`
			Event    struct {
				ID string `json:"id"`
			} `json:"event"`
		} `json:"deadLetters"`
		Next string `json:"next"`
	}
	raw, err := opsCall(cf, "GET", "/api/v1/deadletters?"+q.Encode(), nil, &doc)
	if err != nil {
		return clientError(stderr, cmd, err)
	}
	if *cf.json {
		printJSON(stdout, raw)
		return 0
	}
	rows := make([][]string, 0, len(doc.DeadLetters))
	for _, d := range doc.DeadLetters {
		rows = append(rows, []string{d.ID, d.Time.UTC().Format(time.RFC3339), d.Route, d.Sink, strconv.Itoa(d.Attempts),
			d.Event.ID, joinLines(d.Error)})
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no dead letters")
	} else {
		printTable(stdout, []string{"ID", "TIME", "ROUTE", "SINK", "ATTEMPTS", "EVENT", "ERROR"}, rows)
	}
	if doc.Next != "" {
		fmt.Fprintf(stdout, "more: junction deadletters list --after %s\n", doc.Next)
	}
	return 0
}

// deadlettersRedrive runs junction deadletters redrive.
func deadlettersRedrive(args []string, stdout, stderr io.Writer) int {
	const cmd = "deadletters redrive"
	fs := newFlagSet(cmd)
	cf := addClientFlags(fs)
	route := fs.String("route", "", "every dead letter of `ROUTE`")
	sink := fs.String("sink", "", "every dead letter of `SINK`")
	all := fs.Bool("all", false, "every dead letter in the store")
	ids, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	body := map[string]any{}
	switch {
	case len(ids) > 0 && (*route != "" || *sink != "" || *all):
		return usageError(stderr, cmd, "give IDs, or --route/--sink, or --all, not several")
	case len(ids) > 0:
		body["ids"] = ids
	case *all && (*route != "" || *sink != ""):
		return usageError(stderr, cmd, "--all takes no --route or --sink")
	case *route != "" || *sink != "":
		body["route"], body["sink"] = *route, *sink
	case !*all:
		return usageError(stderr, cmd, "which dead letters? give IDs, --route and/or --sink, or --all")
	}
	var out struct {
		Redriven int `json:"redriven"`
	}
	raw, err := opsCall(cf, "POST", "/api/v1/deadletters/redrive", body, &out)
	if err != nil {
		return clientError(stderr, cmd, err)
	}
	if *cf.json {
		printJSON(stdout, raw)
		return 0
	}
	fmt.Fprintf(stdout, "redriven %d\n", out.Redriven)
	return 0
}

// isSet says whether the flag name was given.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
