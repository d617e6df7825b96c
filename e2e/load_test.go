package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// answer is one request of an ingestLoad.
type answer struct {
	id         string
	sent       time.Time
	took       time.Duration
	status     int // 0: no answer (connection error or client timeout)
	retryAfter string
}

// ingestLoad posts binary-mode CloudEvents to one ingress or several (in
// turn, as a load balancer would) on several connections until stopped, and
// records every answer.
type ingestLoad struct {
	stopc    chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	next     atomic.Int64

	mu       sync.Mutex
	accepted map[string]bool
	answers  []answer
}

// startLoad starts conns connections posting to urls, each pausing pause
// between events (0: as fast as answers come); ids are prefix and a number.
func startLoad(prefix string, conns int, pause time.Duration, urls ...string) *ingestLoad {
	l := &ingestLoad{stopc: make(chan struct{}), accepted: map[string]bool{}}
	client := &http.Client{Timeout: 30 * time.Second}
	for c := range conns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := c; ; i++ {
				select {
				case <-l.stopc:
					return
				case <-time.After(pause):
				}
				id := fmt.Sprintf("%s%d", prefix, l.next.Add(1))
				req, _ := http.NewRequest(http.MethodPost, urls[i%len(urls)], strings.NewReader(`{"id":"`+id+`"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("ce-specversion", "1.0")
				req.Header.Set("ce-id", id)
				req.Header.Set("ce-source", "/load")
				req.Header.Set("ce-type", "t")
				a := answer{id: id, sent: time.Now()}
				resp, err := client.Do(req)
				a.took = time.Since(a.sent)
				if err == nil {
					a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
					resp.Body.Close()
				} else {
					time.Sleep(20 * time.Millisecond) // the process may be restarting
				}
				l.mu.Lock()
				l.answers = append(l.answers, a)
				if a.status == http.StatusAccepted {
					l.accepted[id] = true
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stop ends the load and waits for the requests in flight; calling it
// again does nothing.
func (l *ingestLoad) stop() {
	l.stopOnce.Do(func() { close(l.stopc) })
	l.wg.Wait()
}

// sentBetween returns the answers to the requests sent in [from, to).
func (l *ingestLoad) sentBetween(from, to time.Time) []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []answer
	for _, a := range l.answers {
		if !a.sent.Before(from) && a.sent.Before(to) {
			out = append(out, a)
		}
	}
	return out
}

// firstAnswered returns the first answer with status among the requests
// sent at or after from.
func (l *ingestLoad) firstAnswered(status int, from time.Time) (answer, bool) {
	for _, a := range l.sentBetween(from, time.Now().Add(time.Hour)) {
		if a.status == status {
			return a, true
		}
	}
	return answer{}, false
}

func (l *ingestLoad) acceptedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// check fails the test for any answer but 202 or 503, a 503 without
// Retry-After, and a request that took over 10 s; it returns the slowest.
func (l *ingestLoad) check(t *testing.T) answer {
	t.Helper()
	var slowest answer
	bad := 0
	for _, a := range l.sentBetween(time.Time{}, time.Now().Add(time.Hour)) {
		if a.took > slowest.took {
			slowest = a
		}
		switch {
		case a.took > 10*time.Second:
			t.Errorf("a request sent at %s took %v (status %d): over 10 s", a.sent.Format("15:04:05.000"), a.took, a.status)
		case a.status == http.StatusServiceUnavailable && a.retryAfter == "":
			t.Errorf("503 without Retry-After at %s", a.sent.Format("15:04:05.000"))
		case a.status != http.StatusAccepted && a.status != http.StatusServiceUnavailable:
			bad++
			if bad <= 5 {
				t.Errorf("request sent at %s answered %d after %v, want 202 or 503", a.sent.Format("15:04:05.000"), a.status, a.took)
			}
		}
	}
	return slowest
}

// waitDelivered waits until hook has received every event l had accepted.
func (l *ingestLoad) waitDelivered(t *testing.T, hook *sink, timeout time.Duration) {
	t.Helper()
	missing := func() []string {
		got := hook.ids()
		l.mu.Lock()
		defer l.mu.Unlock()
		var out []string
		for id := range l.accepted {
			if got[id] == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(timeout)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		t.Fatalf("%d of %d events answered 202 never reached the sink (e.g. %v)", len(m), l.acceptedCount(), m[:min(5, len(m))])
	}
}

// acceptedBefore returns the ids answered 202 before t.
func (l *ingestLoad) acceptedBefore(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, a := range l.answers {
		if a.status == http.StatusAccepted && a.sent.Add(a.took).Before(t) {
			out = append(out, a.id)
		}
	}
	return out
}

// summary counts the answers by status and finds the slowest.
func (l *ingestLoad) summary() (codes map[int]int, slowest time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	codes = map[int]int{}
	for _, a := range l.answers {
		codes[a.status]++
		slowest = max(slowest, a.took)
	}
	return codes, slowest
}

func (l *ingestLoad) report(t *testing.T) {
	codes, slowest := l.summary()
	t.Logf("load: %d accepted, answers %v, slowest answer %v", l.acceptedCount(), codes, slowest.Round(time.Millisecond))
}
