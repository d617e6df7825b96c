package logsink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

// readEvents decodes the JSON lines of a log file.
func readEvents(t testing.TB, path string) []event.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []event.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e event.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// TestSuite runs the sink conformance suite with files as destinations.
func TestSuite(t *testing.T) {
	plugintest.RunSinkSuite(t, plugintest.SinkHarness{
		Type: "log",
		New: func(t testing.TB) plugintest.SinkTarget {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			return plugintest.SinkTarget{
				Config:  "output: " + path + "\n",
				Receive: func(t testing.TB) []event.Event { return readEvents(t, path) },
			}
		},
		Fail: func(t testing.TB, f plugintest.SinkFailure) string {
			if _, err := os.Stat("/dev/full"); err == nil && f == plugintest.FailRetryable {
				return "output: /dev/full\n"
			}
			return ""
		},
		Caps: plugintest.SinkCaps{Ordered: true},
	})
}
