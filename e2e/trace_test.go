package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// cli runs the junction binary with args and returns its exit code and
// output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// traceDoc is the part of GET /api/v1/events/{id} these tests read.
type traceDoc struct {
	ID         string `json:"id"`
	SourceName string `json:"sourceName"`
	AcceptedAt string `json:"acceptedAt"`
	Routes     []struct {
		Route      string `json:"route"`
		Deliveries []struct {
			Sink     string `json:"sink"`
			State    string `json:"state"`
			Attempts []struct {
				Outcome string `json:"outcome"`
				Status  int    `json:"status"`
				Error   string `json:"error"`
			} `json:"attempts"`
		} `json:"deliveries"`
	} `json:"routes"`
}

// getTrace asks the admin API for the trace of id.
func getTrace(t *testing.T, admin, id string) (int, traceDoc) {
	t.Helper()
	resp, err := http.Get(admin + "/api/v1/events/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc traceDoc
	json.NewDecoder(resp.Body).Decode(&doc)
	return resp.StatusCode, doc
}

// summary is "state: outcome/status,..." of a trace's first delivery.
func (d traceDoc) summary() string {
	if len(d.Routes) == 0 || len(d.Routes[0].Deliveries) == 0 {
		return ""
	}
	dl := d.Routes[0].Deliveries[0]
	var parts []string
	for _, a := range dl.Attempts {
		s := a.Outcome
		if a.Status != 0 {
			s += "/" + http.StatusText(a.Status)
		}
		parts = append(parts, s)
	}
	return dl.State + ": " + strings.Join(parts, ",")
}

// TestEventTrace: an event sent to a sink that fails once and then
// succeeds has a trace with both attempts, through the API and `junction
// events get`; the trace survives a restart; an unknown id is 404.
func TestEventTrace(t *testing.T) {
	s := newSink(t, func(call int, _ *event.Event) int {
		if call == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	j := start(t, hookConfig(s.url, "{retry: 5, backoffDelay: 50ms}"))
	if code := binaryEvent(t, j.ingest+"/events", "order-1", "com.example.order", `{"n":1}`); code != http.StatusAccepted {
		t.Fatalf("ingest: %d", code)
	}
	waitCount(t, s, 1, 10*time.Second)
	const want = "delivered: retried/Service Unavailable,delivered"
	var doc traceDoc
	waitFor(t, 10*time.Second, "the trace of order-1", func() bool {
		_, doc = getTrace(t, j.admin, "order-1")
		return doc.summary() == want
	})
	if doc.ID != "order-1" || doc.SourceName != "events" || doc.AcceptedAt == "" || doc.Routes[0].Route != "r" || doc.Routes[0].Deliveries[0].Sink != "hook" {
		t.Errorf("trace %+v", doc)
	}

	code, out, errOut := cli(t, "events", "get", "order-1", "--admin", j.admin)
	if code != 0 {
		t.Fatalf("events get: exit %d: %s", code, errOut)
	}
	for _, w := range []string{`event order-1  source /test  type com.example.order\n`, `accepted \S+ by source events\n`, `route r\n`,
		`  sink hook: delivered\n`, `#1 +\S+ +retried +503 +[0-9.]+ms +POST \S+: HTTP 503 Service Unavailable\n`, `#2 +\S+ +delivered +[0-9.]+ms`} {
		if !regexp.MustCompile(w).MatchString(out) {
			t.Errorf("events get: no %q in\n%s", w, out)
		}
	}
	t.Logf("junction events get order-1:\n%s", out)
	code, out, _ = cli(t, "events", "get", "--json", "order-1", "--admin", j.admin)
	var fromJSON traceDoc
	if err := json.Unmarshal([]byte(out), &fromJSON); code != 0 || err != nil || fromJSON.summary() != want {
		t.Errorf("events get --json: exit %d, %v: %s", code, err, out)
	}

	j.stop()
	j.restart()
	if code, doc := getTrace(t, j.admin, "order-1"); code != http.StatusOK || doc.summary() != want {
		t.Errorf("after restart: %d %q, want %q", code, doc.summary(), want)
	}
	if code, _ := getTrace(t, j.admin, "no-such-event"); code != http.StatusNotFound {
		t.Errorf("unknown id: %d, want 404", code)
	}
	code, _, errOut = cli(t, "events", "get", "no-such-event", "--admin", j.admin)
	if code != 1 || !strings.Contains(errOut, "404 Not Found") || !strings.Contains(errOut, `no trace of event "no-such-event"`) {
		t.Errorf("events get unknown: exit %d, stderr %q", code, errOut)
	}
}

// TestDeadLettersCLI: `junction deadletters list` pages through the store
// and `junction deadletters redrive` sends entries again, by id and by
// route and sink; the trace shows the redrive.
func TestDeadLettersCLI(t *testing.T) {
	var accept atomic.Bool
	s := newSink(t, func(int, *event.Event) int {
		if accept.Load() {
			return http.StatusOK
		}
		return http.StatusBadRequest // permanent: dead-lettered at once
	})
	j := start(t, hookConfig(s.url, ""))
	for _, id := range []string{"dl-1", "dl-2"} {
		if code := binaryEvent(t, j.ingest+"/events", id, "com.example.order", `{}`); code != http.StatusAccepted {
			t.Fatalf("ingest %s: %d", id, code)
		}
	}
	waitFor(t, 10*time.Second, "two dead letters", func() bool {
		return j.metric("junction_deliveries_total", `outcome="dead_lettered"`) == 2
	})
	admin := "--admin=" + j.admin

	code, out, errOut := cli(t, "deadletters", "list", admin)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	t.Logf("junction deadletters list:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^ID +TIME +ROUTE +SINK +ATTEMPTS +EVENT +ERROR$`).MatchString(lines[0]) {
		t.Fatalf("list: want a header and two rows:\n%s", out)
	}
	row := regexp.MustCompile(`^(\d+) +\S+ +r +hook +1 +(dl-\d) +.*HTTP 400 Bad Request$`)
	newest, oldest := row.FindStringSubmatch(lines[1]), row.FindStringSubmatch(lines[2])
	if newest == nil || oldest == nil || newest[2] == oldest[2] || atoi(newest[1]) <= atoi(oldest[1]) {
		t.Fatalf("list rows, newest first:\n%s", out)
	}

	code, out, _ = cli(t, "deadletters", "list", "--limit", "1", admin)
	more := regexp.MustCompile(`more: junction deadletters list --after (\d+)`).FindStringSubmatch(out)
	if code != 0 || more == nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("list --limit 1: exit %d:\n%s", code, out)
	}
	code, out, _ = cli(t, "deadletters", "list", "--limit", "1", "--after", more[1], "--json", admin)
	var page struct {
		DeadLetters []struct {
			ID    string `json:"id"`
			Route string `json:"route"`
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		} `json:"deadLetters"`
		Next string `json:"next"`
	}
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.DeadLetters) != 1 || page.DeadLetters[0].Event.ID != oldest[2] || page.Next != "" {
		t.Fatalf("list --after --json: exit %d, %v:\n%s", code, err, out)
	}

	accept.Store(true)
	code, out, errOut = cli(t, "deadletters", "redrive", newest[1], admin)
	if code != 0 || out != "redriven 1\n" {
		t.Fatalf("redrive %s: exit %d: %q %s", newest[1], code, out, errOut)
	}
	code, out, errOut = cli(t, "deadletters", "redrive", "--route", "r", "--sink", "hook", admin)
	if code != 0 || out != "redriven 1\n" {
		t.Fatalf("redrive --route --sink: exit %d: %q %s", code, out, errOut)
	}
	waitCount(t, s, 2, 10*time.Second)
	if code, out, _ = cli(t, "deadletters", "list", admin); code != 0 || out != "no dead letters\n" {
		t.Errorf("list after redrive: exit %d: %q", code, out)
	}
	waitFor(t, 10*time.Second, "the redrive in the trace of "+newest[2], func() bool {
		_, doc := getTrace(t, j.admin, newest[2])
		return doc.summary() == "delivered: dead_lettered/Bad Request,redriven,delivered"
	})
	if code, _, errOut = cli(t, "deadletters", "redrive", admin); code != 2 || !strings.Contains(errOut, "which dead letters?") {
		t.Errorf("redrive without a selection: exit %d: %s", code, errOut)
	}
}

// TestClusterTrace: two replicas on a JetStream cluster; an event accepted
// by one and delivered by either has its whole trace on the other.
func TestClusterTrace(t *testing.T) {
	nodes := startCluster(t)
	hook := newSink(t, func(call int, _ *event.Event) int {
		if call == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := replicaConfig(nodes, fmt.Sprintf("E2E_%d", rand.Int64()), hook.url)
	a, b := start(t, cfg), start(t, cfg)
	if code := binaryEvent(t, a.ingest+"/events", "across", "t", `{}`); code != http.StatusAccepted {
		t.Fatalf("ingest: %d", code)
	}
	const want = "delivered: retried/Service Unavailable,delivered"
	for _, j := range []*junction{b, a} {
		waitFor(t, 20*time.Second, "the trace on "+j.admin, func() bool {
			_, doc := getTrace(t, j.admin, "across")
			return doc.summary() == want && doc.SourceName == "events"
		})
	}
	code, out, errOut := cli(t, "events", "get", "across", "--admin", b.admin)
	if code != 0 || !strings.Contains(out, "sink hook: delivered") {
		t.Errorf("events get on the other replica: exit %d: %s%s", code, out, errOut)
	}
}
