// Package config loads Junction's YAML configuration: ${ENV} expansion,
// strict decoding with positions, defaults and validation. Every problem is
// reported as FILE:LINE:COL: message, all of them at once.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults used where the config says nothing.
const (
	DefaultHTTPListen   = "127.0.0.1:8080"
	DefaultAdminListen  = "127.0.0.1:9090"
	DefaultJournalDir   = "./data"
	DefaultStream       = "JUNCTION"
	DefaultMaxBodySize  = ByteSize(1 << 20)
	DefaultConcurrency  = 64
	DefaultMaxHops      = 8
	DefaultFsync        = "interval"
	DefaultSyncInterval = time.Second
	// DefaultMaxConnections caps the ingress's concurrent connections.
	DefaultMaxConnections = 10000
	// DefaultWriteTimeout bounds one journal write: past it, ingress
	// answers 503 and the producer retries.
	DefaultWriteTimeout = 5 * time.Second
	// DefaultAckWait is how long a delivery handed to a replica may go
	// without word from it before another replica takes it over: a live
	// replica reports progress every third of it, however long the attempt.
	DefaultAckWait = 8 * time.Second
	// DefaultMinFreeSpace is the free space the embedded journal keeps on
	// its filesystem: below it, ingress answers 503.
	DefaultMinFreeSpace = ByteSize(32 << 20)
	// DefaultDeadLetterRetention is how long the dead-letter store keeps an
	// entry.
	DefaultDeadLetterRetention = 14 * 24 * time.Hour
	// DefaultDeadLetterMaxBytes bounds the dead-letter store; past it the
	// oldest entries go first (it never blocks ingest).
	DefaultDeadLetterMaxBytes = ByteSize(1 << 30)
	// DefaultArchiveMaxAge is how long the archive keeps an event when
	// journal.archive is on.
	DefaultArchiveMaxAge = 7 * 24 * time.Hour
	// DefaultArchiveMaxBytes bounds the archive; past it the oldest events
	// go first (it never blocks ingest).
	DefaultArchiveMaxBytes = ByteSize(1 << 30)
	// DefaultReplayRate is how many archived events per second replays
	// route again, per replica.
	DefaultReplayRate = 2000
	// DefaultTraceRetention is how long the event log keeps the trace of an
	// event (GET /api/v1/events/{id}).
	DefaultTraceRetention = 24 * time.Hour
	// DefaultTraceMaxBytes bounds the event log; past it the oldest records
	// go first (it never blocks ingest).
	DefaultTraceMaxBytes = ByteSize(1 << 30)
	// MinTraceRetention is the shortest journal.traceRetention.
	MinTraceRetention = time.Minute
)

// Config is a whole Junction configuration.
type Config struct {
	// File is the path the config was read from ("" for the built-in default).
	File string `yaml:"-"`
	// Warnings are problems that do not stop the config from running
	// (Error.Warning is set on each).
	Warnings Errors `yaml:"-"`

	HTTP    HTTP    `yaml:"http"`
	Admin   Admin   `yaml:"admin"`
	Journal Journal `yaml:"journal"`
	Log     Log     `yaml:"log"`
	// Telemetry configures trace export (OpenTelemetry); off when absent.
	Telemetry Telemetry `yaml:"telemetry"`
	Sources   []Plugin  `yaml:"-"`
	Sinks     []Plugin  `yaml:"-"`
	Routes    []Route   `yaml:"-"`

	// adminListenPos is where admin.listen is, for CheckExposure.
	adminListenPos Pos
	// dir is the directory of the config file: relative paths of the
	// files it names (tls) are from there.
	dir string
}

// HTTP configures the shared ingress listener of the http and webhook sources.
type HTTP struct {
	Listen string `yaml:"listen"`
	// MaxBodySize is the largest request body accepted (413 beyond). Default 1MiB.
	MaxBodySize ByteSize `yaml:"maxBodySize"`
	// ReadTimeout bounds reading one request. Default 30s.
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// MaxConnections caps concurrent ingress connections; one over the cap
	// is closed at once. Default 10,000.
	MaxConnections int `yaml:"maxConnections"`
	// MaxConnectionsPerClient caps the connections of one client IP
	// address, so that one client cannot take every slot; one over the cap
	// is closed at once. Default 0: no cap (clients behind one NAT share
	// an address).
	MaxConnectionsPerClient int `yaml:"maxConnectionsPerClient"`
	// MaxHeaderBytes bounds a request's header (431 beyond). Default 64KiB.
	MaxHeaderBytes ByteSize `yaml:"maxHeaderBytes"`
	// TLS, when set, makes the ingress HTTPS (see security.go).
	TLS *TLS `yaml:"tls"`
}

// Admin configures the admin listener (health, readiness, metrics).
type Admin struct {
	Listen string `yaml:"listen"`
	// TLS, when set, makes the admin API HTTPS.
	TLS *TLS `yaml:"tls"`
	// Auth, when set, asks for a bearer token on /api/*, / and /metrics.
	Auth *AdminAuth `yaml:"auth"`
	// Insecure lets the admin API listen beyond loopback without Auth.
	Insecure bool `yaml:"insecure"`
}

// Log configures Junction's own log.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error (default info)
	Format string `yaml:"format"` // text | json (default text)
}

// Journal configures the durable store: embedded NATS JetStream in Dir, or an
// external JetStream server at URL.
type Journal struct {
	Dir string `yaml:"dir"`
	URL string `yaml:"url"`
	// Fsync is "interval" (fsync every SyncInterval; a power loss may lose
	// the last interval, a process crash loses nothing) or "always" (fsync
	// before every acknowledgement).
	Fsync        string        `yaml:"fsync"`
	SyncInterval time.Duration `yaml:"syncInterval"`
	// Stream is the JetStream stream name. Default JUNCTION.
	Stream string `yaml:"stream"`
	// Replicas of the stream on an external cluster. Default 1.
	Replicas int `yaml:"replicas"`
	// MaxBytes bounds the journal's size on disk; 0 means unlimited. When it
	// is full, ingress answers 503.
	MaxBytes ByteSize `yaml:"maxBytes"`
	// WriteTimeout bounds one write to the journal; past it the write
	// fails (ingress answers 503). Default 5s.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// AckWait is how long a delivery handed out may go without a progress
	// report before the journal hands it to another consumer (a killed
	// replica's deliveries are taken over after it). Live consumers report
	// progress every AckWait/3, so an attempt may take longer. Default 8s.
	AckWait time.Duration `yaml:"ackWait"`
	// MinFreeSpace is the free space the embedded journal keeps on the
	// filesystem of Dir: below it, writes are refused (ingress answers 503,
	// /readyz too) until there is room again, so that JetStream never meets
	// a full disk. At most a quarter of the filesystem. Default 32MiB.
	MinFreeSpace ByteSize `yaml:"minFreeSpace"`
	// DeadLetterRetention is how long the dead-letter store keeps an
	// entry. Default 14d.
	DeadLetterRetention Duration `yaml:"deadLetterRetention"`
	// DeadLetterMaxBytes bounds the dead-letter store; the oldest entries
	// go first. Default 1GiB.
	DeadLetterMaxBytes ByteSize `yaml:"deadLetterMaxBytes"`
	// Archive keeps every accepted event for replays; nil (absent) is off.
	Archive *Archive `yaml:"archive"`
	// Trace keeps the event log: per accepted event, when and by which
	// source it was accepted, the routes it matched and every delivery
	// attempt (GET /api/v1/events/{id}). Default true; false saves its
	// writes.
	Trace *bool `yaml:"trace"`
	// TraceRetention is how long the event log keeps a trace. Default 24h.
	TraceRetention Duration `yaml:"traceRetention"`
	// TraceMaxBytes bounds the event log; the oldest records go first.
	// Default 1GiB.
	TraceMaxBytes ByteSize `yaml:"traceMaxBytes"`
	// Credentials file for an external server (NATS .creds); optional.
	Credentials string `yaml:"credentials"`
	// User, Password and Token for an external server; optional.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
}

// Archive configures the archive of accepted events (journal.archive), from
// which POST /api/v1/replays routes a period again.
type Archive struct {
	// MaxAge is how long an event is kept. Default 7d.
	MaxAge Duration `yaml:"maxAge"`
	// MaxBytes bounds the archive; the oldest events go first. Default
	// 1GiB.
	MaxBytes ByteSize `yaml:"maxBytes"`
	// ReplayRate is how many archived events per second replays route
	// again, all replays of a replica together. Default 2000.
	ReplayRate int `yaml:"replayRate"`
}

// Route is one routing rule.
type Route struct {
	Name      string     `yaml:"name"`
	Sources   []Ref      `yaml:"sources"`
	Filter    Expr       `yaml:"filter"`
	Filters   yaml.Node  `yaml:"filters"`
	Transform *Transform `yaml:"transform"`
	To        []Ref      `yaml:"to"`
	Delivery  Delivery   `yaml:"delivery"`
	// OrderBy is the ordering key (an expression; nil is unordered).
	OrderBy Expr `yaml:"orderBy"`
	// Delay holds deliveries back for this long after acceptance.
	Delay Duration `yaml:"delay"`
	// DeliverAt is when to deliver (an expression: an RFC 3339 time as a
	// string, or a time; nil or past is now).
	DeliverAt Expr `yaml:"deliverAt"`
	// Priority is an expression: an integer 0..9, higher first.
	Priority Expr `yaml:"priority"`

	Pos  Pos        `yaml:"-"`
	Node *yaml.Node `yaml:"-"`
}

// MaxDelay bounds a route's delay.
const MaxDelay = 365 * 24 * time.Hour

// Where names the route for error messages.
func (r *Route) Where() string { return fmt.Sprintf("route %q", r.Name) }

// Transform rewrites attributes and data of the events a route matches.
type Transform struct {
	Attributes ExprMap `yaml:"attributes"`
	Data       Expr    `yaml:"data"`
}

// Load reads and checks the config file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b, os.LookupEnv)
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultName is the file name errors in the built-in config refer to.
const DefaultName = "(built-in default)"

// DefaultYAML returns the built-in config's text.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the built-in config: CloudEvents over HTTP on
// 127.0.0.1:8080/events, admin on 127.0.0.1:9090, the embedded journal in
// ./data, and one route that prints every event on standard output.
// JUNCTION_HTTP_LISTEN, JUNCTION_ADMIN_LISTEN and JUNCTION_JOURNAL_DIR
// override its addresses and directory; JUNCTION_ADMIN_TOKEN, when set,
// is the bearer token of admin.auth (so that the admin API may listen
// beyond loopback, as in a container).
func Default(lookup LookupEnv) (*Config, error) {
	cfg, err := Parse(DefaultName, defaultYAML, lookup)
	if err != nil {
		return nil, err
	}
	if tok, ok := lookup("JUNCTION_ADMIN_TOKEN"); ok && tok != "" {
		if msg := badToken(tok); msg != "" {
			return nil, Errors{{File: DefaultName, Msg: "JUNCTION_ADMIN_TOKEN: " + msg}}
		}
		cfg.Admin.Auth = &AdminAuth{Bearer: []string{tok}}
	}
	return cfg, nil
}

// Parse reads a config from YAML bytes; file names it in errors.
func Parse(file string, data []byte, lookup LookupEnv) (*Config, error) {
	cfg, errs := parse(data, lookup, filepath.Dir(file))
	if len(errs) > 0 {
		errs.SetFile(file)
		return nil, errs.Err()
	}
	cfg.File = file
	return cfg, nil
}

var topKeys = []string{"http", "admin", "journal", "log", "telemetry", "sources", "sinks", "routes"}

// parse reads a config from YAML bytes; relative paths of files the config
// names (certificates) are from dir, the config file's directory.
func parse(data []byte, lookup LookupEnv, dir string) (*Config, Errors) {
	var errs Errors
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, errIsEOF(err)) {
			doc = yaml.Node{}
		} else {
			errs = append(errs, yamlSyntaxError(err))
			return nil, errs
		}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		errs.Addf(PosOf(&extra), "", "more than one YAML document; put everything in one")
	}
	cfg := &Config{dir: dir}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	if root != nil && !isNull(root) {
		if root.Kind != yaml.MappingNode {
			errs.Addf(PosOf(root), "", "expected a mapping with keys %s, got %s", strings.Join(topKeys, ", "), describe(root))
			return nil, errs
		}
		errs = append(errs, ExpandEnv(root, lookup)...)
		var sources, sinks, routes *yaml.Node
		top := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column}
		seen := map[string]bool{}
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := root.Content[i], root.Content[i+1]
			if seen[k.Value] {
				errs.Addf(PosOf(k), "", "key %q appears twice", k.Value)
				continue
			}
			seen[k.Value] = true
			switch k.Value {
			case "sources":
				sources = v
			case "sinks":
				sinks = v
			case "routes":
				routes = v
			default:
				top.Content = append(top.Content, k, v)
			}
		}
		if err := Decode(top, cfg); err != nil {
			errs.Add(top, "", err)
		}
		cfg.Sources = plugins(sources, "source", &errs)
		cfg.Sinks = plugins(sinks, "sink", &errs)
		cfg.Routes = decodeRoutes(routes, &errs)
	}
	cfg.setDefaults()
	cfg.validate(&errs, root)
	if len(cfg.Sources) == 0 && len(cfg.Sinks) == 0 && len(cfg.Routes) == 0 {
		cfg.Warnings.Warnf(PosOf(root), "", "no sources, sinks or routes: this config takes and delivers no events")
	}
	return cfg, errs
}

func errIsEOF(err error) error {
	if err != nil && err.Error() == "EOF" {
		return err
	}
	return errors.New("not eof")
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlSyntaxError(err error) *Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscanf(m[1], "%d", &line)
		return &Error{Pos: Pos{Line: line, Col: 1}, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// sinkCommon are the keys every sink has, read by the loader.
type sinkCommon struct {
	Delivery    Delivery `yaml:"delivery"`
	Concurrency int      `yaml:"concurrency"`
	MaxHops     int      `yaml:"maxHops"`
	MaxPending  int      `yaml:"maxPending"`
	Batch       *Batch   `yaml:"batch"`
	// RateLimit and CircuitBreaker: see protect.go.
	RateLimit      yaml.Node       `yaml:"rateLimit"`
	CircuitBreaker *CircuitBreaker `yaml:"circuitBreaker"`
}

func plugins(n *yaml.Node, kind string, errs *Errors) []Plugin {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		errs.Addf(PosOf(n), "", "%ss: expected a list, got %s", kind, describe(n))
		return nil
	}
	var out []Plugin
	for i, item := range n.Content {
		where := fmt.Sprintf("%ss[%d]", kind, i)
		if item.Kind != yaml.MappingNode {
			errs.Addf(PosOf(item), "", "%s: expected a mapping with name and type, got %s", where, describe(item))
			continue
		}
		p := Plugin{Pos: PosOf(item), Node: item}
		own := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column}
		common := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column}
		var nameNode, typeNode, dedupNode, authNode, rateNode *yaml.Node
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			switch {
			case k.Value == "name":
				nameNode = v
			case k.Value == "type":
				typeNode = v
			case kind == "sink" && (k.Value == "delivery" || k.Value == "concurrency" || k.Value == "maxHops" || k.Value == "maxPending" || k.Value == "batch" || k.Value == "rateLimit" || k.Value == "circuitBreaker"):
				common.Content = append(common.Content, k, v)
			case kind == "source" && k.Value == "dedup":
				dedupNode = v
			case kind == "source" && k.Value == "auth":
				authNode = v
			case kind == "source" && k.Value == "rateLimit":
				rateNode = v
			default:
				own.Content = append(own.Content, k, v)
			}
		}
		if nameNode == nil || nameNode.Kind != yaml.ScalarNode || nameNode.Value == "" {
			errs.Addf(PosOf(item), where, "missing name")
		} else {
			p.Name = nameNode.Value
			where = p.Where(kind)
			if !validName(p.Name) {
				errs.Addf(PosOf(nameNode), where, "invalid name (use letters, digits, '-' and '_', starting with a letter)")
			}
		}
		if typeNode == nil || typeNode.Kind != yaml.ScalarNode || typeNode.Value == "" {
			errs.Addf(PosOf(item), where, "missing type")
		} else {
			p.Type = typeNode.Value
			p.TypePos = PosOf(typeNode)
		}
		if len(common.Content) > 0 {
			var c sinkCommon
			errs.Add(common, where, Decode(common, &c))
			p.Delivery, p.Concurrency, p.MaxHops, p.MaxPending = c.Delivery, c.Concurrency, c.MaxHops, c.MaxPending
			if p.MaxPending < 0 || p.MaxPending > 1000000 {
				errs.Addf(PosOf(Locate(common, "maxPending")), where, "maxPending: must be between 1 and 1000000")
			}
			if p.Concurrency < 0 || p.Concurrency > 10000 {
				errs.Addf(PosOf(Locate(common, "concurrency")), where, "concurrency: must be between 1 and 10000")
			}
			if p.MaxHops < 0 || p.MaxHops > 100 {
				errs.Addf(PosOf(Locate(common, "maxHops")), where, "maxHops: must be between 1 and 100")
			}
			errs.Add(common, where, p.Delivery.validate("delivery"))
			if b := Locate(common, "batch"); b != common {
				p.Batch = batchOf(b, c.Batch, where, errs)
				if p.Batch != nil && p.MaxPending > 0 && p.MaxPending < p.Batch.MaxEvents {
					errs.Addf(PosOf(Locate(common, "maxPending")), where, "maxPending: must be at least batch.maxEvents (%d), or no batch fills", p.Batch.MaxEvents)
				}
			}
			p.RateLimit, p.CircuitBreaker = protectionOf(common, c.CircuitBreaker, where, errs)
		}
		if dedupNode != nil {
			p.Dedup = decodeDedup(dedupNode, where, errs)
		}
		if authNode != nil {
			p.Auth = decodeAuth(authNode, where, errs)
		}
		if rateNode != nil {
			p.RateLimit = rateLimitOf(rateNode, where, errs)
		}
		p.Own = own
		out = append(out, p)
	}
	return out
}

// batchOf checks a sink's decoded batch key (n is its YAML value) and
// returns it with its defaults set, or nil when it is null or not valid.
func batchOf(n *yaml.Node, b *Batch, where string, errs *Errors) *Batch {
	if b == nil {
		return nil // null, or not decoded (reported by Decode)
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	ok := true
	if Locate(n, "maxEvents") == n {
		b.MaxEvents = DefaultBatchMaxEvents
	} else if b.MaxEvents < 1 || b.MaxEvents > MaxBatchMaxEvents {
		errs.Addf(PosOf(Locate(n, "maxEvents")), where, "batch.maxEvents: must be between 1 and %d", MaxBatchMaxEvents)
		ok = false
	}
	if Locate(n, "maxWait") == n {
		b.MaxWait = Duration(DefaultBatchMaxWait)
	} else if b.MaxWait <= 0 || time.Duration(b.MaxWait) > MaxBatchMaxWait {
		errs.Addf(PosOf(Locate(n, "maxWait")), where, "batch.maxWait: must be more than 0 and at most %v", MaxBatchMaxWait)
		ok = false
	}
	if !ok {
		return nil
	}
	return b
}

var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

func validName(s string) bool { return nameRE.MatchString(s) }

func decodeRoutes(n *yaml.Node, errs *Errors) []Route {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		errs.Addf(PosOf(n), "", "routes: expected a list, got %s", describe(n))
		return nil
	}
	var out []Route
	for i, item := range n.Content {
		var r Route
		where := fmt.Sprintf("routes[%d]", i)
		if nm := Locate(item, "name"); nm != item && nm.Kind == yaml.ScalarNode && nm.Value != "" {
			where = fmt.Sprintf("route %q", nm.Value)
		}
		errs.Add(item, where, Decode(item, &r))
		r.Pos, r.Node = PosOf(item), item
		if item.Kind == yaml.MappingNode {
			if r.Name == "" {
				errs.Addf(PosOf(item), where, "missing name")
			} else if !validName(r.Name) {
				errs.Addf(PosOf(Locate(item, "name")), where, "invalid name (use letters, digits, '-' and '_', starting with a letter)")
			}
			if to := Locate(item, "to"); len(r.To) == 0 && (to == item || to.Kind == yaml.SequenceNode) {
				errs.Addf(PosOf(Locate(item, "to")), where, "to: name at least one sink")
			}
			errs.Add(item, where, r.Delivery.validate("delivery"))
			if d := time.Duration(r.Delay); d < 0 || d > MaxDelay {
				errs.Addf(PosOf(Locate(item, "delay")), where, "delay: must be between 0 and %v, got %v", Duration(MaxDelay), r.Delay)
			}
		}
		out = append(out, r)
	}
	return out
}

func (c *Config) setDefaults() {
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	if c.HTTP.MaxBodySize == 0 {
		c.HTTP.MaxBodySize = DefaultMaxBodySize
	}
	if c.HTTP.ReadTimeout == 0 {
		c.HTTP.ReadTimeout = 30 * time.Second
	}
	if c.HTTP.MaxConnections == 0 {
		c.HTTP.MaxConnections = DefaultMaxConnections
	}
	if c.HTTP.MaxHeaderBytes == 0 {
		c.HTTP.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Journal.WriteTimeout == 0 {
		c.Journal.WriteTimeout = DefaultWriteTimeout
	}
	if c.Journal.AckWait == 0 {
		c.Journal.AckWait = DefaultAckWait
	}
	if c.Journal.MinFreeSpace == 0 {
		c.Journal.MinFreeSpace = DefaultMinFreeSpace
	}
	if c.Journal.DeadLetterRetention == 0 {
		c.Journal.DeadLetterRetention = Duration(DefaultDeadLetterRetention)
	}
	if c.Journal.DeadLetterMaxBytes == 0 {
		c.Journal.DeadLetterMaxBytes = DefaultDeadLetterMaxBytes
	}
	if a := c.Journal.Archive; a != nil {
		if a.MaxAge == 0 {
			a.MaxAge = Duration(DefaultArchiveMaxAge)
		}
		if a.MaxBytes == 0 {
			a.MaxBytes = DefaultArchiveMaxBytes
		}
		if a.ReplayRate == 0 {
			a.ReplayRate = DefaultReplayRate
		}
	}
	if c.Journal.Trace == nil {
		on := true
		c.Journal.Trace = &on
	}
	if c.Journal.TraceRetention == 0 {
		c.Journal.TraceRetention = Duration(DefaultTraceRetention)
	}
	if c.Journal.TraceMaxBytes == 0 {
		c.Journal.TraceMaxBytes = DefaultTraceMaxBytes
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Journal.Dir == "" && c.Journal.URL == "" {
		c.Journal.Dir = DefaultJournalDir
	}
	if c.Journal.Fsync == "" {
		c.Journal.Fsync = DefaultFsync
	}
	if c.Journal.SyncInterval == 0 {
		c.Journal.SyncInterval = DefaultSyncInterval
	}
	if c.Journal.Stream == "" {
		c.Journal.Stream = DefaultStream
	}
	if c.Journal.Replicas == 0 {
		c.Journal.Replicas = 1
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	for i := range c.Sinks {
		if c.Sinks[i].Concurrency == 0 {
			c.Sinks[i].Concurrency = DefaultConcurrency
		}
		if c.Sinks[i].MaxHops == 0 {
			c.Sinks[i].MaxHops = DefaultMaxHops
		}
	}
}

var streamRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c *Config) validate(errs *Errors, root *yaml.Node) {
	at := func(path string) Pos { return PosOf(Locate(root, path)) }
	switch c.Journal.Fsync {
	case "always", "interval":
	default:
		errs.Addf(at("journal.fsync"), "", "journal.fsync: must be always or interval, not %q", c.Journal.Fsync)
	}
	if c.Journal.AckWait < 0 || c.Journal.AckWait > 0 && c.Journal.AckWait < time.Second {
		errs.Addf(at("journal.ackWait"), "", "journal.ackWait: must be at least 1s")
	}
	if c.Journal.SyncInterval < 0 {
		errs.Addf(at("journal.syncInterval"), "", "journal.syncInterval: must be positive")
	}
	if !streamRE.MatchString(c.Journal.Stream) {
		errs.Addf(at("journal.stream"), "", "journal.stream: %q is not a valid stream name (letters, digits, '-' and '_')", c.Journal.Stream)
	}
	if c.Journal.Replicas < 1 || c.Journal.Replicas > 5 {
		errs.Addf(at("journal.replicas"), "", "journal.replicas: must be between 1 and 5")
	} else if c.Journal.Replicas > 1 && c.Journal.URL == "" {
		errs.Addf(at("journal.replicas"), "", "journal.replicas: %d replicas need an external JetStream cluster (journal.url); the embedded journal keeps one copy", c.Journal.Replicas)
	}
	if c.Journal.TraceRetention < Duration(MinTraceRetention) {
		errs.Addf(at("journal.traceRetention"), "", "journal.traceRetention: must be at least %v, got %v", Duration(MinTraceRetention), c.Journal.TraceRetention)
	}
	if c.Journal.URL != "" && c.Journal.Fsync == "always" {
		errs.Addf(at("journal.fsync"), "", "journal.fsync: always applies only to the embedded journal; with journal.url the external server's own sync setting applies (sync_interval in its jetstream block), so remove fsync")
	}
	if a := c.Journal.Archive; a != nil {
		if a.MaxAge < 0 {
			errs.Addf(at("journal.archive.maxAge"), "", "journal.archive.maxAge: must be positive (such as 7d)")
		}
		if a.MaxBytes < 0 {
			errs.Addf(at("journal.archive.maxBytes"), "", "journal.archive.maxBytes: must be positive (such as 10GiB)")
		}
		if a.ReplayRate < 0 {
			errs.Addf(at("journal.archive.replayRate"), "", "journal.archive.replayRate: must be positive (events per second, such as 2000)")
		}
	}
	if c.HTTP.MaxConnections < 0 {
		errs.Addf(at("http.maxConnections"), "", "http.maxConnections: must be positive")
	}
	if c.HTTP.MaxConnectionsPerClient < 0 {
		errs.Addf(at("http.maxConnectionsPerClient"), "", "http.maxConnectionsPerClient: must be positive (or 0: no cap)")
	}
	if c.HTTP.MaxHeaderBytes < 1024 || c.HTTP.MaxHeaderBytes > MaxMaxHeaderBytes {
		errs.Addf(at("http.maxHeaderBytes"), "", "http.maxHeaderBytes: must be between 1KiB and %v", MaxMaxHeaderBytes)
	}
	checkTLS(c.HTTP.TLS, "http.tls", c.dir, at, errs)
	checkTLS(c.Admin.TLS, "admin.tls", c.dir, at, errs)
	checkAdminAuth(c.Admin.Auth, at, errs)
	c.adminListenPos = at("admin.listen")
	if c.HTTP.MaxBodySize < 0 {
		errs.Addf(at("http.maxBodySize"), "", "http.maxBodySize: must be positive")
	} else if err := CheckMaxBodySize(c.HTTP.MaxBodySize); err != nil {
		errs.Addf(at("http.maxBodySize"), "", "http.maxBodySize: %v", err)
	}
	// A listen address is checked unless its value is already in error
	// (an unset ${VAR}).
	reported := func(p Pos) bool {
		for _, e := range *errs {
			if e.Pos == p && p.Line > 0 {
				return true
			}
		}
		return false
	}
	httpBad := checkListen(c.HTTP.Listen, DefaultHTTPListen)
	if httpBad != "" && !reported(at("http.listen")) {
		errs.Addf(at("http.listen"), "", "http.listen: %s", httpBad)
	}
	adminBad := ""
	if c.Admin.Listen != "off" {
		if adminBad = checkListen(c.Admin.Listen, DefaultAdminListen); adminBad != "" && !reported(at("admin.listen")) {
			errs.Addf(at("admin.listen"), "", "admin.listen: %s; or off for no admin API", adminBad)
		}
	}
	// The ingress listens when a source is served on it (each such source
	// has a path) or when there is no source at all.
	ingress := len(c.Sources) == 0
	for _, s := range c.Sources {
		ingress = ingress || Locate(s.Own, "path") != s.Own
	}
	if ingress && httpBad == "" && adminBad == "" && c.Admin.Listen != "off" && sameListen(c.HTTP.Listen, c.Admin.Listen) {
		if n := Locate(root, "admin.listen"); n != nil && n.Kind == yaml.ScalarNode {
			errs.Addf(PosOf(n), "", "admin.listen: %s uses the port of the HTTP ingress (http.listen: %s); give the admin API a port of its own, or off", c.Admin.Listen, c.HTTP.Listen)
		} else {
			errs.Addf(at("http.listen"), "", "http.listen: %s uses the port of the admin API (admin.listen: %s); give each a port of its own", c.HTTP.Listen, c.Admin.Listen)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Addf(at("log.level"), "", "log.level: must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs.Addf(at("log.format"), "", "log.format: must be text or json, not %q", c.Log.Format)
	}
	c.Telemetry.validate(errs, at)

	sources := map[string]bool{}
	for _, s := range c.Sources {
		if s.Name == "" {
			continue
		}
		if sources[s.Name] {
			errs.Addf(s.Pos, s.Where("source"), "a source with this name is already defined")
		}
		sources[s.Name] = true
	}
	sinks := map[string]bool{}
	for _, s := range c.Sinks {
		if s.Name == "" {
			continue
		}
		if sinks[s.Name] {
			errs.Addf(s.Pos, s.Where("sink"), "a sink with this name is already defined")
		} else if sources[s.Name] {
			errs.Addf(s.Pos, s.Where("sink"), "a source with this name is already defined (sources and sinks share names: a function sink's replies come from a source of its name)")
		}
		sinks[s.Name] = true
	}
	for _, s := range c.Sinks {
		if dl := s.Delivery.DeadLetter; dl.Name != "" {
			if !sinks[dl.Name] {
				errs.Addf(dl.Pos, s.Where("sink"), "delivery.deadLetter: unknown sink %q%s", dl.Name, suggestion(dl.Name, sinks))
			} else if dl.Name == s.Name {
				errs.Addf(dl.Pos, s.Where("sink"), "delivery.deadLetter: a sink cannot be its own dead-letter sink")
			}
		}
	}
	routes := map[string]bool{}
	for _, r := range c.Routes {
		where := r.Where()
		if r.Name != "" {
			if routes[r.Name] {
				errs.Addf(r.Pos, where, "a route with this name is already defined")
			}
			routes[r.Name] = true
		}
		for _, s := range r.Sources {
			if !sources[s.Name] && !sinks[s.Name] {
				errs.Addf(s.Pos, where, "sources: unknown source %q%s", s.Name, suggestion(s.Name, sources))
			}
		}
		dup := map[string]bool{}
		for _, s := range r.To {
			if !sinks[s.Name] {
				errs.Addf(s.Pos, where, "to: unknown sink %q%s", s.Name, suggestion(s.Name, sinks))
			}
			if dup[s.Name] {
				errs.Addf(s.Pos, where, "to: sink %q is listed twice", s.Name)
			}
			dup[s.Name] = true
		}
		if dl := r.Delivery.DeadLetter; dl.Name != "" {
			if !sinks[dl.Name] {
				errs.Addf(dl.Pos, where, "delivery.deadLetter: unknown sink %q%s", dl.Name, suggestion(dl.Name, sinks))
			} else if dup[dl.Name] {
				errs.Addf(dl.Pos, where, "delivery.deadLetter: sink %q is also a destination of this route", dl.Name)
			}
		}
	}
}

func suggestion(name string, known map[string]bool) string {
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	if s := Suggest(name, names); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}
