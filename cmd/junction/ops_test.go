package main

import (
	"strings"
	"testing"
)

// TestOpsHelp: every form of help of the events and deadletters commands
// prints their usage, flags and examples on stdout, exit 0.
func TestOpsHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help", "events"}, []string{"Usage: junction events get ID", "Examples:\n  junction events get order-1234\n"}},
		{[]string{"events", "--help"}, []string{"Usage: junction events get ID"}},
		{[]string{"help", "events", "get"}, []string{"Usage: junction events get ID", "      --source SOURCE  ", "      --admin URL  ", "      --json  ", "  -c, --config FILE  "}},
		{[]string{"events", "get", "-h"}, []string{"Usage: junction events get ID"}},
		{[]string{"help", "deadletters"}, []string{"Usage: junction deadletters list|redrive"}},
		{[]string{"deadletters", "list", "--help"}, []string{"Usage: junction deadletters list", "      --limit N  ", "      --after CURSOR  ", "      --route ROUTE  "}},
		{[]string{"help", "deadletters", "redrive"}, []string{"Usage: junction deadletters redrive [ID...]", "      --all  ", "Examples:\n  junction deadletters redrive 17 18\n"}},
		{[]string{"help"}, []string{"events get ID [--source S]", "deadletters list|redrive"}},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		if code != 0 || stderr != "" {
			t.Errorf("junction %v: exit %d, stderr %q", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("junction %v: no %q in\n%s", tc.args, w, stdout)
			}
		}
	}
}

// TestOpsUsageErrors: a wrong use of the ops commands exits 2 with the
// reason and where the help is, before any call.
func TestOpsUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"events"}, "junction events: which one? get\n"},
		{[]string{"events", "list"}, `junction events: unknown subcommand "list" (get)`},
		{[]string{"events", "get"}, "junction events get: give one event ID\nRun 'junction help events get' for usage."},
		{[]string{"events", "get", "a", "b"}, "give one event ID"},
		{[]string{"deadletters"}, "which one? list or redrive"},
		{[]string{"deadletters", "list", "--limit", "0"}, "--limit: must be between 1 and 1000"},
		{[]string{"deadletters", "list", "x"}, `unexpected argument "x"`},
		{[]string{"deadletters", "redrive"}, "which dead letters? give IDs, --route and/or --sink, or --all"},
		{[]string{"deadletters", "redrive", "1", "--route", "r"}, "give IDs, or --route/--sink, or --all, not several"},
		{[]string{"deadletters", "redrive", "--all", "--sink", "s"}, "--all takes no --route or --sink"},
		{[]string{"deadletters", "redrive", "--bogus"}, "flag provided but not defined: --bogus"},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("junction %v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}
