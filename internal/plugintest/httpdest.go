package plugintest

import (
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/internal/cehttp"
)

// HTTPDest is a real HTTP server, started for one test, that decodes the
// CloudEvents it is sent (binary, structured or a JSON batch) and records
// them: the destination of the sink suite for HTTP sinks.
type HTTPDest struct {
	// URL is the server's base URL.
	URL string
	// Reply, when set, answers each event with the event it returns
	// (structured mode), or with 204 when it returns nil.
	Reply func(e event.Event) *event.Event

	mu     sync.Mutex
	events []event.Event
}

// NewHTTPDest starts an HTTPDest that stops when the test ends.
func NewHTTPDest(t testing.TB) *HTTPDest {
	t.Helper()
	d := &HTTPDest{}
	srv := httptest.NewServer(http.HandlerFunc(d.serve))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	d.URL = srv.URL
	return d
}

func (d *HTTPDest) serve(w http.ResponseWriter, r *http.Request) {
	events, err := readEvents(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.events = append(d.events, events...)
	d.mu.Unlock()
	if d.Reply == nil || len(events) != 1 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	reply := d.Reply(events[0])
	if reply == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	body, err := json.Marshal(reply)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", event.ApplicationCloudEventsJSON)
	_, _ = w.Write(body)
}

// readEvents decodes the CloudEvents of a request.
func readEvents(r *http.Request) ([]event.Event, error) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), event.ApplicationCloudEventsBatchJSON) {
		var batch []event.Event
		err := json.NewDecoder(r.Body).Decode(&batch)
		return batch, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	e, err := cehttp.ParseEvent(r.Header, body)
	if err != nil {
		return nil, err
	}
	return []event.Event{*e}, nil
}

// Events returns the events received so far, in order.
func (d *HTTPDest) Events(testing.TB) []event.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]event.Event(nil), d.events...)
}

// StatusServer starts a server, stopped when the test ends, that answers
// every request with status, and returns its URL.
func StatusServer(t testing.TB, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// StallServer starts a TCP listener, closed when the test ends, that
// accepts connections and never answers, and returns its host:port.
func StallServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
