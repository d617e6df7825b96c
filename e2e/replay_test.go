package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// sendOrders posts orders numbered first..first+n-1 to examples/operations'
// source and returns the time before the first and after the last 202.
func sendOrders(t *testing.T, j *junction, first, n int) (from, to time.Time) {
	t.Helper()
	from = time.Now()
	for i := first; i < first+n; i++ {
		code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
			"ce-specversion": "1.0", "ce-id": fmt.Sprint("order-", i), "ce-source": "/shop", "ce-type": "com.example.order.created",
		}, fmt.Sprintf(`{"orderId":"o-%d","n":%d}`, i, i))
		if code != http.StatusAccepted {
			t.Fatalf("POST order %d: %d %s", i, code, body)
		}
	}
	return from, time.Now()
}

// replayCLI runs `junction replay` against j's admin API.
func replayCLI(t *testing.T, j *junction, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"replay", "--admin", j.admin}, args...)...)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		out = append(out, ee.Stderr...)
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestExampleOperationsReplay runs examples/operations: orders of three
// periods reach the warehouse; `junction replay --wait` of the middle
// period to route orders sends its 10 orders again, each with
// junctionreplay, and ends done with matched 10, routed 10; a replay with a
// filter that matches half sends 5; the job is shown by get and list.
func TestExampleOperationsReplay(t *testing.T) {
	t.Parallel()
	warehouse := newSink(t, nil)
	j := startFile(t, "../examples/operations/junction.yaml", "WAREHOUSE_URL="+warehouse.url)
	sendOrders(t, j, 0, 10)
	from, to := sendOrders(t, j, 10, 10)
	sendOrders(t, j, 20, 10)
	waitCount(t, warehouse, 30, 10*time.Second)

	period := []string{"--from", from.UTC().Format(time.RFC3339Nano), "--to", to.UTC().Format(time.RFC3339Nano), "--route", "orders"}
	out, code := replayCLI(t, j, append(period, "--wait")...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 2 || !strings.HasPrefix(lines[0], "rp-") {
		t.Fatalf("replay --wait: exit %d\n%s", code, out)
	}
	id := lines[0]
	if want := id + "  done  scanned=10 matched=10 routed=10 unrouted=0"; lines[len(lines)-1] != want {
		t.Errorf("replay --wait ended with %q, want %q", lines[len(lines)-1], want)
	}
	waitCount(t, warehouse, 40, 10*time.Second)
	checkReplayed(t, warehouse.received()[30:], id, 10, 20, func(int) bool { return true })

	// A filter that matches half, with --json: one document, the job's
	// last state.
	out, code = replayCLI(t, j, append(period, "--filter", "int(data.n) % 2 == 1", "--wait", "--json")...)
	var job struct {
		ID, State, Filter        string
		Matched, Routed, Scanned int
		Routes                   []string
	}
	if err := json.Unmarshal([]byte(out), &job); code != 0 || err != nil {
		t.Fatalf("replay --wait --json: exit %d, %v\n%s", code, err, out)
	}
	if job.State != "done" || job.Scanned != 10 || job.Matched != 5 || job.Routed != 5 || job.Filter != "int(data.n) % 2 == 1" ||
		len(job.Routes) != 1 || job.Routes[0] != "orders" {
		t.Errorf("filtered replay = %+v; want done, scanned 10, matched 5, routed 5", job)
	}
	waitCount(t, warehouse, 45, 10*time.Second)
	checkReplayed(t, warehouse.received()[40:], job.ID, 10, 20, func(n int) bool { return n%2 == 1 })

	out, code = replayCLI(t, j, "list")
	if code != 0 || !strings.Contains(out, id+"  done") || !strings.Contains(out, job.ID+"  done") || !strings.HasPrefix(out, "ID ") {
		t.Errorf("replay list: exit %d\n%s", code, out)
	}
	out, code = replayCLI(t, j, "get", id, "--json")
	if code != 0 || !strings.Contains(out, `"state": "done"`) || !strings.Contains(out, `"routed": 10`) {
		t.Errorf("replay get --json: exit %d\n%s", code, out)
	}
	out, code = replayCLI(t, j, "--from", "-1h", "--route", "nope")
	if code != 1 || !strings.Contains(out, "400 Bad Request") || !strings.Contains(out, `routes: no route "nope"`) {
		t.Errorf("replay to an unknown route: exit %d\n%s", code, out)
	}
	// Nothing else was sent again: the warehouse has 45, the console
	// route was not replayed.
	if n := warehouse.count(); n != 45 {
		t.Errorf("warehouse received %d, want 45", n)
	}
}

// checkReplayed checks that events are the orders of [lo, hi) that keep
// holds, once each, with junctionreplay id.
func checkReplayed(t *testing.T, events []event.Event, id string, lo, hi int, keep func(int) bool) {
	t.Helper()
	seen := map[int]bool{}
	for _, e := range events {
		var d struct{ N int }
		json.Unmarshal(e.Data(), &d)
		if ext := e.Extensions()["junctionreplay"]; ext != id || d.N < lo || d.N >= hi || !keep(d.N) || seen[d.N] {
			t.Errorf("replayed %s (n=%d, junctionreplay %v); want each order of [%d, %d) kept once, junctionreplay %s", e.ID(), d.N, ext, lo, hi, id)
		}
		seen[d.N] = true
	}
}

// TestReplayArchiveOff: without journal.archive, replay is refused with
// 409 and says what to set.
func TestReplayArchiveOff(t *testing.T) {
	t.Parallel()
	j := start(t, hookConfig("http://127.0.0.1:1/none", ""))
	out, code := replayCLI(t, j, "--from", "-1h")
	if code != 1 || !strings.Contains(out, "409 Conflict") || !strings.Contains(out, "journal.archive") {
		t.Errorf("replay with the archive off: exit %d\n%s", code, out)
	}
}

// TestClusterReplay: two replicas on a JetStream cluster with the archive
// on (3 replicas). Events accepted by both are replayed by a job started on
// one and followed on the other: each replayed once, with junctionreplay,
// and the job is done on both replicas.
func TestClusterReplay(t *testing.T) {
	nodes := startCluster(t)
	hook := newSink(t, nil)
	cfg := strings.Replace(replicaConfig(nodes, fmt.Sprintf("E2E_%d", time.Now().UnixNano()), hook.url),
		"replicas: 3,", "replicas: 3, archive: {maxAge: 1h},", 1)
	a, b := start(t, cfg), start(t, cfg)
	from := time.Now()
	for i := range 20 {
		j := a
		if i%2 == 1 {
			j = b
		}
		if code := binaryEvent(t, j.ingest+"/events", fmt.Sprint("c", i), "t", fmt.Sprintf(`{"n":%d}`, i)); code != http.StatusAccepted {
			t.Fatalf("event %d: %d", i, code)
		}
	}
	to := time.Now()
	waitCount(t, hook, 20, 20*time.Second)
	code, body := post(t, b.admin+"/api/v1/replays", "application/json", nil,
		fmt.Sprintf(`{"from": %q, "to": %q}`, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano)))
	var created struct{ ID string }
	if json.Unmarshal([]byte(body), &created); code != http.StatusAccepted || created.ID == "" {
		t.Fatalf("create replay: %d %s", code, body)
	}
	var job struct {
		State           string
		Matched, Routed int
	}
	waitFor(t, 30*time.Second, "the replay done, seen by the other replica", func() bool {
		getJSON(t, a.admin+"/api/v1/replays/"+created.ID, &job)
		return job.State != "running"
	})
	if job.State != "done" || job.Matched != 20 || job.Routed != 20 {
		t.Fatalf("replay seen by the other replica = %+v; want done, matched 20, routed 20", job)
	}
	waitCount(t, hook, 40, 20*time.Second)
	replayed := map[string]int{}
	for _, e := range hook.received() {
		if e.Extensions()["junctionreplay"] == created.ID {
			replayed[e.ID()]++
		}
	}
	if len(replayed) != 20 {
		t.Errorf("replayed %d distinct events with junctionreplay, want 20: %v", len(replayed), replayed)
	}
}
