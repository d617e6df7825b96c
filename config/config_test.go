package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func noEnv(string) (string, bool) { return "", false }

// TestGolden loads every testdata/*.yaml and compares the errors with the
// .golden file beside it (go test ./config -update rewrites them).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(f, b, noEnv)
			got := ""
			if err != nil {
				got = err.Error() + "\n"
			} else {
				// A config that loads prints its warnings, then ok.
				// (router.Compile names the file of the warnings.)
				cfg.Warnings.SetFile(f)
				for _, w := range cfg.Warnings {
					got += w.Error() + "\n"
				}
				got += "ok\n"
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"HOST": "example.org", "EMPTY": "", "N": "5"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "http://${HOST}/x", want: "http://example.org/x"},
		{in: "${HOST}${HOST}", want: "example.orgexample.org"},
		{in: "${MISSING:-fallback}", want: "fallback"},
		{in: "${MISSING:-}", want: ""},
		{in: "${EMPTY:-fallback}", want: ""},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "cost: $5", want: "cost: $5"},
		{in: "${MISSING}", err: "environment variable MISSING is not set (use ${MISSING:-default} for a default)"},
		{in: "${HOST", err: `unterminated ${ in "${HOST"`},
		{in: "${1X}", err: `invalid environment variable name "1X" in ${1X}`},
		{in: "${}", err: `invalid environment variable name "" in ${}`},
	}
	for _, tt := range tests {
		got, err := expandString(tt.in, lookup)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("expand %q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expand %q = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEnvKeepsIntegersWorking(t *testing.T) {
	y := "sinks:\n  - name: s\n    type: log\n    delivery:\n      retry: ${N}\n      timeout: ${T:-3s}\nroutes:\n  - name: r\n    to: [s]\n"
	cfg, err := Parse("c.yaml", []byte(y), func(k string) (string, bool) {
		if k == "N" {
			return "7", true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Sinks[0].Delivery.Apply(DefaultPolicy)
	if p.Retry != 7 || p.Timeout != 3*time.Second {
		t.Fatalf("policy = %+v, want retry 7 and timeout 3s", p)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(""), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != DefaultHTTPListen || cfg.Admin.Listen != DefaultAdminListen || cfg.Journal.Dir != DefaultJournalDir ||
		cfg.Journal.Fsync != "interval" || cfg.HTTP.MaxBodySize != 1<<20 || cfg.Journal.Stream != "JUNCTION" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	def, err := Default(noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Sources) != 1 || len(def.Sinks) != 1 || len(def.Routes) != 1 || def.Sources[0].Type != "http" {
		t.Fatalf("built-in default = %+v", def)
	}
	def, err = Default(func(k string) (string, bool) {
		if k == "JUNCTION_HTTP_LISTEN" {
			return "0.0.0.0:8081", true
		}
		return "", false
	})
	if err != nil || def.HTTP.Listen != "0.0.0.0:8081" {
		t.Fatalf("JUNCTION_HTTP_LISTEN not honoured: %v %v", def.HTTP.Listen, err)
	}
}

func TestPluginOwnKeys(t *testing.T) {
	y := `
sinks:
  - name: s
    type: webhook
    url: http://x/
    concurrency: 8
    delivery: {retry: 2, deadLetter: d}
  - name: d
    type: log
routes:
  - name: r
    to: [s]
`
	cfg, err := Parse("c.yaml", []byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sinks[0]
	if s.Name != "s" || s.Type != "webhook" || s.Concurrency != 8 || *s.Delivery.Retry != 2 || s.Delivery.DeadLetter.Name != "d" {
		t.Fatalf("common keys: %+v", s)
	}
	var own struct {
		URL string `yaml:"url"`
	}
	if err := Decode(s.Own, &own); err != nil || own.URL != "http://x/" {
		t.Fatalf("own keys decode: %+v %v", own, err)
	}
	if cfg.Sinks[1].Concurrency != DefaultConcurrency {
		t.Fatalf("default concurrency = %d", cfg.Sinks[1].Concurrency)
	}
}

func TestDecodeStrict(t *testing.T) {
	type inner struct {
		Name string `yaml:"name"`
	}
	type target struct {
		Count   int               `yaml:"count"`
		Enabled bool              `yaml:"enabled"`
		Wait    time.Duration     `yaml:"wait"`
		Size    ByteSize          `yaml:"size"`
		Tags    []string          `yaml:"tags"`
		Headers map[string]string `yaml:"headers"`
		Inner   *inner            `yaml:"inner"`
		Ratio   float64           `yaml:"ratio"`
	}
	tests := []struct {
		yaml string
		err  string
	}{
		{yaml: "count: 3\nenabled: true\nwait: 2s\nsize: 2KiB\ntags: [a]\nheaders: {a: b}\ninner: {name: x}\nratio: 0.5"},
		{yaml: "cuont: 3", err: `1:1: unknown key "cuont" (did you mean "count"?)`},
		{yaml: "zzzzzz: 3", err: `1:1: unknown key "zzzzzz" (known keys: count, enabled, headers, inner, ratio, size, tags, wait)`},
		{yaml: "count: many", err: `1:8: count: invalid integer "many"`},
		{yaml: "enabled: maybe", err: `1:10: enabled: invalid boolean "maybe" (use true or false)`},
		{yaml: "wait: 5", err: `1:7: wait: invalid duration "5" (use a number with a unit: 200ms, 10s, 1m)`},
		{yaml: "size: lots", err: `1:7: size: invalid size "lots" (use bytes or a unit: 512KiB, 1MiB, 10MB)`},
		{yaml: "tags: a", err: `1:7: tags: expected a list, got "a"`},
		{yaml: "inner: {nme: x}", err: `1:9: inner: unknown key "nme" (did you mean "name"?)`},
		{yaml: "inner: [1]", err: `1:8: inner: expected a mapping, got a list`},
		{yaml: "count: 1\ncount: 2", err: `2:1: key "count" appears twice`},
		{yaml: "tags: [[1]]", err: `1:8: tags[0]: expected a string, got a list`},
		{yaml: "ratio: fast", err: `1:8: ratio: invalid number "fast"`},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tt.yaml), &n); err != nil {
			t.Fatal(err)
		}
		var v target
		err := Decode(&n, &v)
		got := ""
		if err != nil {
			got = err.Error()
		}
		want := ""
		if tt.err != "" {
			want = "config:" + tt.err
		}
		if got != want {
			t.Errorf("decode %q:\n got  %q\n want %q", tt.yaml, got, want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "1MiB": 1 << 20, "512KiB": 512 << 10, "10MB": 10e6, "2 GiB": 2 << 30, "3b": 3} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1XB", "-1", "99999999999999999999"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded, want an error", in)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := Policy{BackoffPolicy: BackoffExponential, BackoffDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	within := func(got, want time.Duration) bool { return got <= want && got >= want*8/10 }
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 50: time.Second} {
		if got := p.Backoff(n); !within(got, want) {
			t.Errorf("exponential retry %d: %v, want %v minus up to 20%% jitter", n, got, want)
		}
	}
	p.BackoffPolicy = BackoffLinear
	if got := p.Backoff(3); !within(got, 300*time.Millisecond) {
		t.Errorf("linear retry 3: %v", got)
	}
	p.BackoffPolicy = BackoffConstant
	if got := p.Backoff(9); !within(got, 100*time.Millisecond) {
		t.Errorf("constant retry 9: %v", got)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add(DefaultYAML())
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse("fuzz.yaml", b, noEnv)
		if err == nil && cfg == nil {
			t.Fatal("nil config without an error")
		}
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
					t.Fatalf("error line without position: %q", line)
				}
			}
		}
	})
}

// TestStartChecks covers the checks that spare a start-up failure: listen
// addresses, the journal's options, the body limit and an empty config.
func TestStartChecks(t *testing.T) {
	const sink = "sinks: [{name: out, type: log}]\nroutes: [{name: r, to: [out]}]\n"
	tests := []struct {
		name, yaml, err, warning string
	}{
		{name: "defaults", yaml: sink},
		{name: "free ports", yaml: "http: {listen: '127.0.0.1:0'}\nadmin: {listen: '127.0.0.1:0'}\n" + sink},
		{name: "admin off", yaml: "http: {listen: ':9090'}\nadmin: {listen: 'off'}\n" + sink},
		{name: "every interface", yaml: "http: {listen: ':8081'}\nadmin: {listen: '[::1]:9091'}\n" + sink},
		{name: "host name", yaml: "http: {listen: 'localhost:8081'}\n" + sink},
		{name: "IPv6", yaml: "http: {listen: '[::]:8081'}\nadmin: {listen: '[fe80::1%eth0]:9091'}\n" + sink},
		{name: "no port", yaml: "http: {listen: abc}\n" + sink,
			err: `c.yaml:1:16: http.listen: "abc" is not a host:port address such as 127.0.0.1:8080 (or :8080 for every interface)`},
		{name: "port only", yaml: "http: {listen: 8080}\n" + sink,
			err: `c.yaml:1:16: http.listen: "8080" is not a host:port address such as 127.0.0.1:8080 (or :8080 for every interface)`},
		{name: "port out of range", yaml: "http: {listen: '127.0.0.1:70000'}\n" + sink,
			err: `c.yaml:1:16: http.listen: "127.0.0.1:70000": the port must be a number from 0 to 65535, not "70000"`},
		{name: "named port", yaml: "admin: {listen: '127.0.0.1:http'}\n" + sink,
			err: `c.yaml:1:17: admin.listen: "127.0.0.1:http": the port must be a number from 0 to 65535, not "http"; or off for no admin API`},
		{name: "bad host", yaml: "admin: {listen: 'my host:9091'}\n" + sink,
			err: `c.yaml:1:17: admin.listen: "my host:9091": "my host" is neither an IP address nor a host name; or off for no admin API`},
		{name: "same address", yaml: "http: {listen: '127.0.0.1:9000'}\nadmin: {listen: '127.0.0.1:9000'}\n" + sink,
			err: `c.yaml:2:17: admin.listen: 127.0.0.1:9000 uses the port of the HTTP ingress (http.listen: 127.0.0.1:9000); give the admin API a port of its own, or off`},
		{name: "wildcard takes the port", yaml: "http: {listen: '127.0.0.1:9000'}\nadmin: {listen: '0.0.0.0:9000'}\n" + sink,
			err: `c.yaml:2:17: admin.listen: 0.0.0.0:9000 uses the port of the HTTP ingress (http.listen: 127.0.0.1:9000); give the admin API a port of its own, or off`},
		{name: "default admin address", yaml: "http: {listen: '127.0.0.1:9090'}\n" + sink,
			err: `c.yaml:1:16: http.listen: 127.0.0.1:9090 uses the port of the admin API (admin.listen: 127.0.0.1:9090); give each a port of its own`},
		{name: "same address, ingress unused", yaml: "admin: {listen: '127.0.0.1:8080'}\nsources: [{name: q, type: nats, url: 'nats://127.0.0.1:4222', subject: x}]\n" + sink},
		{name: "same address, ingress used", yaml: "admin: {listen: '127.0.0.1:8080'}\nsources: [{name: e, type: http, path: /e}]\n" + sink,
			err: `c.yaml:1:17: admin.listen: 127.0.0.1:8080 uses the port of the HTTP ingress (http.listen: 127.0.0.1:8080); give the admin API a port of its own, or off`},
		{name: "replicas with dir", yaml: "journal: {dir: ./data, replicas: 3}\n" + sink,
			err: `c.yaml:1:34: journal.replicas: 3 replicas need an external JetStream cluster (journal.url); the embedded journal keeps one copy`},
		{name: "replicas without dir", yaml: "journal: {replicas: 2}\n" + sink,
			err: `c.yaml:1:21: journal.replicas: 2 replicas need an external JetStream cluster (journal.url); the embedded journal keeps one copy`},
		{name: "replicas with url", yaml: "journal: {url: 'nats://127.0.0.1:4222', replicas: 3}\n" + sink},
		{name: "fsync always embedded", yaml: "journal: {fsync: always}\n" + sink},
		{name: "fsync interval with url", yaml: "journal: {url: 'nats://127.0.0.1:4222', fsync: interval}\n" + sink},
		{name: "fsync always with url", yaml: "journal: {url: 'nats://127.0.0.1:4222', fsync: always}\n" + sink,
			err: `c.yaml:1:48: journal.fsync: always applies only to the embedded journal; with journal.url the external server's own sync setting applies (sync_interval in its jetstream block), so remove fsync`},
		{name: "body at the limit", yaml: "http: {maxBodySize: 4MiB}\n" + sink},
		{name: "body over the limit", yaml: "http: {maxBodySize: 4194305}\n" + sink,
			err: `c.yaml:1:21: http.maxBodySize: 4194305B is above the limit of 4MiB (an event must fit in one journal entry, with its attributes and what transforms add)`},
		{name: "empty file", yaml: "", warning: `c.yaml:1:1: warning: no sources, sinks or routes: this config takes and delivers no events`},
		{name: "only listeners", yaml: "http: {listen: '127.0.0.1:0'}\n", warning: `c.yaml:1:1: warning: no sources, sinks or routes: this config takes and delivers no events`},
		{name: "only a sink", yaml: "sinks: [{name: out, type: log}]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tt.yaml), noEnv)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Fatalf("errors:\n got  %q\n want %q", got, tt.err)
			}
			if err != nil {
				return
			}
			cfg.Warnings.SetFile("c.yaml")
			if got := cfg.Warnings.Error(); got != tt.warning {
				t.Errorf("warnings:\n got  %q\n want %q", got, tt.warning)
			}
		})
	}
}

func TestSameListen(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"127.0.0.1:9000", "127.0.0.1:9000", true},
		{"127.0.0.1:9000", "127.0.0.1:9001", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{":9000", "127.0.0.1:9000", true},
		{"127.0.0.1:9000", ":9000", true},
		{"0.0.0.0:9000", "10.0.0.1:9000", true},
		{"0.0.0.0:9000", "localhost:9000", true},
		{"0.0.0.0:9000", "[::1]:9000", false},
		{"[::]:9000", "127.0.0.1:9000", true},
		{"127.0.0.1:9000", "10.0.0.1:9000", false},
		{"localhost:9000", "localhost:09000", true},
	}
	for _, tt := range tests {
		if got := sameListen(tt.a, tt.b); got != tt.same {
			t.Errorf("sameListen(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

func TestSinkBatch(t *testing.T) {
	y := `
sinks:
  - name: plain
    type: webhook
    url: http://x/
  - name: defaults
    type: webhook
    url: http://x/
    batch: {}
  - name: set
    type: webhook
    url: http://x/
    concurrency: 500
    batch: {maxEvents: 10, maxWait: 1s}
  - name: off
    type: webhook
    url: http://x/
    batch: null
routes:
  - name: r
    to: [plain, defaults, set, off]
    delivery: {onExhausted: drop}
`
	cfg, err := Parse("c.yaml", []byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Sinks[0].Batch; b != nil {
		t.Errorf("no batch key: %+v", b)
	}
	if c := cfg.Sinks[0].EffectiveConcurrency(); c != DefaultConcurrency {
		t.Errorf("effective concurrency without batch: %d", c)
	}
	if b := cfg.Sinks[1].Batch; b == nil || b.MaxEvents != DefaultBatchMaxEvents || time.Duration(b.MaxWait) != DefaultBatchMaxWait {
		t.Errorf("batch: {} = %+v, want the defaults", b)
	}
	if c := cfg.Sinks[1].EffectiveConcurrency(); c != DefaultBatchMaxEvents {
		t.Errorf("effective concurrency with batch: %d, want maxEvents %d", c, DefaultBatchMaxEvents)
	}
	if b := cfg.Sinks[2].Batch; b == nil || b.MaxEvents != 10 || time.Duration(b.MaxWait) != time.Second {
		t.Errorf("batch = %+v", b)
	}
	if c := cfg.Sinks[2].EffectiveConcurrency(); c != 500 {
		t.Errorf("effective concurrency above maxEvents: %d, want 500", c)
	}
	if b := cfg.Sinks[3].Batch; b != nil {
		t.Errorf("batch: null = %+v, want none", b)
	}
}

func TestSinkBatchAlias(t *testing.T) {
	y := `
sinks:
  - {name: s, type: webhook, url: "http://x/", batch: &b {maxEvents: 7, maxWait: 1s}}
  - {name: t, type: webhook, url: "http://x/", batch: *b}
routes:
  - {name: r, to: [s, t], delivery: {onExhausted: drop}}
`
	cfg, err := Parse("c.yaml", []byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.Sinks {
		if b := s.Batch; b == nil || b.MaxEvents != 7 || time.Duration(b.MaxWait) != time.Second {
			t.Errorf("sink %s: batch = %+v, want maxEvents 7, maxWait 1s", s.Name, b)
		}
	}
}

// TestArchiveDefaults: journal.archive is off when absent; on, its limits
// default to 7d and 1GiB.
func TestArchiveDefaults(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(""), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Journal.Archive != nil {
		t.Errorf("archive without journal.archive: %+v, want off", cfg.Journal.Archive)
	}
	cfg, err = Parse("c.yaml", []byte("journal:\n  archive: {}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Journal.Archive; a == nil || a.MaxAge != Duration(DefaultArchiveMaxAge) || a.MaxBytes != DefaultArchiveMaxBytes || a.ReplayRate != DefaultReplayRate {
		t.Errorf("archive: {} = %+v, want maxAge 7d, maxBytes 1GiB, replayRate 2000", a)
	}
	cfg, err = Parse("c.yaml", []byte("journal:\n  archive: {maxAge: 2d, maxBytes: 10MiB}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Journal.Archive; a == nil || a.MaxAge != Duration(48*time.Hour) || a.MaxBytes != 10<<20 {
		t.Errorf("archive = %+v, want maxAge 2d, maxBytes 10MiB", a)
	}
}
