package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

const replayConfig = `
journal:
  archive: {maxAge: 1h}
sources:
  - {name: src, type: test-idle, dedup: 10m}
sinks:
  - {name: %[1]s-live, type: test-recorder}
  - {name: %[1]s-audit, type: test-recorder}
routes:
  - {name: orders, filter: 'type == "order"', to: [%[1]s-live]}
  - {name: audit, to: [%[1]s-audit]}
`

// call makes an admin API request and decodes its JSON answer into out.
func call(t *testing.T, srv *httptest.Server, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// ingestPeriod ingests n order events numbered from first, one request
// each, and returns the time before the first and after the last.
func ingestPeriod(t *testing.T, r *Router, first, n int) (from, to time.Time) {
	t.Helper()
	from = time.Now()
	for i := first; i < first+n; i++ {
		if err := r.Ingester("src").Ingest(context.Background(), []*event.Event{newEvent(fmt.Sprint(i), "order", map[string]any{"n": i})}); err != nil {
			t.Fatal(err)
		}
	}
	return from, time.Now()
}

// waitReplay polls a job until it has ended and returns it.
func waitReplay(t *testing.T, srv *httptest.Server, id string) ReplayJob {
	t.Helper()
	var job ReplayJob
	eventually(t, 20*time.Second, "replay "+id+" ends", func() bool {
		job = ReplayJob{}
		if code := call(t, srv, "GET", "/api/v1/replays/"+id, "", &job); code != http.StatusOK {
			t.Fatalf("get replay %s: %d", id, code)
		}
		return job.State != ReplayRunning
	})
	return job
}

// TestReplayRoutesPeriodAgain: a replay of the middle of three periods, to
// one route, with a filter that matches half, routes those events again,
// with junctionreplay, and only to that route; the job ends done with its
// counts; the replayed events are not deduplicated (the source has dedup)
// and not archived again.
func TestReplayRoutesPeriodAgain(t *testing.T) {
	r := startRouter(t, compile(t, fmt.Sprintf(replayConfig, "rp1")))
	srv := httptest.NewServer(r.adminHandler())
	defer srv.Close()
	live, audit := recorderNamed("rp1-live"), recorderNamed("rp1-audit")

	ingestPeriod(t, r, 0, 10)
	from, to := ingestPeriod(t, r, 10, 10)
	ingestPeriod(t, r, 20, 10)
	eventually(t, 10*time.Second, "live deliveries", func() bool { return len(live.got()) == 30 && len(audit.got()) == 30 })

	var created struct{ ID string }
	body := fmt.Sprintf(`{"from": %q, "to": %q, "routes": ["audit"], "filter": "int(data.n) %% 2 == 0"}`,
		from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	if code := call(t, srv, "POST", "/api/v1/replays", body, &created); code != http.StatusAccepted || !strings.HasPrefix(created.ID, "rp-") {
		t.Fatalf("create replay: %d %+v", code, created)
	}
	job := waitReplay(t, srv, created.ID)
	if job.State != ReplayDone || job.Scanned != 10 || job.Matched != 5 || job.Routed != 5 || job.Unrouted != 0 || job.Error != "" {
		t.Fatalf("job = %+v; want done, scanned 10, matched 5, routed 5", job)
	}
	if len(job.Routes) != 1 || job.Routes[0] != "audit" || job.Filter != "int(data.n) % 2 == 0" || job.FinishedAt == nil {
		t.Errorf("job = %+v; want its routes, filter and end", job)
	}
	eventually(t, 10*time.Second, "replayed deliveries", func() bool { return len(audit.got()) == 35 })
	replayed := map[string]bool{}
	for _, e := range audit.got()[30:] {
		var n int
		json.Unmarshal(e.Data(), &struct{ N *int }{&n})
		if ext := e.Extensions()[ExtReplay]; ext != created.ID || n < 10 || n >= 20 || n%2 != 0 {
			t.Errorf("replayed event %s (n=%d) has junctionreplay %v; want an even n in [10, 20) and %s", e.ID(), n, ext, created.ID)
		}
		replayed[e.ID()] = true
	}
	if len(replayed) != 5 {
		t.Errorf("replayed %d distinct events, want 5", len(replayed))
	}
	for _, e := range audit.got()[:30] {
		if _, ok := e.Extensions()[ExtReplay]; ok {
			t.Errorf("live event %s has junctionreplay", e.ID())
		}
	}
	if n := len(live.got()); n != 30 {
		t.Errorf("route orders (not replayed) received %d, want 30", n)
	}
	if got := value(r.metrics.Received.WithLabelValues("src")); got != 30 {
		t.Errorf("received = %v, want 30 (replays are not received events)", got)
	}

	// The archive still holds 30 events: replayed ones are not archived
	// again. A replay of everything with a filter that fails on each
	// (% of a JSON number, a float) says so, and routes none.
	body = fmt.Sprintf(`{"from": %q, "to": %q, "filter": "data.n %% 2 == 0"}`, from.Add(-time.Hour).Format(time.RFC3339), time.Now().Format(time.RFC3339Nano))
	if code := call(t, srv, "POST", "/api/v1/replays", body, &created); code != http.StatusAccepted {
		t.Fatalf("create replay: %d", code)
	}
	if job := waitReplay(t, srv, created.ID); job.State != ReplayDone || job.Scanned != 30 || job.Matched != 0 || job.FilterErrors != 30 {
		t.Errorf("replay of everything = %+v; want done, scanned 30, matched 0, filterErrors 30", job)
	}
	if n := len(audit.got()); n != 35 {
		t.Errorf("audit received %d after a replay that matched none, want 35", n)
	}

	var list struct{ Replays []ReplayJob }
	if code := call(t, srv, "GET", "/api/v1/replays", "", &list); code != http.StatusOK || len(list.Replays) != 2 || list.Replays[0].ID != created.ID {
		t.Errorf("list: %d %+v; want both jobs, newest first", code, list)
	}
}

// TestReplayRequestErrors: a bad request is a 400 with a one-line reason;
// an unknown job a 404.
func TestReplayRequestErrors(t *testing.T) {
	r := startRouter(t, compile(t, fmt.Sprintf(replayConfig, "rp2")))
	srv := httptest.NewServer(r.adminHandler())
	defer srv.Close()
	for _, tc := range []struct{ body, want string }{
		{`{"to": "2026-01-01T00:00:00Z"}`, "from: missing"},
		{`{"from": "yesterday", "to": "2026-01-01T00:00:00Z"}`, `from: "yesterday" is not an RFC 3339 time`},
		{`{"from": "2026-01-01T00:00:00Z"}`, "to: missing"},
		{`{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}`, "must be before to"},
		{`{"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}`, "must be before to"},
		{`{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "routes": ["nope"]}`, `routes: no route "nope"`},
		{`{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "filter": "type =="}`, "filter: "},
		{`{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "filter": "data.n + 1"}`, "filter: "},
		{`{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "extra": 1}`, `unknown field "extra"`},
		{`[1]`, "body: "},
		{``, "body: "},
	} {
		var out struct{ Error string }
		code := call(t, srv, "POST", "/api/v1/replays", tc.body, &out)
		if code != http.StatusBadRequest || !strings.Contains(out.Error, tc.want) || strings.Contains(out.Error, "\n") {
			t.Errorf("POST %s: %d %q; want 400 with %q on one line", tc.body, code, out.Error, tc.want)
		}
	}
	var out struct{ Error string }
	if code := call(t, srv, "GET", "/api/v1/replays/rp-nope", "", &out); code != http.StatusNotFound || out.Error == "" {
		t.Errorf("unknown replay: %d %q, want 404", code, out.Error)
	}
	if code := call(t, srv, "GET", "/api/v1/replays/a..b", "", &out); code != http.StatusNotFound {
		t.Errorf("replay id that is no key: %d, want 404", code)
	}
}

// TestReplayArchiveOff: without journal.archive a replay is a 409.
func TestReplayArchiveOff(t *testing.T) {
	r := startRouter(t, compile(t, strings.Replace(fmt.Sprintf(replayConfig, "rp3"), "archive: {maxAge: 1h}", "dir: unused", 1)))
	srv := httptest.NewServer(r.adminHandler())
	defer srv.Close()
	var out struct{ Error string }
	code := call(t, srv, "POST", "/api/v1/replays", `{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}`, &out)
	if code != http.StatusConflict || !strings.Contains(out.Error, "journal.archive") {
		t.Errorf("replay with the archive off: %d %q, want 409 naming journal.archive", code, out.Error)
	}
	var list struct{ Replays []ReplayJob }
	if code := call(t, srv, "GET", "/api/v1/replays", "", &list); code != http.StatusOK || list.Replays == nil {
		t.Errorf("list with the archive off: %d %+v, want 200 and an empty list", code, list)
	}
}

// TestReplayLostReplicaIsFailed: a running job whose record has not changed
// for staleAfter (its replica was killed) is shown failed.
func TestReplayLostReplicaIsFailed(t *testing.T) {
	r := startRouter(t, compile(t, fmt.Sprintf(replayConfig, "rp4")))
	srv := httptest.NewServer(r.adminHandler())
	defer srv.Close()
	old := time.Now().Add(-time.Hour).UTC()
	job := &ReplayJob{ID: "rp-lost", State: ReplayRunning, From: old, To: old.Add(time.Minute), Routes: []string{}, Replica: "gone/1", CreatedAt: old}
	data, _ := json.Marshal(job)
	if _, err := r.journal.PutReplayJob(context.Background(), job.ID, data, 0); err != nil {
		t.Fatal(err)
	}
	var got ReplayJob
	if code := call(t, srv, "GET", "/api/v1/replays/rp-lost", "", &got); code != http.StatusOK || got.State != ReplayFailed || !strings.Contains(got.Error, "gone/1") {
		t.Errorf("lost job: %d %+v; want failed naming its replica", code, got)
	}
}

// TestReplayStoppedByShutdownSurvivesRestart: a replay still running when
// its router shuts down is stored failed, and a router started again on
// the same journal shows it.
func TestReplayStoppedByShutdownSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	yml := strings.Replace(fmt.Sprintf(replayConfig, "rp5"), "archive: {maxAge: 1h}", fmt.Sprintf("dir: %q\n  archive: {maxAge: 1h}", dir), 1)
	p := compile(t, yml)
	p.Config.HTTP.Listen, p.Config.Admin.Listen = "127.0.0.1:0", "off"
	// 1 event a second: the replay of 20 events outlasts the router.
	r, err := New(context.Background(), p, Options{ReplayRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, 5*time.Second, "ready", r.Ready)
	from, to := ingestPeriod(t, r, 0, 20)
	srv := httptest.NewServer(r.adminHandler())
	var created struct{ ID string }
	body := fmt.Sprintf(`{"from": %q, "to": %q}`, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	if code := call(t, srv, "POST", "/api/v1/replays", body, &created); code != http.StatusAccepted {
		t.Fatalf("create replay: %d", code)
	}
	var job ReplayJob
	eventually(t, 10*time.Second, "the replay under way", func() bool {
		call(t, srv, "GET", "/api/v1/replays/"+created.ID, "", &job)
		return job.State == ReplayRunning && job.Scanned > 0
	})
	srv.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	p = compile(t, yml)
	r = runRouter(t, p, Options{})
	eventually(t, 5*time.Second, "ready", r.Ready)
	srv = httptest.NewServer(r.adminHandler())
	defer srv.Close()
	job = ReplayJob{}
	if code := call(t, srv, "GET", "/api/v1/replays/"+created.ID, "", &job); code != http.StatusOK || job.State != ReplayFailed ||
		!strings.Contains(job.Error, "shut down") || job.Routed >= 20 {
		t.Errorf("replay after a restart: %d %+v; want failed, stopped by the shutdown, not every event routed", code, job)
	}
}
