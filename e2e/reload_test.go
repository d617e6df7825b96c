package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
)

// reloadConfig is a config for the reload tests: the ports and journal of
// j (so that a rewritten file keeps them), one http source, and sinks and
// routes as given.
func reloadConfig(j *junction, sinksAndRoutes string) string {
	return fmt.Sprintf(`http: {listen: %q}
admin: {listen: %q}
journal: {dir: %q}
sources:
  - {name: events, type: http, path: /events}
%s`, strings.TrimPrefix(j.ingest, "http://"), strings.TrimPrefix(j.admin, "http://"), filepath.Join(j.dir, "data"), sinksAndRoutes)
}

// rewrite replaces j's config file the way editors do: a new file renamed
// over the old one.
func (j *junction) rewrite(text string) {
	j.t.Helper()
	tmp := j.cfg + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		j.t.Fatal(err)
	}
	if err := os.Rename(tmp, j.cfg); err != nil {
		j.t.Fatal(err)
	}
}

// postReload calls POST /api/v1/reload.
func (j *junction) postReload() (int, map[string]any) {
	j.t.Helper()
	resp, err := http.Post(j.admin+"/api/v1/reload", "application/json", nil)
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		j.t.Fatalf("reload answer: %v", err)
	}
	return resp.StatusCode, body
}

// cli runs the junction binary with args against j's admin API.
func (j *junction) cli(args ...string) (code int, stdout, stderr string) {
	j.t.Helper()
	cmd := exec.Command(binary, append(args, "--admin", j.admin)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		j.t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

func (j *junction) reloads(result string) float64 {
	return j.metric("junction_config_reloads_total", `result="`+result+`"`)
}

// TestReload: SIGHUP, POST /api/v1/reload (200 and 422), junction reload
// and junction status against the real binary.
func TestReload(t *testing.T) {
	a, b, c := newSink(t, nil), newSink(t, nil), newSink(t, nil)
	j := start(t, httpSource+fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`, a.url))
	events := j.ingest + "/events"
	if code := binaryEvent(t, events, "one", "t", `{}`); code != 202 {
		t.Fatalf("event: %d", code)
	}
	waitCount(t, a, 1, 10*time.Second)

	// SIGHUP: the sink's URL changes.
	j.rewrite(reloadConfig(j, fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
`, b.url)))
	j.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload on SIGHUP", func() bool { return j.reloads("success") == 1 })
	binaryEvent(t, events, "two", "t", `{}`)
	waitCount(t, b, 1, 10*time.Second)
	if a.count() != 1 {
		t.Errorf("the old URL received %d events, want 1", a.count())
	}

	// POST /api/v1/reload: a new sink and route.
	withC := reloadConfig(j, fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q}
  - {name: audit, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
  - {name: audit, filter: 'type == "audit"', to: [audit]}
`, b.url, c.url))
	j.rewrite(withC)
	code, body := j.postReload()
	if code != 200 || body["summary"] != "1 source, 2 sinks, 2 routes" {
		t.Fatalf("reload: %d %v", code, body)
	}
	if fmt.Sprint(body["added"]) != `[sink "audit" route "audit"]` {
		t.Errorf("added %v", body["added"])
	}
	binaryEvent(t, events, "three", "audit", `{}`)
	waitCount(t, c, 1, 10*time.Second)
	waitCount(t, b, 2, 10*time.Second)

	// An invalid config: 422 with validate's lines; the old one runs on.
	j.rewrite(withC + "  - {name: broken, to: [nowhere], filter: 'type =='}\n")
	out, _ := exec.Command(binary, "validate", j.cfg).CombinedOutput()
	code, body = j.postReload()
	lines, _ := body["errors"].([]any)
	if code != 422 || len(lines) == 0 || !strings.Contains(string(out), fmt.Sprint(lines[0])) || !strings.HasPrefix(fmt.Sprint(lines[0]), j.cfg+":") {
		t.Errorf("reload of an invalid config: %d %v; validate says\n%s", code, body, out)
	}
	binaryEvent(t, events, "four", "audit", `{}`)
	waitCount(t, c, 2, 10*time.Second)

	// junction reload prints the same lines and exits 1 ...
	exit, stdout, stderr := j.cli("reload")
	if exit != 1 || !strings.Contains(stderr, fmt.Sprint(lines[0])) || stdout != "" {
		t.Errorf("junction reload of an invalid config: exit %d, stdout %q, stderr %q", exit, stdout, stderr)
	}
	// ... and the summary once the file is fixed.
	j.rewrite(withC)
	exit, stdout, stderr = j.cli("reload")
	if exit != 0 || stdout != "reloaded: 1 source, 2 sinks, 2 routes\n" {
		t.Errorf("junction reload: exit %d, stdout %q, stderr %q", exit, stdout, stderr)
	}
	if got := j.reloads("failure"); got != 2 {
		t.Errorf("junction_config_reloads_total{result=failure} = %v, want 2", got)
	}
	if got := j.reloads("success"); got != 3 {
		t.Errorf("junction_config_reloads_total{result=success} = %v, want 3", got)
	}

	// junction status: tables, and --json.
	exit, stdout, stderr = j.cli("status")
	for _, want := range []string{"ready: 1 source, 2 sinks, 2 routes", "SOURCES\nNAME    TYPE  READY\nevents  http  yes\n",
		"ROUTES\nNAME   SOURCES  TO\nr      (all)    hook\naudit  (all)    audit\n", "SINKS\nNAME   TYPE     PENDING  CIRCUIT  RATE LIMIT  LAST ERROR\nhook   webhook  0        closed   -           -\n"} {
		if exit != 0 || !strings.Contains(stdout, want) {
			t.Errorf("junction status: exit %d, stderr %q, no %q in\n%s", exit, stderr, want, stdout)
		}
	}
	exit, stdout, _ = j.cli("status", "--json")
	var st struct {
		Sinks []struct {
			Name    string
			Pending *int
			Circuit string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &st); exit != 0 || err != nil || len(st.Sinks) != 2 || st.Sinks[1].Name != "audit" || st.Sinks[1].Circuit != "closed" || st.Sinks[1].Pending == nil {
		t.Errorf("junction status --json: exit %d, %v\n%s", exit, err, stdout)
	}
}

// TestReloadWatch: serve --watch reloads when the file is replaced, as an
// editor does, and keeps running on a broken edit.
func TestReloadWatch(t *testing.T) {
	a, b := newSink(t, nil), newSink(t, nil)
	dir := t.TempDir()
	cfg, ingest, admin := writeConfig(t, dir, httpSource+fmt.Sprintf(`sinks:
  - {name: a, type: webhook, url: %q}
routes:
  - {name: r, to: [a]}
`, a.url))
	j := &junction{t: t, dir: dir, cfg: cfg, ingest: ingest, admin: admin}
	out := &plugintest.LogBuffer{}
	cmd := exec.Command(binary, "serve", "--watch", "--config", cfg)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := watchProcess(t, "junction", cmd, out, 30*time.Second, true)
	waitReady(t, "junction", 60*time.Second, exited, out, httpOK(admin+"/readyz"))

	j.rewrite(reloadConfig(j, "broken: [\n"))
	waitFor(t, 10*time.Second, "a failed reload after a broken edit", func() bool { return j.reloads("failure") == 1 })
	j.rewrite(reloadConfig(j, fmt.Sprintf(`sinks:
  - {name: a, type: webhook, url: %q}
  - {name: b, type: webhook, url: %q}
routes:
  - {name: r, to: [a]}
  - {name: copy, to: [b]}
`, a.url, b.url)))
	waitFor(t, 10*time.Second, "the reload after the edit", func() bool { return j.reloads("success") == 1 })
	if code := binaryEvent(t, ingest+"/events", "w1", "t", `{}`); code != 202 {
		t.Fatalf("event: %d", code)
	}
	waitCount(t, a, 1, 10*time.Second)
	waitCount(t, b, 1, 10*time.Second)
	if !strings.Contains(out.String(), "config file changed; reloading") {
		t.Errorf("no log of the change:\n%s", out)
	}
}

// TestReloadUnderLoad sends events without pause while the config is
// reloaded several times (the sink rebuilt, a route added and removed):
// every event answered 202 is delivered exactly once.
func TestReloadUnderLoad(t *testing.T) {
	hook, side := newSink(t, nil), newSink(t, nil)
	cfgs := []string{
		fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q, delivery: {timeout: 10s}}
routes:
  - {name: r, to: [hook]}
`, hook.url),
		fmt.Sprintf(`sinks:
  - {name: hook, type: webhook, url: %q, delivery: {timeout: 20s}, concurrency: 16}
  - {name: side, type: webhook, url: %q}
routes:
  - {name: r, to: [hook]}
  - {name: side, filter: 'type == "side"', to: [side]}
`, hook.url, side.url),
	}
	j := start(t, httpSource+cfgs[0])
	var mu sync.Mutex
	accepted := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				req, _ := http.NewRequest(http.MethodPost, j.ingest+"/events", strings.NewReader(`{"n":1}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("ce-specversion", "1.0")
				req.Header.Set("ce-id", id)
				req.Header.Set("ce-source", "/load")
				req.Header.Set("ce-type", "t")
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	const reloads = 5
	for i := range reloads {
		before := count()
		waitFor(t, 20*time.Second, "events accepted between reloads", func() bool { return count() >= before+100 })
		j.rewrite(reloadConfig(j, cfgs[(i+1)%2]))
		if code, body := j.postReload(); code != 200 {
			t.Fatalf("reload %d: %d %v", i, code, body)
		}
	}
	close(stop)
	wg.Wait()
	n := count()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d events at the sink", n), func() bool { return hook.distinct() >= n })
	if hook.distinct() != n || hook.duplicates() != 0 {
		t.Errorf("accepted %d; the sink received %d distinct, %d duplicates", n, hook.distinct(), hook.duplicates())
	}
	got := hook.ids()
	for id := range accepted {
		if got[id] == 0 {
			t.Errorf("accepted event %s never delivered", id)
			break
		}
	}
	if r := j.reloads("success"); r != reloads {
		t.Errorf("junction_config_reloads_total{result=success} = %v, want %d", r, reloads)
	}
	t.Logf("%d events accepted and delivered exactly once across %d reloads", n, reloads)
}
