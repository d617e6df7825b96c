package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/router"
)

// reloadCmd is `junction reload`: POST /api/v1/reload.
func reloadCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("reload")
	f := addClientFlags(fs)
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, "reload", fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	c, err := opsClient(f)
	if err != nil {
		return clientError(stderr, "reload", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	var res router.ReloadResult
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/reload", nil, &res)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity {
		if *f.json {
			printJSON(stdout, raw)
			return 1
		}
		var refused struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		}
		json.Unmarshal(raw, &refused)
		fmt.Fprintf(stderr, "junction reload: %s\n", refused.Error)
		for _, l := range refused.Errors {
			fmt.Fprintln(stderr, l)
		}
		return 1
	}
	if err != nil {
		return clientError(stderr, "reload", err)
	}
	if *f.json {
		printJSON(stdout, raw)
		return 0
	}
	fmt.Fprintf(stdout, "reloaded: %s\n", res.Summary)
	for _, l := range []struct {
		what  string
		names []string
	}{{"added", res.Added}, {"changed", res.Changed}, {"removed", res.Removed}} {
		if len(l.names) > 0 {
			fmt.Fprintf(stdout, "  %s: %s\n", l.what, strings.Join(l.names, ", "))
		}
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	return 0
}

// opsClient is f.client, but when the config does not load (it may be
// the broken one just edited, which a reload refuses) its admin.listen is
// still read: it is where the running junction listens.
func opsClient(f *clientFlags) (*adminClient, error) {
	c, err := f.client()
	if err == nil || *f.admin != "" {
		return c, err
	}
	base, ok := lenientAdminURL(*f.config)
	if !ok {
		return nil, err
	}
	g := *f
	g.admin = &base
	return g.client()
}

// lenientAdminURL reads only admin.listen from the config at path (or
// ./junction.yaml), for a config that does not load as a whole.
func lenientAdminURL(path string) (string, bool) {
	if path == "" {
		path = "junction.yaml"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return "", false
	}
	n := config.Locate(&doc, "admin.listen")
	if n == nil || n.Kind != yaml.ScalarNode || n.Value == "" || n.Value == "off" || strings.Contains(n.Value, "${") {
		return "", false
	}
	return n.Value, true
}

// statusCmd is `junction status`: GET /api/v1/status as tables.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status")
	f := addClientFlags(fs)
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, "status", fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	c, err := opsClient(f)
	if err != nil {
		return clientError(stderr, "status", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	var st router.Status
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/status", nil, &st)
	if err != nil {
		return clientError(stderr, "status", err)
	}
	if *f.json {
		printJSON(stdout, raw)
		return 0
	}
	printStatus(stdout, st, time.Now())
	return 0
}

// printStatus prints st as three tables.
func printStatus(w io.Writer, st router.Status, now time.Time) {
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	head := "junction"
	if st.Version != "" {
		head += " " + st.Version
	}
	fmt.Fprintf(w, "%s: %s: %s\n\n", head, ready, st.Summary)
	rows := [][]string{}
	for _, s := range st.Sources {
		rows = append(rows, []string{s.Name, s.Type, yesNo(s.Ready)})
	}
	fmt.Fprintln(w, "SOURCES")
	printTable(w, []string{"NAME", "TYPE", "READY"}, rows)
	rows = [][]string{}
	for _, r := range st.Routes {
		from := strings.Join(r.Sources, ",")
		if from == "" {
			from = "(all)"
		}
		rows = append(rows, []string{r.Name, from, strings.Join(r.To, ",")})
	}
	fmt.Fprintln(w, "\nROUTES")
	printTable(w, []string{"NAME", "SOURCES", "TO"}, rows)
	rows = [][]string{}
	for _, s := range st.Sinks {
		pending, limit, lastErr := "?", "-", "-"
		if s.Pending != nil {
			pending = strconv.FormatUint(*s.Pending, 10)
		}
		if s.RateLimit != nil {
			limit = *s.RateLimit
		}
		if s.LastError != nil {
			lastErr = shorten(*s.LastError, 100)
			if s.LastErrorAt != nil {
				lastErr += " (" + ago(now.Sub(*s.LastErrorAt)) + ")"
			}
		}
		rows = append(rows, []string{s.Name, s.Type, pending, s.Circuit, limit, lastErr})
	}
	fmt.Fprintln(w, "\nSINKS")
	printTable(w, []string{"NAME", "TYPE", "PENDING", "CIRCUIT", "RATE LIMIT", "LAST ERROR"}, rows)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// ago says how long ago d was, to the second.
func ago(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return d.Truncate(time.Second).String() + " ago"
}

// shorten cuts s to n runes with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
