package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junctionhq/junction/internal/plugintest"
)

// warehouse is a running examples/operations/warehouse: the webhook
// receiver that rejects the orders of SKUs outside its catalogue.
type warehouse struct {
	cmd    *exec.Cmd
	out    *plugintest.LogBuffer
	exited <-chan struct{}
}

// buildWarehouse builds examples/operations/warehouse into a temporary
// directory and returns the binary's path.
func buildWarehouse(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "warehouse")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/operations/warehouse").CombinedOutput(); err != nil {
		t.Fatalf("build the warehouse: %v\n%s", err, out)
	}
	return bin
}

// startWarehouse runs the warehouse binary bin on addr with the catalogue
// skus, as the example's README does, and waits until it listens.
func startWarehouse(t *testing.T, bin, addr, skus string) *warehouse {
	t.Helper()
	w := &warehouse{out: &plugintest.LogBuffer{}}
	w.cmd = exec.Command(bin)
	w.cmd.Env = append(os.Environ(), "WAREHOUSE_LISTEN="+addr, "WAREHOUSE_SKUS="+skus)
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.exited = watchProcess(t, "warehouse", w.cmd, w.out, 10*time.Second, false)
	waitReady(t, "warehouse", 10*time.Second, w.exited, w.out, func() bool { return strings.Contains(w.out.String(), "warehouse listening") })
	return w
}

// stop ends the warehouse and waits until it has.
func (w *warehouse) stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.exited
}

// waitLines waits until the warehouse printed every line of want.
func (w *warehouse) waitLines(t *testing.T, want ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("the warehouse printing %q", want), func() bool {
		lines := strings.Split(w.out.String(), "\n")
		for _, l := range want {
			if !contains(lines, l) {
				return false
			}
		}
		return true
	})
}

func contains(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

// skuOrder posts the order n of sku with amount n*100 to
// examples/operations' source, as its README does.
func skuOrder(t *testing.T, j *junction, n int, sku string) {
	t.Helper()
	code, body := post(t, j.ingest+"/events", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-id": fmt.Sprint("order-", n), "ce-source": "/shop", "ce-type": "com.example.order.created",
	}, fmt.Sprintf(`{"orderId":"o-%d","sku":%q,"amount":%d}`, n, sku, n*100))
	if code != http.StatusAccepted {
		t.Fatalf("POST order %d: %d %s", n, code, body)
	}
}

// ops runs a junction CLI command against j's admin API and fails the
// test unless it exits 0.
func ops(t *testing.T, j *junction, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, append(args, "--admin", j.admin)...)
	if code != 0 {
		t.Fatalf("junction %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// waitOps runs a junction CLI command against j's admin API until its
// output matches every pattern of want (traces are written a moment after
// the deliveries they record) and returns that output.
func waitOps(t *testing.T, j *junction, want []string, args ...string) string {
	t.Helper()
	var out string
	waitFor(t, 10*time.Second, fmt.Sprintf("junction %s printing %q", strings.Join(args, " "), want), func() bool {
		code, stdout, _ := cli(t, append(args, "--admin", j.admin)...)
		out = stdout
		for _, w := range want {
			if code != 0 || !regexp.MustCompile(w).MatchString(out) {
				return false
			}
		}
		return true
	})
	return out
}

// matchAll fails the test for each pattern of want that out does not match.
func matchAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !regexp.MustCompile(w).MatchString(out) {
			t.Errorf("%s: no %q in\n%s", what, w, out)
		}
	}
}

// warehouseSummary is "state: outcome/status,..." of the delivery of
// route orders to sink warehouse in a trace.
func (d traceDoc) warehouseSummary() string {
	for i, r := range d.Routes {
		if r.Route == "orders" && len(r.Deliveries) > 0 && r.Deliveries[0].Sink == "warehouse" {
			return traceDoc{Routes: d.Routes[i : i+1]}.summary()
		}
	}
	return ""
}

// TestExampleOperations walks examples/operations/README.md with the real
// binary and the example's warehouse: the warehouse rejects the plum
// orders, which are dead-lettered; `deadletters list` (table and --json),
// `events get` and `status` show them and the error; after the warehouse
// is fixed, `deadletters redrive --route orders` delivers them and the
// trace shows it; `reload` takes an edit of the config and refuses a bad
// one; `replay --wait` sends the big orders again; and after a restart the
// dead letters, the trace and the replay jobs are still there.
func TestExampleOperations(t *testing.T) {
	t.Parallel()
	bin, addr := buildWarehouse(t), freePort(t)
	wh := startWarehouse(t, bin, addr, "apple,pear")
	text, err := os.ReadFile("../examples/operations/junction.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "junction.yaml")
	if err := os.WriteFile(cfg, text, 0o644); err != nil {
		t.Fatal(err)
	}
	j := startFile(t, cfg, "WAREHOUSE_URL=http://"+addr+"/orders")

	// The day starts: five orders, two of a SKU the warehouse does not know.
	for n, sku := range []string{"", "apple", "pear", "plum", "apple", "plum"} {
		if n > 0 {
			skuOrder(t, j, n, sku)
		}
	}
	wh.waitLines(t, "accepted order-1 sku apple", "accepted order-2 sku pear", "rejected order-3 sku plum",
		"accepted order-4 sku apple", "rejected order-5 sku plum")

	// Dead letters: the table, newest first, and --json. Deliveries run
	// in parallel: either plum may be the newest.
	const plumError = `POST http://` + `\S+/orders: HTTP 400 Bad Request: unknown sku "plum"`
	out := waitOps(t, j, []string{`order-3`, `order-5`}, "deadletters", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	row := regexp.MustCompile(`^(\d+) +\S+ +orders +warehouse +1 +(order-[35]) +` + plumError + `$`)
	if len(lines) != 3 || !regexp.MustCompile(`^ID +TIME +ROUTE +SINK +ATTEMPTS +EVENT +ERROR$`).MatchString(lines[0]) {
		t.Fatalf("deadletters list: want a header and two rows:\n%s", out)
	}
	newest, oldest := row.FindStringSubmatch(lines[1]), row.FindStringSubmatch(lines[2])
	if newest == nil || oldest == nil || newest[2] == oldest[2] || atoi(newest[1]) <= atoi(oldest[1]) {
		t.Fatalf("deadletters list: want order-3 and order-5, newest first:\n%s", out)
	}
	var page struct {
		DeadLetters []struct {
			ID, Route, Sink, Reason, Error string
			Attempts                       int
			Event                          struct {
				ID   string
				Data struct{ SKU string }
			}
		}
	}
	out = ops(t, j, "deadletters", "list", "--json")
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.DeadLetters) != 2 {
		t.Fatalf("deadletters list --json: %v\n%s", err, out)
	}
	for i, want := range [][]string{newest, oldest} {
		dl := page.DeadLetters[i]
		if dl.ID != want[1] || dl.Event.ID != want[2] || dl.Event.Data.SKU != "plum" || dl.Route != "orders" || dl.Sink != "warehouse" ||
			dl.Reason != "permanent" || dl.Attempts != 1 || !strings.HasSuffix(dl.Error, `HTTP 400 Bad Request: unknown sku "plum"`) {
			t.Errorf("deadletters list --json entry %d = %+v; want %s %s, plum, orders, warehouse, permanent, 1 attempt", i, dl, want[1], want[2])
		}
	}

	// The trace of order-3: one attempt, dead-lettered, then the dead
	// letter sink took it.
	waitOps(t, j, []string{`^event order-3  source /shop  type com.example.order.created\n`,
		`route orders\n  sink warehouse: dead_lettered\n +#1 +\S+ +dead_lettered +400 +[0-9.]+ms +` + plumError + `\n  sink dead: delivered\n`}, "events", "get", "order-3")

	// Status: the warehouse's last error.
	waitOps(t, j, []string{`(?m)^warehouse +webhook +0 +closed +- +` + plumError + ` \(\d+s ago\)$`}, "status")

	// The warehouse is fixed (plum is in its catalogue): redrive the route.
	wh.stop()
	wh = startWarehouse(t, bin, addr, "apple,pear,plum")
	if out = ops(t, j, "deadletters", "redrive", "--route", "orders"); out != "redriven 2\n" {
		t.Fatalf("deadletters redrive --route orders: %q, want redriven 2", out)
	}
	wh.waitLines(t, "accepted order-3 sku plum", "accepted order-5 sku plum")
	if out = ops(t, j, "deadletters", "list"); out != "no dead letters\n" {
		t.Errorf("deadletters list after the redrive: %q", out)
	}
	const redriven = "delivered: dead_lettered/Bad Request,redriven,delivered"
	waitFor(t, 10*time.Second, "the redrive in the trace of order-3", func() bool {
		_, doc := getTrace(t, j.admin, "order-3")
		return doc.warehouseSummary() == redriven
	})
	matchAll(t, "events get order-3 after the redrive", ops(t, j, "events", "get", "order-3"),
		`  sink warehouse: delivered\n +#1 +\S+ +dead_lettered +400 .*\n +- +\S+ +redriven *\n +#1 +\S+ +delivered +[0-9.]+ms *\n`)

	// Reload: the warehouse asks for at most 50 orders a second.
	edited := strings.Replace(string(text), "    url: ${WAREHOUSE_URL:-http://127.0.0.1:9999/orders}\n",
		"    url: ${WAREHOUSE_URL:-http://127.0.0.1:9999/orders}\n    rateLimit: 50/s\n", 1)
	if edited == string(text) {
		t.Fatal("examples/operations/junction.yaml has no warehouse url line to add rateLimit after")
	}
	if err := os.WriteFile(cfg, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if out = ops(t, j, "reload"); out != "reloaded: 1 source, 3 sinks, 2 routes\n  changed: sink \"warehouse\"\n" {
		t.Errorf("reload: %q", out)
	}
	matchAll(t, "status after the reload", ops(t, j, "status"), `(?m)^warehouse +webhook +0 +closed +50/s +`)
	if err := os.WriteFile(cfg, []byte(strings.Replace(edited, "rateLimit: 50/s", "rateLimit: lots", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "reload", "--admin", j.admin)
	if code != 1 || !strings.Contains(errOut, "the config was not reloaded; the running config is kept") ||
		!regexp.MustCompile(regexp.QuoteMeta(cfg)+`:\d+:\d+: sink "warehouse": rateLimit: invalid rate "lots"`).MatchString(errOut) {
		t.Errorf("reload of a bad edit: exit %d\n%s%s", code, out, errOut)
	}
	matchAll(t, "status after the refused reload", ops(t, j, "status"), `(?m)^warehouse +webhook +0 +closed +50/s +`)
	if err := os.WriteFile(cfg, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}

	// Replay: the big orders of the last hour, to the warehouse again.
	out = ops(t, j, "replay", "--from", "-1h", "--route", "orders", "--filter", "data.amount > 200", "--wait")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "rp-") || lines[len(lines)-1] != lines[0]+"  done  scanned=5 matched=3 routed=3 unrouted=0" {
		t.Fatalf("replay --wait:\n%s", out)
	}
	replay := lines[0]
	wh.waitLines(t, "accepted order-3 sku plum replay "+replay, "accepted order-4 sku apple replay "+replay,
		"accepted order-5 sku plum replay "+replay)
	if n := strings.Count(wh.out.String(), " replay "); n != 3 {
		t.Errorf("the warehouse got %d replayed orders, want 3:\n%s", n, wh.out)
	}
	matchAll(t, "replay list", ops(t, j, "replay", "list"),
		`^ID +STATE +FROM +TO +ROUTES +FILTER +MATCHED +ROUTED\n`, `\n`+replay+` +done +\S+ +\S+ +orders +data.amount > 200 +3 +3\n`)

	// A kiwi order, which the warehouse still rejects, then a restart:
	// the dead letter, the trace and the replay job are all still there.
	skuOrder(t, j, 6, "kiwi")
	wh.waitLines(t, "rejected order-6 sku kiwi")
	waitOps(t, j, []string{`order-6 +POST \S+: HTTP 400 Bad Request: unknown sku "kiwi"`}, "deadletters", "list")
	j.stop()
	j.restart()
	out = ops(t, j, "deadletters", "list")
	if lines = strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		!regexp.MustCompile(`^\d+ +\S+ +orders +warehouse +1 +order-6 +POST \S+: HTTP 400 Bad Request: unknown sku "kiwi"$`).MatchString(lines[1]) {
		t.Errorf("deadletters list after the restart: want order-6 only:\n%s", out)
	}
	if _, doc := getTrace(t, j.admin, "order-3"); !strings.HasPrefix(doc.warehouseSummary(), redriven) {
		t.Errorf("trace of order-3 after the restart: %q, want it to start %q", doc.warehouseSummary(), redriven)
	}
	matchAll(t, "events get order-3 after the restart", ops(t, j, "events", "get", "order-3"), `\n +- +\S+ +redriven *\n`)
	matchAll(t, "replay list after the restart", ops(t, j, "replay", "list"), `\n`+replay+` +done +.* +3 +3\n`)
	matchAll(t, "status after the restart", ops(t, j, "status"), `(?m)^warehouse +webhook +0 +closed +50/s +`)
}
