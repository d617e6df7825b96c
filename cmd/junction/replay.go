package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/junctionhq/junction/router"
)

// replayJob is a replay job as the admin API shows it.
type replayJob = router.ReplayJob

// replayProgress is a job's one-line state.
func replayProgress(j *replayJob) string {
	s := fmt.Sprintf("%s  %s  scanned=%d matched=%d routed=%d unrouted=%d", j.ID, j.State, j.Scanned, j.Matched, j.Routed, j.Unrouted)
	if j.FilterErrors > 0 {
		s += fmt.Sprintf(" filterErrors=%d", j.FilterErrors)
	}
	if j.Error != "" {
		s += "  error: " + j.Error
	}
	return s
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// pollEvery is how often replay --wait asks for progress.
const pollEvery = 500 * time.Millisecond

// replay is `junction replay`: starts a replay (POST /api/v1/replays), or
// with `list` or `get ID` shows jobs.
func replay(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("replay")
	cf := addClientFlags(fs)
	from := fs.String("from", "", "the start of the period: an RFC 3339 `TIME`, or -DURATION before now (--from=-1h)")
	to := fs.String("to", "now", "the end of the period (excluded): an RFC 3339 `TIME`, now, or -DURATION before now")
	var routes stringList
	fs.Var(&routes, "route", "replay to this `ROUTE` only; may be given several times (default: every route)")
	filter := fs.String("filter", "", "replay only the events this `EXPR` (an expression as a route's filter) matches")
	wait := fs.Bool("wait", false, "print progress until the replay ends; exit 1 if it failed")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	c, err := cf.client()
	if err != nil {
		return clientError(stderr, "replay", err)
	}
	if len(rest) > 0 {
		switch {
		case rest[0] == "list" && len(rest) == 1:
			return replayList(c, cf, stdout, stderr)
		case rest[0] == "get" && len(rest) == 2:
			return replayGet(c, cf, rest[1], *wait, stdout, stderr)
		}
		return usageError(stderr, "replay", fmt.Sprintf("unexpected arguments %q (want list, get ID, or --from T [--to T])", rest))
	}
	if *from == "" {
		return usageError(stderr, "replay", "--from is required")
	}
	now := time.Now()
	body := map[string]any{}
	for _, t := range []struct{ name, v string }{{"from", *from}, {"to", *to}} {
		at, err := replayTime(t.v, now)
		if err != nil {
			return usageError(stderr, "replay", "--"+t.name+": "+err.Error())
		}
		body[t.name] = at
	}
	if len(routes) > 0 {
		body["routes"] = []string(routes)
	}
	if *filter != "" {
		body["filter"] = *filter
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	var created struct {
		ID string `json:"id"`
	}
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/replays", body, &created)
	if err != nil {
		return clientError(stderr, "replay", err)
	}
	if !*wait {
		if *cf.json {
			printJSON(stdout, raw)
		} else {
			fmt.Fprintln(stdout, created.ID)
		}
		return 0
	}
	if !*cf.json {
		fmt.Fprintln(stdout, created.ID)
	}
	return replayWait(c, cf, created.ID, stdout, stderr)
}

// replayTime reads a time of --from or --to: RFC 3339, "now", or
// -DURATION before now. It returns it in RFC 3339.
func replayTime(s string, now time.Time) (string, error) {
	if s == "now" {
		return now.UTC().Format(time.RFC3339Nano), nil
	}
	if strings.HasPrefix(s, "-") {
		d, err := time.ParseDuration(s[1:])
		if err != nil || d <= 0 {
			return "", fmt.Errorf("%q is not -DURATION (such as -1h or -30m)", s)
		}
		return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", fmt.Errorf("%q is not an RFC 3339 time (such as 2026-01-02T15:04:05Z), now, or -DURATION", s)
	}
	return t.Format(time.RFC3339Nano), nil
}

// replayWait polls job id until it ends, printing each change of its
// progress (with --json, only the last state).
func replayWait(c *adminClient, cf *clientFlags, id string, stdout, stderr io.Writer) int {
	last := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
		var job replayJob
		raw, err := c.call(ctx, http.MethodGet, "/api/v1/replays/"+url.PathEscape(id), nil, &job)
		cancel()
		if err != nil {
			return clientError(stderr, "replay", err)
		}
		if line := replayProgress(&job); line != last && !*cf.json {
			fmt.Fprintln(stdout, line)
			last = line
		}
		if job.State != "running" {
			if *cf.json {
				printJSON(stdout, raw)
			}
			if job.State == "failed" {
				return 1
			}
			return 0
		}
		time.Sleep(pollEvery)
	}
}

// replayGet prints job id (with --wait, waits for its end).
func replayGet(c *adminClient, cf *clientFlags, id string, wait bool, stdout, stderr io.Writer) int {
	if wait {
		return replayWait(c, cf, id, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	var job replayJob
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/replays/"+url.PathEscape(id), nil, &job)
	if err != nil {
		return clientError(stderr, "replay", err)
	}
	if *cf.json {
		printJSON(stdout, raw)
		return 0
	}
	printTable(stdout, replayHeader, [][]string{replayRow(&job)})
	if job.Error != "" {
		fmt.Fprintln(stdout, "error: "+job.Error)
	}
	return 0
}

var replayHeader = []string{"ID", "STATE", "FROM", "TO", "ROUTES", "FILTER", "MATCHED", "ROUTED"}

func replayRow(j *replayJob) []string {
	routes := strings.Join(j.Routes, ",")
	if routes == "" {
		routes = "*"
	}
	filter := j.Filter
	if filter == "" {
		filter = "-"
	}
	return []string{j.ID, j.State, j.From.Format(time.RFC3339), j.To.Format(time.RFC3339), routes, filter,
		strconv.FormatInt(j.Matched, 10), strconv.FormatInt(j.Routed, 10)}
}

// replayList prints every job, newest first.
func replayList(c *adminClient, cf *clientFlags, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	var out struct {
		Replays []replayJob `json:"replays"`
	}
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/replays", nil, &out)
	if err != nil {
		return clientError(stderr, "replay", err)
	}
	if *cf.json {
		printJSON(stdout, raw)
		return 0
	}
	rows := make([][]string, 0, len(out.Replays))
	for i := range out.Replays {
		rows = append(rows, replayRow(&out.Replays[i]))
	}
	printTable(stdout, replayHeader, rows)
	return 0
}
