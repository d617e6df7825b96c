package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The official CloudEvents JavaScript SDK (npm "cloudevents", pinned in
// e2e/cejs/package.json) as a third-party sender to Junction's http source
// and as the receiver of its webhook sinks, binary and structured.

// jsLine is one line that e2e/cejs/receive.js prints.
type jsLine struct {
	Port        int             `json:"port"`
	OK          bool            `json:"ok"`
	Path        string          `json:"path"`
	ContentType string          `json:"contentType"`
	Error       string          `json:"error"`
	Event       map[string]any  `json:"event"`
	Raw         json.RawMessage `json:"-"`
}

// needNode returns the node binary with e2e/cejs/node_modules installed
// (npm ci when missing). Without node or npm the test is skipped, but not
// in CI.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err != nil || err2 != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and npm are required in CI for the CloudEvents JavaScript SDK test")
		}
		t.Skip("node or npm not found: install Node.js 18+ to run the CloudEvents JavaScript SDK conformance test")
	}
	if _, err := os.Stat(filepath.Join("cejs", "node_modules", "cloudevents", "package.json")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = "cejs"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in e2e/cejs: %v\n%s", err, out)
		}
	}
	return node
}

// jsReceiver runs receive.js and collects what it prints.
type jsReceiver struct {
	mu    sync.Mutex
	lines []jsLine
	url   string
}

func startJSReceiver(t *testing.T, node string) *jsReceiver {
	t.Helper()
	cmd := exec.Command(node, filepath.Join("cejs", "receive.js"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r := &jsReceiver{}
	port := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l jsLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			if l.Port != 0 {
				port <- l.Port
				continue
			}
			l.Raw = append(json.RawMessage(nil), sc.Bytes()...)
			r.mu.Lock()
			r.lines = append(r.lines, l)
			r.mu.Unlock()
		}
	}()
	select {
	case p := <-port:
		r.url = fmt.Sprintf("http://127.0.0.1:%d", p)
	case <-time.After(30 * time.Second):
		t.Fatal("receive.js did not print its port")
	}
	return r
}

func (r *jsReceiver) snapshot() []jsLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]jsLine(nil), r.lines...)
}

// find returns the line for event id received on path.
func (r *jsReceiver) find(path, id string) (jsLine, bool) {
	for _, l := range r.snapshot() {
		if l.OK && l.Path == path && l.Event["id"] == id {
			return l, true
		}
	}
	return jsLine{}, false
}

func TestCloudEventsJSSDK(t *testing.T) {
	node := needNode(t)
	recv := startJSReceiver(t, node)
	j := start(t, base+fmt.Sprintf(`sinks:
  - {name: bin, type: webhook, url: %q}
  - {name: str, type: webhook, url: %q, format: structured}
routes:
  - {name: r, to: [bin, str]}
`, recv.url+"/bin", recv.url+"/str"))

	// The JS SDK as the sender.
	send := exec.Command(node, filepath.Join("cejs", "send.js"), j.ingest+"/events")
	send.Stderr = os.Stderr
	out, err := send.Output()
	if err != nil {
		t.Fatalf("send.js: %v\n%s", err, out)
	}
	sent := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			ID, Mode string
			Status   int
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("send.js printed %q", line)
		}
		if r.Status != http.StatusAccepted {
			t.Errorf("the http source answered %d to the JS SDK's %s event %s, want 202", r.Status, r.Mode, r.ID)
		}
		sent++
	}
	// Raw HTTP: structured JSON data without datacontenttype.
	code, body := post(t, j.ingest+"/events", "application/cloudevents+json", nil,
		`{"specversion":"1.0","id":"raw-nodct","source":"/raw","type":"t","data":{"x":1}}`)
	if code != http.StatusAccepted {
		t.Fatalf("raw event: %d %s", code, body)
	}
	sent++

	waitFor(t, 60*time.Second, "every event at both JS receivers", func() bool { return len(recv.snapshot()) >= 2*sent })
	for _, l := range recv.snapshot() {
		if !l.OK {
			t.Errorf("the JS SDK refused what Junction sent to %s: %s", l.Path, l.Error)
		}
	}
	get := func(path, id string) map[string]any {
		t.Helper()
		l, ok := recv.find(path, id)
		if !ok {
			t.Fatalf("event %s not received on %s; got %v", id, path, recv.snapshot())
		}
		return l.Event
	}
	// asJSON is the JSON of data as the JS SDK gives it: in binary mode it
	// parses only application/json bodies, and leaves others a string.
	asJSON := func(data any) string {
		if s, ok := data.(string); ok && json.Valid([]byte(s)) {
			return s
		}
		b, _ := json.Marshal(data)
		return string(b)
	}
	for _, path := range []string{"/bin", "/str"} {
		e := get(path, "js-binary")
		subject, _ := e["subject"].(string)
		tenant, _ := e["tenant"].(string)
		if path == "/bin" {
			// HTTP 3.1.3.2: Junction percent-encodes header values; the JS
			// SDK 10.0.0 does not decode them (nor encode them when it
			// sends), so they arrive encoded.
			subject, _ = url.PathUnescape(subject)
			tenant, _ = url.PathUnescape(tenant)
		}
		if subject != "Euro \"q\" 100% off" || tenant != "acme corp" {
			t.Errorf("%s: js-binary: subject %q tenant %q", path, e["subject"], e["tenant"])
		}
		if d := asJSON(e["data"]); d != `{"a":[1,2]}` {
			t.Errorf("%s: js-binary: data %s", path, d)
		}
		e = get(path, "js-structured")
		if d := asJSON(e["data"]); d != `{"b":true}` {
			t.Errorf("%s: js-structured (application/vnd.api+json): data %s, want {\"b\":true}", path, d)
		}
		if e["datacontenttype"] != "application/vnd.api+json" {
			t.Errorf("%s: js-structured: datacontenttype %v", path, e["datacontenttype"])
		}
		// An Integer is a JSON number in the JSON format, a header string
		// in binary mode.
		if want := map[string]any{"/bin": "7", "/str": float64(7)}[path]; e["count"] != want {
			t.Errorf("%s: js-structured: count %#v, want %#v", path, e["count"], want)
		}
		if e = get(path, "js-text"); e["data"] != "hello ✓" {
			t.Errorf("%s: js-text: data %v", path, e["data"])
		}
		if d := asJSON(get(path, "raw-nodct")["data"]); d != `{"x":1}` {
			t.Errorf("%s: raw-nodct: data %s", path, d)
		}
	}
	// JSON format 3.1.1: in structured mode application/*+json data is a
	// JSON value, not a string (sdk-go#1161): the JS SDK reads it as is.
	if l, _ := recv.find("/str", "js-structured"); l.Event != nil {
		if _, isString := l.Event["data"].(string); isString {
			t.Errorf("structured sink: application/vnd.api+json data arrived as a JSON string: %s", l.Raw)
		}
	}
	// JSON format 3.1.2: the implied application/json is set explicitly on
	// re-serialization (binary mode: Content-Type).
	if l, _ := recv.find("/bin", "raw-nodct"); !strings.HasPrefix(l.ContentType, "application/json") {
		t.Errorf("binary sink: Content-Type %q for an event without datacontenttype, want application/json", l.ContentType)
	}
}

// TestConformanceRawHTTP: binding edge cases sent as raw HTTP to the real
// binary. HTTP 3.1.3.2: a double-quoted header value "MUST be supported
// when receiving"; HTTP 3.3.2: "The batch MAY be empty" (202, nothing
// journaled) and "All batched CloudEvents MUST have the same specversion"
// (400, nothing journaled).
func TestConformanceRawHTTP(t *testing.T) {
	s := newSink(t, nil)
	j := start(t, hookConfig(s.url, ""))
	url := j.ingest + "/events"

	code, body := post(t, url, "application/cloudevents-batch+json", nil, `[]`)
	if code != http.StatusAccepted {
		t.Errorf("empty batch: %d %q, want 202", code, body)
	}
	code, body = post(t, url, "application/cloudevents-batch+json", nil,
		`[{"specversion":"1.0","id":"m1","source":"/raw","type":"t"},{"specversion":"0.3","id":"m2","source":"/raw","type":"t"}]`)
	if code != http.StatusBadRequest || strings.Contains(strings.TrimSuffix(body, "\n"), "\n") || !strings.Contains(body, "specversion") {
		t.Errorf("mixed specversions: %d %q, want 400 with a one-line reason", code, body)
	}
	code, body = post(t, url, "text/plain", map[string]string{
		"ce-specversion": "1.0", "ce-id": "quoted", "ce-source": "/raw", "ce-type": "t",
		"ce-subject": `"say \"hi\" %E2%9C%93"`,
	}, "hello")
	if code != http.StatusAccepted {
		t.Fatalf("quoted header: %d %q", code, body)
	}
	waitCount(t, s, 1, 30*time.Second)
	got := s.received()
	if len(got) != 1 || got[0].ID() != "quoted" || got[0].Subject() != `say "hi" ✓` {
		t.Fatalf("received %v, want only the event quoted with subject say \"hi\" ✓", got)
	}
	// Only that event was journaled: received counts the accepted events.
	if n := j.metric("junction_events_received_total", `source="events"`); n != 1 {
		t.Errorf("junction_events_received_total %v, want 1", n)
	}
}
