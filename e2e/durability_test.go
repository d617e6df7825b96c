package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/plugintest"
)

// TestFullJournal fills the journal: ingress answers 503 with Retry-After,
// and a dead letter that cannot be written keeps its delivery pending until
// space is freed; then it reaches the dead-letter sink.
func TestFullJournal(t *testing.T) {
	var open atomic.Bool
	blocked := newSink(t, func(int, *event.Event) int {
		if open.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	// The victim's first attempt is answered (permanent failure) once the
	// journal is full: its dead letter cannot be written then.
	full := make(chan struct{})
	failing := newSink(t, func(int, *event.Event) int {
		<-full
		return http.StatusBadRequest
	})
	dead := newSink(t, ok)
	j := start(t, strings.Replace(base, `journal: {dir: "{{DATA}}"}`, `journal: {dir: "{{DATA}}", maxBytes: 256KiB}`, 1)+fmt.Sprintf(`
sinks:
  - {name: blocked, type: webhook, url: %q}
  - {name: failing, type: webhook, url: %q}
  - {name: dead, type: webhook, url: %q}
routes:
  - name: fill
    filter: type == "fill"
    to: [blocked]
    delivery: {retry: 1000, backoffPolicy: constant, backoffDelay: 200ms}
  - name: fail
    filter: type == "fail"
    to: [failing]
    delivery: {timeout: 60s, deadLetter: dead}
`, blocked.url, failing.url, dead.url))
	url := j.ingest + "/events"
	if code := binaryEvent(t, url, "victim", "fail", `{}`); code != 202 {
		t.Fatalf("victim: %d", code)
	}
	// Fill the journal until it refuses even small events.
	refused := false
	for i, size := 0, 8<<10; i < 2000 && size >= 16; i++ {
		payload := `"` + strings.Repeat("x", size) + `"`
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": fmt.Sprint("fill-", i), "ce-source": "/t", "ce-type": "fill"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case 202:
		case 503:
			refused = true
			size /= 2
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		default:
			t.Fatalf("fill %d: %d", i, resp.StatusCode)
		}
	}
	if !refused {
		t.Fatal("the journal never refused a write")
	}
	close(full)
	// The victim fails for good while the journal is full.
	plugintest.Eventually(t, 10*time.Second, "a failed dead-letter write", func() bool {
		return strings.Contains(j.stderr.String(), "dead-letter write failed; delivery stays pending")
	})
	if dead.count() != 0 {
		t.Fatal("dead letter arrived although the journal was full")
	}
	open.Store(true)
	plugintest.Eventually(t, 30*time.Second, "the dead letter after space was freed", func() bool { return dead.count() == 1 })
	if e := dead.received()[0]; e.ID() != "victim" || e.Extensions()["junctionsink"] != "failing" {
		t.Errorf("dead letter: %s", e)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	hook := newSink(t, func(call int, _ *event.Event) int {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if call == 1 {
			return -1 // 429 with Retry-After: 1
		}
		return http.StatusOK
	})
	j := start(t, hookConfig(hook.url, "{retry: 3, backoffDelay: 20ms, maxDelay: 50ms}"))
	binaryEvent(t, j.ingest+"/events", "ra", "t", `{}`)
	plugintest.Eventually(t, 10*time.Second, "delivery after the 429", func() bool { return hook.count() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("retry came %v after a 429 with Retry-After: 1; want at least 1s", gap)
	}
}

// TestGracefulShutdownDrains stops junction with SIGTERM while a delivery is
// in flight: the delivery completes and is acknowledged, so it is not
// delivered again after a restart.
func TestGracefulShutdownDrains(t *testing.T) {
	var inFlight atomic.Bool
	hook := newSink(t, func(int, *event.Event) int {
		inFlight.Store(true)
		time.Sleep(700 * time.Millisecond)
		return http.StatusOK
	})
	j := start(t, hookConfig(hook.url, "{timeout: 1s}"))
	binaryEvent(t, j.ingest+"/events", "g1", "t", `{}`)
	plugintest.Eventually(t, 5*time.Second, "delivery in flight", inFlight.Load)
	j.stop()
	if code := j.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, j.stderr.String())
	}
	if hook.count() != 1 {
		t.Fatalf("sink completed %d deliveries before exit, want 1", hook.count())
	}
	j.restart()
	// The entry was acknowledged: the journal holds nothing for the sink.
	plugintest.Eventually(t, 5*time.Second, "pending gauge", func() bool {
		return strings.Contains(metricsText(t, j), `junction_pending_deliveries{sink="hook"} 0`)
	})
	if hook.callCount() != 1 {
		t.Fatalf("sink called %d times, want 1 (no redelivery after a drained shutdown)", hook.callCount())
	}
}

func metricsText(t *testing.T, j *junction) string {
	resp, err := http.Get(j.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestShutdownFinishesRequestInFlight sends half a request, stops junction
// with SIGTERM, then sends the rest: the request is still answered 202 and
// its event is delivered.
func TestShutdownFinishesRequestInFlight(t *testing.T) {
	hook := newSink(t, ok)
	j := start(t, hookConfig(hook.url, ""))
	conn, err := net.Dial("tcp", strings.TrimPrefix(j.ingest, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"specversion":"1.0","id":"inflight","source":"/s","type":"t","data":{"half":"way"}}`
	head := fmt.Sprintf("POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\nContent-Length: %d\r\n\r\n", len(body))
	if _, err := conn.Write([]byte(head + body[:20])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server is now reading the body
	j.cmd.Process.Signal(syscall.SIGTERM)
	plugintest.Eventually(t, 5*time.Second, "shutdown to begin", func() bool { return strings.Contains(j.stderr.String(), "shutting down") })
	if _, err := conn.Write([]byte(body[20:])); err != nil {
		t.Fatalf("write the rest of the body after SIGTERM: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the request in flight: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("request in flight answered %d, want 202", resp.StatusCode)
	}
	<-j.exited
	if code := j.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if hook.count() == 0 {
		// Accepted but not yet delivered when the process stopped: it is
		// in the journal and goes out after a restart.
		j.restart()
	}
	plugintest.Eventually(t, 10*time.Second, "the event accepted during shutdown", func() bool { return hook.distinct() == 1 })
}
