package functionsink

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/internal/cehttp"
	"github.com/junctionhq/junction/sinks"
)

// fn is a loopback HTTP function: it records each request's event and
// answers with what answer writes.
type fn struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      []*event.Event
	headers  []http.Header
	newConns atomic.Int64
	answer   func(w http.ResponseWriter, r *http.Request, e *event.Event)
}

func newFn(t testing.TB, tlsOn bool, answer func(w http.ResponseWriter, r *http.Request, e *event.Event)) *fn {
	t.Helper()
	f := &fn{answer: answer}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// sdk-go's reader does not percent-decode binary-mode headers: the
		// sink's own reader (tested in internal/cehttp) does.
		body, _ := io.ReadAll(r.Body)
		e, err := cehttp.ParseEvent(r.Header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.got = append(f.got, e)
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		f.answer(w, r, e)
	}))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.newConns.Add(1)
		}
	}
	if tlsOn {
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fn) last(t testing.TB) (*event.Event, http.Header) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		t.Fatal("the function received no request")
	}
	return f.got[len(f.got)-1], f.headers[len(f.headers)-1]
}

func build(t testing.TB, url string, set func(*Config)) *Function {
	t.Helper()
	c := NewConfig()
	c.URL = url
	if set != nil {
		set(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := c.Build(context.Background(), sinks.Deps{Name: "fn"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.(*Function)
}

func deliverReply(t testing.TB, f *Function, e *event.Event) (*event.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.DeliverReply(ctx, e)
}

func order(t testing.TB) *event.Event {
	t.Helper()
	e := event.New()
	e.SetID("order-1")
	e.SetSource("/shop")
	e.SetType("com.example.order.created")
	e.SetSubject("customer 42 ✓")
	e.SetExtension("tenant", "acme")
	if err := e.SetData(event.ApplicationJSON, map[string]any{"orderId": "o-1", "amount": 250}); err != nil {
		t.Fatal(err)
	}
	return &e
}

// binaryReply answers in binary mode with percent-encoded headers.
func binaryReply(status int) func(http.ResponseWriter, *http.Request, *event.Event) {
	return func(w http.ResponseWriter, _ *http.Request, in *event.Event) {
		h := w.Header()
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Id", in.ID()+"-enriched")
		h.Set("Ce-Source", "/functions/enrich")
		h.Set("Ce-Type", "com.example.order.enriched")
		h.Set("Ce-Subject", "customer%2042%20%E2%9C%93")
		h.Set("Ce-Time", "2024-05-06T07:08:09Z")
		h.Set("Ce-Region", "eu")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"orderId":"o-1","total":250,"vip":true}`)
	}
}

func structuredReply(body string) func(http.ResponseWriter, *http.Request, *event.Event) {
	return func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
		w.Header().Set("Content-Type", "application/cloudevents+json; charset=utf-8")
		io.WriteString(w, body)
	}
}

func TestReplies(t *testing.T) {
	cases := []struct {
		name   string
		format string
		answer func(http.ResponseWriter, *http.Request, *event.Event)
		check  func(t *testing.T, r *event.Event)
	}{
		{"binary reply", FormatBinary, binaryReply(http.StatusOK), func(t *testing.T, r *event.Event) {
			if r.ID() != "order-1-enriched" || r.Source() != "/functions/enrich" || r.Type() != "com.example.order.enriched" ||
				r.Subject() != "customer 42 ✓" || r.Time().UTC().Format(time.RFC3339) != "2024-05-06T07:08:09Z" ||
				r.Extensions()["region"] != "eu" || r.DataContentType() != "application/json" ||
				string(r.Data()) != `{"orderId":"o-1","total":250,"vip":true}` {
				t.Errorf("reply: %s", r)
			}
		}},
		{"binary reply to a structured request, 201", FormatStructured, binaryReply(http.StatusCreated), func(t *testing.T, r *event.Event) {
			if r.Type() != "com.example.order.enriched" {
				t.Errorf("reply: %s", r)
			}
		}},
		{"structured reply", FormatBinary, structuredReply(`{"specversion":"1.0","id":"r-1","source":"/functions/enrich","type":"com.example.order.enriched","datacontenttype":"application/json","data":{"total":250},"tenant":"acme"}`), func(t *testing.T, r *event.Event) {
			if r.ID() != "r-1" || r.Source() != "/functions/enrich" || r.Type() != "com.example.order.enriched" ||
				r.Extensions()["tenant"] != "acme" || string(r.Data()) != `{"total":250}` {
				t.Errorf("reply: %s", r)
			}
		}},
		{"202 without a body", FormatBinary, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
			w.WriteHeader(http.StatusAccepted)
		}, nil},
		{"204", FormatBinary, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
			w.WriteHeader(http.StatusNoContent)
		}, nil},
		{"plain JSON body", FormatBinary, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"specversion":"1.0","id":"x","source":"/s","type":"t"}`)
		}, nil},
		{"plain text body", FormatBinary, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
			io.WriteString(w, strings.Repeat("ok ", 100000))
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFn(t, false, tc.answer)
			f := build(t, srv.srv.URL+"/fn", func(c *Config) { c.Format = tc.format })
			in := order(t)
			r, err := deliverReply(t, f, in)
			if err != nil {
				t.Fatalf("DeliverReply: %v", err)
			}
			got, _ := srv.last(t)
			if got.ID() != "order-1" || got.Subject() != "customer 42 ✓" || got.Extensions()["tenant"] != "acme" || string(got.Data()) != string(in.Data()) {
				t.Errorf("the function got %s", got)
			}
			if tc.check == nil {
				if r != nil {
					t.Fatalf("reply %s, want none", r)
				}
				return
			}
			if r == nil {
				t.Fatal("no reply")
			}
			tc.check(t, r)
			if err := r.Validate(); err != nil {
				t.Errorf("reply is not valid: %v", err)
			}
		})
	}
}

func TestInvalidReplies(t *testing.T) {
	binary := func(set map[string]string, body string) func(http.ResponseWriter, *http.Request, *event.Event) {
		return func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
			for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "r-1", "Ce-Source": "/fn", "Ce-Type": "t"} {
				w.Header().Set(k, v)
			}
			for k, v := range set {
				if v == "" {
					w.Header().Del(k)
				} else {
					w.Header().Set(k, v)
				}
			}
			io.WriteString(w, body)
		}
	}
	cases := []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request, *event.Event)
		want   string
	}{
		{"binary without id", binary(map[string]string{"Ce-Id": ""}, ""), `HTTP 200: invalid reply event: missing required attribute "id" (header ce-id)`},
		{"binary without id and type", binary(map[string]string{"Ce-Id": "", "Ce-Type": ""}, ""), `HTTP 200: invalid reply event: missing required attribute "id" (header ce-id)`},
		{"binary specversion", binary(map[string]string{"Ce-Specversion": "2.0"}, ""), `HTTP 200: invalid reply event: invalid attribute "specversion" (header ce-specversion): unsupported value "2.0" (use 1.0 or 0.3)`},
		{"binary percent-encoding", binary(map[string]string{"Ce-Subject": "a%zz"}, ""), `HTTP 200: invalid reply event: invalid attribute "subject" (header ce-subject): invalid percent-encoding`},
		{"binary not UTF-8", binary(map[string]string{"Ce-Subject": "a%ff"}, ""), `HTTP 200: invalid reply event: invalid attribute "subject" (header ce-subject): not UTF-8 once percent-decoded`},
		{"binary time", binary(map[string]string{"Ce-Time": "yesterday"}, ""), `HTTP 200: invalid reply event: invalid attribute "time" (header ce-time): not an RFC 3339 timestamp: "yesterday"`},
		{"binary extension name", binary(map[string]string{"Ce-Tenant-Id": "x"}, ""), `HTTP 200: invalid reply event: invalid attribute name "tenant-id" (header ce-tenant-id): use only letters a-z and digits`},
		{"structured bad JSON", structuredReply(`{"specversion":"1.0",`), "HTTP 200: invalid reply event: invalid CloudEvents JSON: "},
		{"structured without type", structuredReply(`{"specversion":"1.0","id":"r","source":"/fn"}`), "HTTP 200: invalid reply event: missing required attribute type"},
		{"structured empty", structuredReply(``), "HTTP 200: invalid reply event: empty body with Content-Type application/cloudevents+json"},
		{"batch", func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
			w.Header().Set("Content-Type", "application/cloudevents-batch+json")
			io.WriteString(w, `[]`)
		}, "HTTP 200: invalid reply event: a CloudEvents batch (application/cloudevents-batch+json); one event was expected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFn(t, false, tc.answer)
			f := build(t, srv.srv.URL+"/fn", nil)
			r, err := deliverReply(t, f, order(t))
			if err == nil {
				t.Fatalf("got reply %v, want an error", r)
			}
			prefix := "POST " + srv.srv.URL + "/fn: "
			if !strings.HasPrefix(err.Error(), prefix+tc.want) {
				t.Errorf("error:\n got %s\nwant %s%s", err, prefix, tc.want)
			}
			if perm, _ := sinks.Classify(err); !perm {
				t.Error("an invalid reply is retryable, want permanent")
			}
			if strings.ContainsAny(err.Error(), "\r\n") || len(err.Error()) > 300 {
				t.Errorf("error is not one bounded line: %q", err)
			}
			// Deliver ignores the reply.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.Deliver(ctx, order(t)); err != nil {
				t.Errorf("Deliver: %v", err)
			}
		})
	}
}

func TestReplySize(t *testing.T) {
	big := `{"specversion":"1.0","id":"r","source":"/fn","type":"t","data":"` + strings.Repeat("x", 2000) + `"}`
	cases := []struct {
		name    string
		chunked bool
		max     config.ByteSize
		wantErr string
	}{
		{"within the limit", false, 4 << 10, ""},
		{"exactly the limit", true, config.ByteSize(len(big)), ""},
		{"Content-Length over the limit", false, 1 << 10, "HTTP 200: reply larger than maxReplySize (1KiB)"},
		{"chunked over the limit", true, 1 << 10, "HTTP 200: reply larger than maxReplySize (1KiB)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFn(t, false, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
				w.Header().Set("Content-Type", "application/cloudevents+json")
				if tc.chunked {
					io.WriteString(w, big[:10])
					w.(http.Flusher).Flush()
					io.WriteString(w, big[10:])
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				io.WriteString(w, big)
			})
			f := build(t, srv.srv.URL+"/fn", func(c *Config) { c.MaxReplySize = tc.max })
			r, err := deliverReply(t, f, order(t))
			if tc.wantErr == "" {
				if err != nil || r == nil || len(r.Data()) != 2002 {
					t.Fatalf("DeliverReply: %v, %v", r, err)
				}
				return
			}
			if err == nil || err.Error() != "POST "+srv.srv.URL+"/fn: "+tc.wantErr {
				t.Fatalf("got %v, want %s", err, tc.wantErr)
			}
			if perm, _ := sinks.Classify(err); !perm {
				t.Error("an oversized reply is retryable, want permanent")
			}
		})
	}
}

func TestStatuses(t *testing.T) {
	cases := []struct {
		status     int
		retryAfter string
		body       string
		permanent  bool
		after      time.Duration
		want       string
	}{
		{500, "", "boom", false, 0, "HTTP 500 Internal Server Error: boom"},
		{503, "7", "", false, 7 * time.Second, "HTTP 503 Service Unavailable"},
		{429, "2", "slow down", false, 2 * time.Second, "HTTP 429 Too Many Requests: slow down"},
		{408, "", "", false, 0, "HTTP 408 Request Timeout"},
		{404, "", "no such function", true, 0, "HTTP 404 Not Found: no such function"},
		{400, "", "bad\r\nevent", true, 0, "HTTP 400 Bad Request: bad event"},
		{301, "", "", true, 0, "HTTP 301 Moved Permanently"},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := newFn(t, false, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.status == 301 {
					w.Header().Set("Location", "/elsewhere")
				}
				// A CloudEvent in an error answer is not a reply.
				w.Header().Set("Ce-Specversion", "1.0")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			f := build(t, srv.srv.URL+"/fn", nil)
			r, err := deliverReply(t, f, order(t))
			if r != nil {
				t.Errorf("reply %v with an error status", r)
			}
			if err == nil || err.Error() != "POST "+srv.srv.URL+"/fn: "+tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			perm, after := sinks.Classify(err)
			if perm != tc.permanent || after != tc.after {
				t.Errorf("Classify = %v, %v; want %v, %v", perm, after, tc.permanent, tc.after)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// timesOut checks that a delivery to srv with a 150ms attempt timeout
	// fails with a retryable timeout.
	timesOut := func(t *testing.T, srv *fn) {
		t.Helper()
		f := build(t, srv.srv.URL+"/fn", nil)
		ctx, cancel := sinks.WithAttemptTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		_, err := f.DeliverReply(ctx, order(t))
		if err == nil || err.Error() != "POST "+srv.srv.URL+"/fn: attempt timed out after 150ms (the delivery timeout)" {
			t.Fatalf("got %v", err)
		}
		if perm, _ := sinks.Classify(err); perm {
			t.Error("a timeout is permanent, want retryable")
		}
	}
	t.Run("no answer", func(t *testing.T) {
		srv := newFn(t, false, func(w http.ResponseWriter, r *http.Request, _ *event.Event) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		timesOut(t, srv)
	})
	t.Run("reply body stalls", func(t *testing.T) {
		srv := newFn(t, false, func(w http.ResponseWriter, r *http.Request, _ *event.Event) {
			w.Header().Set("Content-Type", "application/cloudevents+json")
			io.WriteString(w, `{"specversion":"1.0",`)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		timesOut(t, srv)
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		f := build(t, "http://"+addr+"/fn", nil)
		_, err = deliverReply(t, f, order(t))
		if err == nil || !strings.HasPrefix(err.Error(), "POST http://"+addr+"/fn: dial tcp "+addr+": connect: connection refused") {
			t.Fatalf("got %v", err)
		}
		if perm, _ := sinks.Classify(err); perm {
			t.Error("connection refused is permanent, want retryable")
		}
	})
}

func TestRequest(t *testing.T) {
	srv := newFn(t, false, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) { w.WriteHeader(http.StatusAccepted) })
	for _, format := range []string{FormatBinary, FormatStructured} {
		t.Run(format, func(t *testing.T) {
			f := build(t, srv.srv.URL+"/fn?key=secret", func(c *Config) {
				c.Format = format
				c.Headers = map[string]string{"Authorization": "Bearer t0ken"}
			})
			if _, err := deliverReply(t, f, order(t)); err != nil {
				t.Fatal(err)
			}
			got, h := srv.last(t)
			if h.Get("Authorization") != "Bearer t0ken" || h.Get("User-Agent") != "junction" {
				t.Errorf("headers: %v", h)
			}
			wantCT := map[string]string{FormatBinary: "application/json", FormatStructured: "application/cloudevents+json; charset=utf-8"}[format]
			if h.Get("Content-Type") != wantCT {
				t.Errorf("Content-Type %q, want %q", h.Get("Content-Type"), wantCT)
			}
			if got.Type() != "com.example.order.created" || got.Subject() != "customer 42 ✓" {
				t.Errorf("the function got %s", got)
			}
			if format == FormatBinary && h.Get("Ce-Subject") != "customer%2042%20%E2%9C%93" {
				t.Errorf("Ce-Subject %q is not percent-encoded", h.Get("Ce-Subject"))
			}
		})
	}
	t.Run("errors hide the query", func(t *testing.T) {
		bad := newFn(t, false, func(w http.ResponseWriter, _ *http.Request, _ *event.Event) { w.WriteHeader(http.StatusForbidden) })
		f := build(t, bad.srv.URL+"/fn?key=secret", nil)
		_, err := deliverReply(t, f, order(t))
		if err == nil || strings.Contains(err.Error(), "secret") || !strings.HasPrefix(err.Error(), "POST "+bad.srv.URL+"/fn?…: HTTP 403") {
			t.Errorf("got %v", err)
		}
	})
}

// writeCA writes the test server's certificate as a CA file.
func writeCA(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLSAndConnectionReuse(t *testing.T) {
	srv := newFn(t, true, binaryReply(http.StatusOK))
	t.Run("caFile, one connection", func(t *testing.T) {
		f := build(t, srv.srv.URL+"/fn", func(c *Config) { c.TLS = &TLS{CAFile: writeCA(t, srv.srv)} })
		before := srv.newConns.Load()
		for i := 0; i < 20; i++ {
			r, err := deliverReply(t, f, order(t))
			if err != nil || r == nil {
				t.Fatalf("DeliverReply: %v, %v", r, err)
			}
		}
		if n := srv.newConns.Load() - before; n != 1 {
			t.Errorf("20 deliveries opened %d connections, want 1", n)
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		f := build(t, srv.srv.URL+"/fn", nil)
		_, err := deliverReply(t, f, order(t))
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("got %v", err)
		}
		if perm, _ := sinks.Classify(err); perm {
			t.Error("a TLS failure is permanent, want retryable")
		}
	})
	t.Run("missing caFile", func(t *testing.T) {
		c := NewConfig()
		c.URL = srv.srv.URL
		missing := filepath.Join(t.TempDir(), "none.pem")
		c.TLS = &TLS{CAFile: missing}
		_, err := c.Build(context.Background(), sinks.Deps{})
		if err == nil || err.Error() != "read tls.caFile: open "+missing+": no such file or directory" {
			t.Fatalf("Build: %v", err)
		}
	})
}
