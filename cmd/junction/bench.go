package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/router"
)

type benchOpts struct {
	duration    time.Duration
	connections int
	routes      int
	size        int
	fsync       string
	json        bool
	drain       time.Duration
	dir         string
	cpuProfile  string
	memProfile  string
	baseline    bool
	url         string
	sinkAddr    string
	keys        int
	delayed     int
	dedup       time.Duration
	// noTrace turns the event log off (journal.trace: false).
	noTrace bool
	// tls serves the ingress over HTTPS with tlsPair (made by runBench).
	tls     bool
	tlsPair *benchCert
}

type benchResult struct {
	Sent         int64              `json:"sent"`
	Accepted     int64              `json:"accepted"`
	Refused      int64              `json:"refused"`
	Errors       int64              `json:"errors"`
	Delivered    int64              `json:"delivered"`
	Lost         int64              `json:"lost"`
	Duplicates   int64              `json:"duplicates"`
	IngestEPS    float64            `json:"ingest_eps"`
	DeliveredEPS float64            `json:"delivered_eps"`
	E2EMs        map[string]float64 `json:"e2e_ms"`
	RSSMB        float64            `json:"rss_mb"`
	Connections  int                `json:"connections"`
	Routes       int                `json:"routes"`
	Size         int                `json:"size"`
	Fsync        string             `json:"fsync"`
	Target       string             `json:"target"`
	DurationS    float64            `json:"duration_s"`
	Cores        int                `json:"cores"`
	// Keys: events ordered by a key among this many (0: unordered);
	// Delayed: deliveries waiting (delay: 1h) during the run.
	Keys    int `json:"keys,omitempty"`
	Delayed int `json:"delayed,omitempty"`
	// Dedup is the bench source's dedup window in seconds (0: none).
	Dedup float64 `json:"dedup_s,omitempty"`
	// TLS: the ingress served HTTPS.
	TLS bool `json:"tls,omitempty"`
	// JournalEntries and JournalMessages: concurrent appends share journal
	// messages (Junction target only).
	JournalEntries  uint64 `json:"journal_entries,omitempty"`
	JournalMessages uint64 `json:"journal_messages,omitempty"`
}

func bench(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench")
	var o benchOpts
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send events, e.g. 30s or 2m")
	fs.IntVar(&o.connections, "connections", 16, "`N` keep-alive HTTP connections sending at once")
	fs.IntVar(&o.routes, "routes", 10, "`N` routes in the config; all but one do not match")
	fs.IntVar(&o.size, "size", 1024, "payload `BYTES` per event")
	fs.StringVar(&o.fsync, "fsync", "interval", "journal fsync `MODE`: interval or always")
	fs.BoolVar(&o.json, "json", false, "print the summary as one JSON object (progress goes to stderr)")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "how long to wait for deliveries after sending stops")
	fs.StringVar(&o.dir, "dir", "", "journal `DIR` (default: a temporary directory, removed afterwards)")
	fs.BoolVar(&o.baseline, "baseline", false, "drive a trivial in-process forwarder (no journal, no routing) instead of Junction, for comparison")
	fs.StringVar(&o.url, "url", "", "drive an already running Junction at this ingress `URL` (e.g. http://127.0.0.1:8080/events); route type bench.event to the bench's sink (--sink)")
	fs.StringVar(&o.sinkAddr, "sink", "127.0.0.1:0", "the bench's webhook sink listens on `ADDR` (with --url, give a fixed one, e.g. 127.0.0.1:9999)")
	fs.IntVar(&o.keys, "keys", 0, "order the events by a key among `N` keys (orderBy; 0: unordered)")
	fs.IntVar(&o.delayed, "delayed", 0, "first store `N` deliveries delayed by an hour, waiting in the journal during the run")
	fs.DurationVar(&o.dedup, "dedup", 0, "give the bench source a dedup window of `DURATION` (e.g. 10m; 0: none)")
	fs.BoolVar(&o.noTrace, "no-trace", false, "run without the event log (journal.trace: false), to see what it costs")
	fs.BoolVar(&o.tls, "tls", false, "serve the ingress over HTTPS (a certificate made for the run), to measure what TLS costs")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile at the end of the run to `FILE`")
	rest, code, ok := parseArgs(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(stderr, "bench", fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	switch {
	case o.duration <= 0:
		fmt.Fprintln(stderr, "junction bench: --duration must be positive")
		return 2
	case o.connections < 1 || o.connections > 4096:
		fmt.Fprintln(stderr, "junction bench: --connections must be between 1 and 4096")
		return 2
	case o.routes < 1 || o.routes > 100000:
		fmt.Fprintln(stderr, "junction bench: --routes must be between 1 and 100000")
		return 2
	case o.size < 0 || o.size > 512<<10:
		fmt.Fprintln(stderr, "junction bench: --size must be between 0 and 524288")
		return 2
	case o.fsync != "interval" && o.fsync != "always":
		fmt.Fprintln(stderr, "junction bench: --fsync must be interval or always")
		return 2
	case o.keys < 0 || o.keys > 1000000:
		fmt.Fprintln(stderr, "junction bench: --keys must be between 0 and 1000000")
		return 2
	case o.delayed < 0 || o.delayed > 10000000:
		fmt.Fprintln(stderr, "junction bench: --delayed must be between 0 and 10000000")
		return 2
	case o.dedup < 0 || o.dedup > 7*24*time.Hour:
		fmt.Fprintln(stderr, "junction bench: --dedup must be between 0 and 7d")
		return 2
	case (o.keys > 0 || o.delayed > 0 || o.dedup > 0 || o.tls) && (o.baseline || o.url != ""):
		fmt.Fprintln(stderr, "junction bench: --keys, --delayed, --dedup and --tls drive Junction itself, not --baseline or --url")
		return 2
	case o.baseline && o.url != "":
		fmt.Fprintln(stderr, "junction bench: --baseline and --url exclude each other")
		return 2
	case o.url != "" && !strings.HasPrefix(o.url, "http://") && !strings.HasPrefix(o.url, "https://"):
		fmt.Fprintln(stderr, "junction bench: --url must be an http:// or https:// URL")
		return 2
	}
	progress := stdout
	if o.json {
		progress = stderr
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "junction bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "junction bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	res, err := runBench(o, progress)
	if o.memProfile != "" {
		if f, ferr := os.Create(o.memProfile); ferr == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "junction bench:", err)
		return 1
	}
	if o.json {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	} else {
		printBench(stdout, res)
	}
	if res.Lost > 0 {
		return 1
	}
	return 0
}

// benchSink is the local webhook sink: it records each event id once and
// the latency from the time the sender stamped into the event.
type benchSink struct {
	run       string // ids are b-<run>-<n>; other ids are another run's
	mu        sync.Mutex
	seen      []uint8
	lat       []float64
	delivered atomic.Int64
	dups      atomic.Int64
}

func (s *benchSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	rest, mine := strings.CutPrefix(r.Header.Get("Ce-Id"), "b-"+s.run+"-")
	if !mine {
		// A late delivery from an earlier run: accept and ignore it.
		w.WriteHeader(http.StatusOK)
		return
	}
	id, err := strconv.Atoi(rest)
	sent, err2 := strconv.ParseInt(r.Header.Get("Ce-Benchsent"), 10, 64)
	if err != nil || err2 != nil || id < 0 {
		http.Error(w, "not a bench event", http.StatusBadRequest)
		return
	}
	lat := float64(time.Now().UnixNano()-sent) / 1e6
	s.mu.Lock()
	if id >= len(s.seen) {
		grown := make([]uint8, max(2*len(s.seen), id+1, 1<<16))
		copy(grown, s.seen)
		s.seen = grown
	}
	first := s.seen[id] == 0
	if s.seen[id] < 255 {
		s.seen[id]++
	}
	if first {
		s.lat = append(s.lat, lat)
	}
	s.mu.Unlock()
	if first {
		s.delivered.Add(1)
	} else {
		s.dups.Add(1)
	}
	w.WriteHeader(http.StatusOK)
}

func benchConfig(o benchOpts, sinkURL, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "http:\n  listen: 127.0.0.1:0\n%sadmin:\n  listen: \"off\"\nlog:\n  level: warn\njournal:\n  dir: %q\n  fsync: %s\n", benchTLSConfig(o, dir), dir, o.fsync)
	if o.noTrace {
		b.WriteString("  trace: false\n")
	}
	fmt.Fprintf(&b, "sources:\n  - name: bench\n    type: http\n    path: /events\n")
	if o.dedup > 0 {
		fmt.Fprintf(&b, "    dedup: %s\n", o.dedup)
	}

	fmt.Fprintf(&b, "sinks:\n  - name: sink\n    type: webhook\n    url: %s\n    concurrency: %d\n    delivery:\n      backoffDelay: 50ms\n      maxDelay: 1s\n", sinkURL, max(16, o.connections))
	b.WriteString("routes:\n")
	for i := 1; i < o.routes; i++ {
		fmt.Fprintf(&b, "  - name: other-%d\n    filter: type == \"bench.other.%d\"\n    to: [sink]\n", i, i)
	}
	b.WriteString("  - name: bench\n    filter: type == \"bench.event\"\n    to: [sink]\n")
	if o.keys > 0 {
		b.WriteString("    orderBy: benchkey\n")
	}
	if o.delayed > 0 {
		b.WriteString("  - name: delayed\n    filter: type == \"bench.delayed\"\n    to: [sink]\n    delay: 1h\n")
	}
	return b.String()
}

// startRouter runs Junction in this process with the bench config and
// returns its ingress URL, a stop function, and the journal's counts.
func startRouter(o benchOpts, sinkURL string) (string, func(), func() (uint64, uint64), error) {
	dir := o.dir
	cleanup := func() {}
	if dir == "" {
		d, err := os.MkdirTemp("", "junction-bench-*")
		if err != nil {
			return "", nil, nil, err
		}
		dir, cleanup = d, func() { os.RemoveAll(d) }
	}
	if err := o.tlsPair.write(dir); err != nil {
		cleanup()
		return "", nil, nil, err
	}
	cfg, err := config.Parse("(bench)", []byte(benchConfig(o, sinkURL, dir)), os.LookupEnv)
	if err != nil {
		cleanup()
		return "", nil, nil, err
	}
	plan, err := router.Compile(cfg)
	if err != nil {
		cleanup()
		return "", nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	r, err := router.New(ctx, plan, router.Options{Logger: log})
	if err == nil {
		err = r.Listen()
	}
	if err != nil {
		cancel()
		cleanup()
		return "", nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	return scheme + "://" + r.IngressAddr() + "/events", func() { cancel(); <-done; cleanup() }, r.JournalStats, nil
}

// startForwarder runs the baseline: a trivial non-durable forwarder that
// receives a POST, forwards it to the sink with a shared client, and answers.
func startForwarder(o benchOpts, sinkURL string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * o.connections, MaxIdleConnsPerHost: 4 * o.connections}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, sinkURL, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.WriteHeader(http.StatusAccepted)
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/events", func() { srv.Close() }, nil
}

func runBench(o benchOpts, progress io.Writer) (*benchResult, error) {
	sink := &benchSink{run: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	sinkLn, err := net.Listen("tcp", o.sinkAddr)
	if err != nil {
		return nil, fmt.Errorf("bench sink: %w", err)
	}
	sinkSrv := &http.Server{Handler: sink}
	go sinkSrv.Serve(sinkLn)
	defer sinkSrv.Close()
	sinkURL := "http://" + sinkLn.Addr().String() + "/"

	target, url := "junction", o.url
	stop := func() {}
	var journalStats func() (messages, entries uint64)
	switch {
	case o.url != "":
		target = "url"
		fmt.Fprintf(progress, "junction bench: driving %s; route events of type bench.event to %s\n", o.url, sinkURL)
	case o.baseline:
		target = "baseline"
		url, stop, err = startForwarder(o, sinkURL)
	default:
		if o.tls {
			if o.tlsPair, err = newBenchCert(); err != nil {
				return nil, err
			}
		}
		url, stop, journalStats, err = startRouter(o, sinkURL)
	}
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	switch target {
	case "junction":
		fmt.Fprintf(progress, "junction bench: %d connections, %d routes (1 matching), %d-byte events, fsync %s, for %v on %d cores\n",
			o.connections, o.routes, o.size, o.fsync, o.duration, runtime.NumCPU())
		if o.tls {
			fmt.Fprintln(progress, "junction bench: the ingress serves HTTPS (TLS, a certificate made for this run)")
		}
		if o.keys > 0 {
			fmt.Fprintf(progress, "junction bench: events ordered by a key among %d (orderBy)\n", o.keys)
		}
	case "baseline":
		fmt.Fprintf(progress, "junction bench --baseline: a trivial forwarder (no journal), %d connections, %d-byte events, for %v on %d cores\n",
			o.connections, o.size, o.duration, runtime.NumCPU())
	}

	if o.delayed > 0 {
		if err := loadDelayed(o, url, sink.run, progress); err != nil {
			return nil, err
		}
	}
	payload := bytes.Repeat([]byte("x"), o.size)
	if o.size >= 2 {
		payload[0], payload[len(payload)-1] = '"', '"'
	}
	transport := &http.Transport{MaxIdleConns: o.connections, MaxIdleConnsPerHost: o.connections, MaxConnsPerHost: o.connections,
		TLSClientConfig: o.tlsPair.clientConfig()}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	var sent, accepted, refused, errs atomic.Int64
	var nextID atomic.Int64
	stopSend := make(chan struct{})
	var wg sync.WaitGroup
	var rssPeak float64
	start := time.Now()
	for range o.connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopSend:
					return
				default:
				}
				id := nextID.Add(1) - 1
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Ce-Specversion", "1.0")
				req.Header.Set("Ce-Id", "b-"+sink.run+"-"+strconv.FormatInt(id, 10))
				req.Header.Set("Ce-Source", "/bench")
				req.Header.Set("Ce-Type", "bench.event")
				if o.keys > 0 {
					req.Header.Set("Ce-Benchkey", "k"+strconv.FormatInt(id%int64(o.keys), 10))
				}
				req.Header.Set("Ce-Benchsent", strconv.FormatInt(time.Now().UnixNano(), 10))
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Second)
	deadline := time.After(o.duration)
	var lastAcc, lastDel int64
sending:
	for {
		select {
		case <-tick.C:
			acc, del := accepted.Load(), sink.delivered.Load()
			rss := rssMB()
			rssPeak = math.Max(rssPeak, rss)
			fmt.Fprintf(progress, "  %4.0fs  accepted %9d (%7d/s)  delivered %9d (%7d/s)  rss %5.0f MiB\n",
				time.Since(start).Seconds(), acc, acc-lastAcc, del, del-lastDel, rss)
			lastAcc, lastDel = acc, del
		case <-deadline:
			break sending
		}
	}
	close(stopSend)
	wg.Wait()
	sendTime := time.Since(start)
	drainEnd := time.Now().Add(o.drain)
	for sink.delivered.Load() < accepted.Load() && time.Now().Before(drainEnd) {
		time.Sleep(20 * time.Millisecond)
	}
	total := time.Since(start)
	tick.Stop()
	rssPeak = math.Max(rssPeak, rssMB())
	var jMsgs, jEntries uint64
	if journalStats != nil {
		jMsgs, jEntries = journalStats()
	}
	stop()
	stopped = true

	sink.mu.Lock()
	lat := append([]float64(nil), sink.lat...)
	sink.mu.Unlock()
	sort.Float64s(lat)
	res := &benchResult{
		Sent: sent.Load(), Accepted: accepted.Load(), Refused: refused.Load(), Errors: errs.Load(),
		Delivered: sink.delivered.Load(), Duplicates: sink.dups.Load(),
		IngestEPS:    float64(accepted.Load()) / sendTime.Seconds(),
		DeliveredEPS: float64(sink.delivered.Load()) / total.Seconds(),
		E2EMs:        map[string]float64{"p50": pct(lat, 0.50), "p99": pct(lat, 0.99), "p999": pct(lat, 0.999)},
		RSSMB:        math.Round(rssPeak*10) / 10,
		Connections:  o.connections, Routes: o.routes, Size: o.size, Fsync: o.fsync, Target: target,
		DurationS: math.Round(sendTime.Seconds()*100) / 100, Cores: runtime.NumCPU(),
		JournalEntries: jEntries, JournalMessages: jMsgs,
		Keys: o.keys, Delayed: o.delayed, Dedup: o.dedup.Seconds(), TLS: o.tls,
	}
	if lost := res.Accepted - res.Delivered; lost > 0 {
		res.Lost = lost
	}
	return res, nil
}

// loadDelayed stores o.delayed events that routes delay by an hour, so that
// the run measures undelayed traffic beside them.
func loadDelayed(o benchOpts, url, run string, progress io.Writer) error {
	fmt.Fprintf(progress, "junction bench: storing %d deliveries delayed by an hour\n", o.delayed)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 16, MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := next.Add(1) - 1
				if id >= int64(o.delayed) || failed.Load() != nil {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Ce-Specversion", "1.0")
				req.Header.Set("Ce-Id", "d-"+run+"-"+strconv.FormatInt(id, 10))
				req.Header.Set("Ce-Source", "/bench")
				req.Header.Set("Ce-Type", "bench.delayed")
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Store(fmt.Errorf("storing delayed events: %w", err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	fmt.Fprintf(progress, "junction bench: %d delayed deliveries stored in %v\n", o.delayed, time.Since(start).Round(time.Millisecond))
	return nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return math.Round(sorted[i]*1000) / 1000
}

// rssMB is this process's resident set in MiB (router, sink and load
// generator together), from /proc; 0 where there is no /proc.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

func printBench(w io.Writer, r *benchResult) {
	fmt.Fprintf(w, "\n%-22s %d\n", "sent", r.Sent)
	fmt.Fprintf(w, "%-22s %d (refused %d, errors %d)\n", "accepted (202)", r.Accepted, r.Refused, r.Errors)
	fmt.Fprintf(w, "%-22s %d\n", "delivered", r.Delivered)
	fmt.Fprintf(w, "%-22s %d\n", "lost", r.Lost)
	fmt.Fprintf(w, "%-22s %d\n", "duplicates", r.Duplicates)
	fmt.Fprintf(w, "%-22s %.0f events/s\n", "ingest", r.IngestEPS)
	fmt.Fprintf(w, "%-22s %.0f events/s\n", "delivered", r.DeliveredEPS)
	fmt.Fprintf(w, "%-22s p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms\n", "end-to-end latency", r.E2EMs["p50"], r.E2EMs["p99"], r.E2EMs["p999"])
	who := "router, sink and load generator"
	switch r.Target {
	case "url":
		who = "this process: sink and load generator"
	case "baseline":
		who = "forwarder, sink and load generator"
	}
	fmt.Fprintf(w, "%-22s %.0f MiB (%s)\n", "peak resident set", r.RSSMB, who)
	if r.JournalMessages > 0 {
		fmt.Fprintf(w, "%-22s %d entries in %d messages (%.1f per message)\n", "journal", r.JournalEntries, r.JournalMessages, float64(r.JournalEntries)/float64(r.JournalMessages))
	}
}
