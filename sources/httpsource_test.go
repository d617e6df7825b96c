package sources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/junctionhq/junction/config"
)

// counter is an Ingester that counts rejections.
type counter struct {
	mu       sync.Mutex
	rejected map[string]int
}

func (c *counter) Ingest(context.Context, []*event.Event) error { return nil }

func (c *counter) Rejected(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rejected == nil {
		c.rejected = map[string]int{}
	}
	c.rejected[reason]++
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.rejected)
}

var _ Ingester = (*counter)(nil)

func testEvent(id string) *event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/shop")
	e.SetType("com.example.order.created")
	return &e
}

func TestAnswerIngest(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		cancelled  bool // the request's context has ended
		events     int
		status     int
		body       string // without its newline
		retryAfter string
		label      string // "" when nothing is rejected
		log        []string
	}{
		{name: "journaled", events: 1, status: 202},
		{name: "journaled after the client left", cancelled: true, events: 1, status: 202},
		{name: "too large", err: fmt.Errorf("append: %w", ErrTooLarge), events: 1, status: 413,
			body: "event too large for the journal", label: ReasonTooLarge, log: []string{"level=DEBUG", "ce_id=e0"}},
		{name: "too large, cancelled", err: fmt.Errorf("append: %w", ErrTooLarge), cancelled: true, events: 1, status: 413,
			body: "event too large for the journal", label: ReasonTooLarge},
		{name: "unavailable", err: fmt.Errorf("append: %w", ErrUnavailable), events: 1, status: 503,
			body: "journal unavailable; retry later", retryAfter: "1", label: ReasonUnavailable,
			log: []string{"level=DEBUG", "ce_id=e0", "ce_type=com.example.order.created", "ce_source=/shop", `err="append: journal unavailable"`}},
		{name: "journal too slow", err: fmt.Errorf("append: %w", context.DeadlineExceeded), events: 1, status: 503,
			body: "journal unavailable; retry later", retryAfter: "1", label: ReasonUnavailable},
		{name: "cancelled", err: fmt.Errorf("append: %w", context.Canceled), cancelled: true, events: 2, status: 503,
			body: "request cancelled before the events were journaled; retry", retryAfter: "1", label: ReasonCancelled,
			log: []string{"level=DEBUG", "ce_id=e0", "events=2"}},
		{name: "unavailable, cancelled", err: ErrUnavailable, cancelled: true, events: 1, status: 503,
			body: "request cancelled before the events were journaled; retry", retryAfter: "1", label: ReasonCancelled},
		{name: "other error", err: errors.New("append: /var/lib/junction: disk\non fire"), events: 3, status: 500,
			body: "internal error: the events were not stored", label: ReasonInternal,
			log: []string{"level=ERROR", "ce_id=e0", "events=3", `err="append: /var/lib/junction: disk\non fire"`}},
		{name: "no events", err: errors.New("boom"), status: 500,
			body: "internal error: the events were not stored", label: ReasonInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/events", nil)
			events := make([]*event.Event, tt.events)
			for i := range events {
				events[i] = testEvent(fmt.Sprintf("e%d", i))
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			in := &counter{}
			w := httptest.NewRecorder()
			AnswerIngest(w, r, in, events, tt.err, log)

			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if got := strings.TrimSuffix(w.Body.String(), "\n"); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			want := map[string]int{}
			if tt.label != "" {
				want[tt.label] = 1
			}
			if got := in.String(); got != fmt.Sprint(want) {
				t.Errorf("rejected %s, want %v", got, want)
			}
			if tt.err == nil && logs.Len() > 0 {
				t.Errorf("logged on success: %s", logs.String())
			}
			for _, s := range tt.log {
				if !strings.Contains(logs.String(), s) {
					t.Errorf("log %q does not contain %q", logs.String(), s)
				}
			}
			if tt.events == 1 && strings.Contains(logs.String(), "events=") {
				t.Errorf("log of one event counts events: %s", logs.String())
			}
		})
	}
}

func TestAnswerIngestNilLogger(t *testing.T) {
	w := httptest.NewRecorder()
	AnswerIngest(w, httptest.NewRequest(http.MethodPost, "/", nil), &counter{}, nil, errors.New("boom"), nil)
	if w.Code != 500 {
		t.Errorf("status %d, want 500", w.Code)
	}
}

// unknownLength hides the length of a body, so that the client sends it
// chunked.
type unknownLength struct{ io.Reader }

func TestReadBody(t *testing.T) {
	const limit = 1024
	type result struct {
		body   []byte
		err    error
		status int
		label  string
		reason string
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := ReadBody(w, r, limit)
		res := result{body: b, err: err}
		if err != nil {
			res.status, res.label, res.reason = ReadError(err)
		}
		results <- res
	}))
	defer srv.Close()

	tests := []struct {
		name    string
		body    io.Reader
		size    int  // bytes sent
		chunked bool // without a Content-Length
		status  int  // of ReadError; 0 when the body is read
		label   string
		reason  string
	}{
		{name: "no body", size: 0},
		{name: "small", size: 10},
		{name: "at the limit", size: limit},
		{name: "over the limit", size: limit + 1, status: 413, label: ReasonTooLarge, reason: "body over the limit of 1KiB"},
		{name: "chunked, small", size: 10, chunked: true},
		{name: "chunked, at the limit", size: limit, chunked: true},
		{name: "chunked, over the limit", size: limit + 1, chunked: true, status: 413, label: ReasonTooLarge, reason: "body over the limit of 1KiB"},
		{name: "chunked, far over the limit", size: 1 << 20, chunked: true, status: 413, label: ReasonTooLarge, reason: "body over the limit of 1KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := bytes.Repeat([]byte("x"), tt.size)
			var body io.Reader = bytes.NewReader(sent)
			if tt.chunked {
				body = unknownLength{body}
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := srv.Client().Do(req); err == nil {
				resp.Body.Close()
			}
			res := <-results
			if res.status != tt.status || res.label != tt.label || res.reason != tt.reason {
				t.Fatalf("ReadError = %d %q %q (err %v), want %d %q %q", res.status, res.label, res.reason, res.err, tt.status, tt.label, tt.reason)
			}
			if tt.status == 0 && !bytes.Equal(res.body, sent) {
				t.Errorf("read %d bytes, want the %d sent", len(res.body), len(sent))
			}
		})
	}
}

// TestReadBodyTruncated sends fewer bytes than the Content-Length says,
// over a raw connection, then closes its side.
func TestReadBodyTruncated(t *testing.T) {
	type result struct {
		status        int
		label, reason string
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res result
		if _, err := ReadBody(w, r, 100); err != nil {
			res.status, res.label, res.reason = ReadError(err)
		}
		results <- res
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort"); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	res := <-results
	if want := (result{400, ReasonMalformed, "read body: unexpected EOF"}); res != want {
		t.Errorf("ReadError = %v, want %v", res, want)
	}
}

func TestRefuse(t *testing.T) {
	for _, tt := range []struct {
		status     int
		reason     string
		body       string
		retryAfter string
	}{
		{400, "bad\nrequest", "bad request\n", ""},
		{503, "later", "later\n", "1"},
	} {
		in := &counter{}
		w := httptest.NewRecorder()
		Refuse(w, in, tt.status, "label", tt.reason)
		if w.Code != tt.status || w.Body.String() != tt.body || w.Header().Get("Retry-After") != tt.retryAfter {
			t.Errorf("Refuse(%d, %q): %d %q Retry-After %q, want %d %q %q", tt.status, tt.reason,
				w.Code, w.Body.String(), w.Header().Get("Retry-After"), tt.status, tt.body, tt.retryAfter)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q, want text/plain", ct)
		}
		if got := in.String(); got != "map[label:1]" {
			t.Errorf("rejected %s, want one label", got)
		}
	}
}

func TestOneLine(t *testing.T) {
	long := strings.Repeat("é", 400)
	for _, tt := range []struct{ in, want string }{
		{"ok", "ok"},
		{"", ""},
		{"a\nb\r\n\tc", "a b c"},
		{"bad \xff byte", "bad byte"},
		{"esc\x1b[31m \x00 del\x7f", "esc [31m del"},
		{"c1 \u0085 ls \u2028 ps \u2029 end", "c1 ls ps end"},
		{"café", "café"},
		{strings.Repeat("a", MaxReason), strings.Repeat("a", MaxReason)},
		{strings.Repeat("a", MaxReason+1), strings.Repeat("a", MaxReason-3) + "…"},
		{long, strings.Repeat("é", (MaxReason-3)/2) + "…"},
		{strings.Repeat("\n", 1000), ""},
	} {
		got := OneLine(tt.in)
		if got != tt.want {
			t.Errorf("OneLine(%.20q) = %.40q, want %.40q", tt.in, got, tt.want)
		}
		if len(got) > MaxReason {
			t.Errorf("OneLine(%.20q) is %d bytes, over %d", tt.in, len(got), MaxReason)
		}
	}
	if n := testing.AllocsPerRun(100, func() { OneLine("journal unavailable; retry later") }); n != 0 {
		t.Errorf("OneLine of a clean line allocates %v times", n)
	}
}

func FuzzOneLine(f *testing.F) {
	f.Add("ok")
	f.Add("a\nb\xff\u2028" + strings.Repeat("é", 200))
	f.Fuzz(func(t *testing.T, s string) {
		got := OneLine(s)
		if len(got) > MaxReason {
			t.Fatalf("%d bytes", len(got))
		}
		for _, r := range got {
			if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '\u2028' || r == '\u2029' || r == '\uFFFD' {
				t.Fatalf("OneLine(%q) = %q holds %U", s, got, r)
			}
		}
	})
}

func TestCheckPath(t *testing.T) {
	plain := `must be a plain URL path (no spaces, '?', '#', '{' or '}'), got `
	for _, tt := range []struct{ path, want string }{
		{"/events", ""},
		{"/hooks/github/", ""},
		{"/a%20b", ""},
		{"", "path: required: the URL path to serve, such as /events"},
		{"events", `path: must start with "/", got "events"`},
		{"/events?x=1", "path: " + plain + `"/events?x=1"`},
		{"/events#x", "path: " + plain + `"/events#x"`},
		{"/a b", "path: " + plain + `"/a b"`},
		{"/events/{id}", "path: " + plain + `"/events/{id}"`},
		{"/a%zz", `path: "/a%zz" is not a URL path: invalid URL escape "%zz"`},
		{"/a\x00", `path: "/a\x00" is not a URL path: net/url: invalid control character in URL`},
	} {
		err := CheckPath(tt.path)
		got := ""
		if err != nil {
			got = err.Error()
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("CheckPath(%q) = %T, want a *config.FieldError", tt.path, err)
			}
		}
		if got != tt.want {
			t.Errorf("CheckPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	for _, tt := range []struct {
		own     config.ByteSize
		ingress int64
		want    int64
	}{
		{0, 5000, 5000},
		{100, 5000, 100},
		{0, 0, int64(config.DefaultMaxBodySize)},
		{100, 0, 100},
	} {
		if got := (Deps{MaxBodySize: tt.ingress}).BodyLimit(tt.own); got != tt.want {
			t.Errorf("BodyLimit(%d) with ingress %d = %d, want %d", tt.own, tt.ingress, got, tt.want)
		}
	}
}

// BenchmarkReadBody reads a 1 KiB body of known length, as on every
// request; the large case, 256 KiB, shows the cost of growing with what
// arrives instead of trusting Content-Length.
func BenchmarkReadBody(b *testing.B) {
	b.Run("1KiB", func(b *testing.B) { benchmarkReadBody(b, 1<<10) })
	b.Run("256KiB", func(b *testing.B) { benchmarkReadBody(b, 256<<10) })
}

func benchmarkReadBody(b *testing.B, size int) {
	data := bytes.Repeat([]byte("x"), size)
	rd := bytes.NewReader(data)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = io.NopCloser(rd)
	r.ContentLength = int64(len(data))
	w := httptest.NewRecorder()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(data)
		if _, err := ReadBody(w, r, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEventReason(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"validation", event.ValidationError{
			"source":        errors.New("REQUIRED"),
			"id":            errors.New("MUST be a non-empty string"),
			"extension:ext": errors.New("bad\nvalue"),
		}, `invalid attribute "ext": bad value; invalid attribute "id": MUST be a non-empty string; invalid attribute "source": REQUIRED`},
		{"wrapped validation", fmt.Errorf("validate: %w", event.ValidationError{"type": errors.New("MUST be a non-empty string")}),
			`invalid attribute "type": MUST be a non-empty string`},
		{"parser error", errors.New(`readObjectStart: expect { or n, but found 1, error found in #1 byte of ...|1234|..., bigger context ...|1234|...`),
			`invalid event: readObjectStart: expect { or n, but found 1`},
	} {
		if got := EventReason(tt.err); got != tt.want {
			t.Errorf("%s: EventReason = %q, want %q", tt.name, got, tt.want)
		}
	}
	// A real SDK error, through Validate.
	e := event.New()
	e.SetSource("/shop")
	e.SetType("t")
	if got, want := EventReason(e.Validate()), `invalid attribute "id": MUST be a non-empty string`; got != want {
		t.Errorf("EventReason(Validate()) = %q, want %q", got, want)
	}
}

// stalled is a body that gives its bytes, then err: a client that announced
// more than it sent, then stalled (a read timeout) or hung up.
type stalled struct {
	data []byte
	err  error
}

func (s *stalled) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, s.err
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestReadBodyAllocatesWhatArrives: a request that announces 1 MiB (the
// limit) and sends 10 bytes costs about what arrived, not what was
// announced, whether the client then stalls or hangs up.
func TestReadBodyAllocatesWhatArrives(t *testing.T) {
	const (
		announced = 1 << 20
		runs      = 20
	)
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, end := range []error{timeout, io.ErrUnexpectedEOF} {
		reqs := make([]*http.Request, runs)
		for i := range reqs {
			reqs[i] = httptest.NewRequest(http.MethodPost, "/", nil)
			reqs[i].Body = io.NopCloser(&stalled{data: []byte("0123456789"), err: end})
			reqs[i].ContentLength = announced
		}
		w := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, r := range reqs {
			if _, err := ReadBody(w, r, announced); !errors.Is(err, end) {
				t.Fatalf("ReadBody: %v, want %v", err, end)
			}
		}
		runtime.ReadMemStats(&after)
		perRequest := (after.TotalAlloc - before.TotalAlloc) / runs
		t.Logf("ending with %v: %d bytes allocated per request", end, perRequest)
		if perRequest > 16<<10 {
			t.Errorf("ending with %v: %d bytes allocated per request for 10 bytes received, want at most 16KiB", end, perRequest)
		}
	}
}

// TestReadBodyGrows reads bodies of every size class up to the limit, in
// small reads, with and without an honest Content-Length.
func TestReadBodyGrows(t *testing.T) {
	const limit = 300 << 10
	for _, size := range []int{0, 1, 511, 512, 513, 4095, 4096, 4097, 100 << 10, limit} {
		for _, announce := range []int64{-1, int64(size)} {
			sent := bytes.Repeat([]byte("abcdefg"), size/7+1)[:size]
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body = io.NopCloser(iotest.HalfReader(bytes.NewReader(sent)))
			r.ContentLength = announce
			got, err := ReadBody(httptest.NewRecorder(), r, limit)
			if err != nil || !bytes.Equal(got, sent) {
				t.Errorf("size %d, Content-Length %d: read %d bytes, %v", size, announce, len(got), err)
			}
			if announce >= 0 && cap(got) > 2*size+(4<<10)+1 {
				t.Errorf("size %d, Content-Length %d: buffer of %d bytes", size, announce, cap(got))
			}
		}
	}
	// Over the limit without a Content-Length: refused, the buffer bounded.
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = io.NopCloser(bytes.NewReader(make([]byte, limit+10)))
	r.ContentLength = -1
	if _, err := ReadBody(httptest.NewRecorder(), r, limit); err == nil {
		t.Error("a body over the limit was read")
	}
}

func TestReadError(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}
	opErr := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Source: local, Addr: remote, Err: err}
	}
	for _, tt := range []struct {
		name   string
		err    error
		status int
		label  string
		reason string
	}{
		{"too large", &http.MaxBytesError{Limit: 1 << 20}, 413, ReasonTooLarge, "body over the limit of 1MiB"},
		{"read timeout", opErr(os.ErrDeadlineExceeded), 408, ReasonTimeout, "request body not received in time"},
		{"wrapped timeout", fmt.Errorf("read: %w", opErr(os.ErrDeadlineExceeded)), 408, ReasonTimeout, "request body not received in time"},
		{"deadline", context.DeadlineExceeded, 408, ReasonTimeout, "request body not received in time"},
		{"reset", opErr(&os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}), 400, ReasonMalformed, "read body: connection reset by peer"},
		{"wrapped reset", fmt.Errorf("body: %w", opErr(&os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET})), 400, ReasonMalformed, "read body: connection reset by peer"},
		{"cause naming an address", opErr(errors.New("peer 127.0.0.1:5555 went away")), 400, ReasonMalformed, "read body: connection error"},
		{"no cause", opErr(nil), 400, ReasonMalformed, "read body: connection error"},
		{"truncated", io.ErrUnexpectedEOF, 400, ReasonMalformed, "read body: unexpected EOF"},
	} {
		status, label, reason := ReadError(tt.err)
		if status != tt.status || label != tt.label || reason != tt.reason {
			t.Errorf("%s: ReadError = %d %q %q, want %d %q %q", tt.name, status, label, reason, tt.status, tt.label, tt.reason)
		}
		if strings.Contains(reason, "127.0.0.1") {
			t.Errorf("%s: reason %q names an address", tt.name, reason)
		}
	}
}

// TestReadBodyTimeout sends the headers and half the body, then waits: the
// server's read timeout ends the body, answered 408 without the addresses
// of the connection.
func TestReadBodyTimeout(t *testing.T) {
	in := &counter{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := ReadBody(w, r, 1<<20); err != nil {
			status, label, reason := ReadError(err)
			Refuse(w, in, status, label, reason)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second)) // a bound on a broken test, not a measure
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	// The answer comes once the read timeout has passed.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || string(body) != "request body not received in time\n" {
		t.Errorf("answer %d %q, want 408 %q", resp.StatusCode, body, "request body not received in time\n")
	}
	if bytes.Contains(body, []byte("127.0.0.1")) {
		t.Errorf("answer %q names an address", body)
	}
	if got := in.String(); got != "map[timeout:1]" {
		t.Errorf("rejected %s, want map[timeout:1]", got)
	}
}
