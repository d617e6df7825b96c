package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// TestConsoleInBrowser clicks through every page of the console in
// Debian's chromium (driven by playwright-core: e2e/console/console.mjs)
// against a junction with a healthy sink and a failing one, behind admin
// auth. JUNCTION_SCREENSHOTS=DIR saves a screenshot of each page there
// (docs/ holds the committed ones).
func TestConsoleInBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	chromium := "/usr/bin/chromium"
	_, errChromium := os.Stat(chromium)
	_, errModules := os.Stat("console/node_modules/playwright-core")
	if err != nil || errChromium != nil || errModules != nil {
		msg := fmt.Sprintf("the console test needs node, %s and playwright-core in e2e/console (scripts/services.sh installs them): %v %v %v", chromium, err, errChromium, errModules)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	good := newSink(t, func(int, *event.Event) int { return 200 })
	bad := newSink(t, func(int, *event.Event) int { return 400 })
	const token = "console-test-token"
	j := start(t, fmt.Sprintf(`http: {listen: "{{HTTP}}"}
admin:
  listen: "{{ADMIN}}"
  auth:
    bearer: [%q]
journal: {dir: "{{DATA}}"}
sources:
  - {name: events, type: http, path: /events}
sinks:
  - {name: good, type: webhook, url: %q}
  - {name: bad, type: webhook, url: %q}
routes:
  - name: orders
    filter: type == "com.example.order"
    to: [good]
  - name: broken
    filter: type == "com.example.broken"
    to: [bad]
`, token, good.url, bad.url))
	for i := 1; i <= 3; i++ {
		if code := binaryEvent(t, j.ingest+"/events", fmt.Sprintf("order-%d", i), "com.example.order", `{"amount": 5}`); code != 202 {
			t.Fatalf("order-%d: %d", i, code)
		}
	}
	for i := 1; i <= 2; i++ {
		if code := binaryEvent(t, j.ingest+"/events", fmt.Sprintf("broken-%d", i), "com.example.broken", `{"amount": 5}`); code != 202 {
			t.Fatalf("broken-%d: %d", i, code)
		}
	}
	waitCount(t, good, 3, 20*time.Second)
	waitFor(t, 20*time.Second, "2 dead letters", func() bool {
		req, _ := http.NewRequest(http.MethodGet, j.admin+"/api/v1/deadletters?sink=bad", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var page struct{ DeadLetters []json.RawMessage }
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&page) == nil && len(page.DeadLetters) >= 2
	})

	shots := os.Getenv("JUNCTION_SCREENSHOTS")
	if shots != "" {
		if shots, err = filepath.Abs(shots); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(node, "console.mjs")
	cmd.Dir = "console"
	cmd.Env = append(os.Environ(), "ADMIN="+j.admin, "INGEST="+j.ingest+"/events", "TOKEN="+token, "SHOTS="+shots, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("console test: %v\njunction's log:\n%s", err, j.stderr)
	}
}
