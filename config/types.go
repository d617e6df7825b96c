package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Expr is an expression's source text and where it stands in the file.
type Expr struct {
	Src string
	Pos Pos
	// Null is true when the YAML value was null (for transforms: remove).
	Null bool
	// Node is the YAML scalar, for error positions inside the expression.
	Node *yaml.Node
}

// IsSet reports whether the expression was given.
func (e Expr) IsSet() bool { return e.Src != "" || e.Null }

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *Expr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected an expression (a string), got %s", describe(n))
	}
	*e = Expr{Src: n.Value, Pos: PosOf(n), Null: isNull(n), Node: n}
	if !e.Null && strings.TrimSpace(e.Src) == "" {
		return fmt.Errorf("empty expression")
	}
	return nil
}

// NamedExpr is one entry of an ordered mapping of names to expressions.
type NamedExpr struct {
	Name    string
	NamePos Pos
	Expr    Expr
}

// ExprMap is a mapping of names to expressions that keeps its order.
type ExprMap []NamedExpr

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *ExprMap) UnmarshalYAML(n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("expected a mapping of names to expressions, got %s", describe(n))
	}
	var errs Errors
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			errs.Addf(PosOf(k), "", "key %q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		var e Expr
		if err := e.UnmarshalYAML(v); err != nil {
			errs.Addf(PosOf(v), "", "%s: %v", k.Value, err)
			continue
		}
		*m = append(*m, NamedExpr{Name: k.Value, NamePos: PosOf(k), Expr: e})
	}
	return errs.Err()
}

// Ref names another part of the config (a sink or a source) and remembers
// where, so that an unknown name is reported at its place.
type Ref struct {
	Name string
	Pos  Pos
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Ref) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
		return fmt.Errorf("expected a name, got %s", describe(n))
	}
	*r = Ref{Name: n.Value, Pos: PosOf(n)}
	return nil
}

// Duration is a time.Duration that YAML also writes in days: "14d",
// "1d12h", besides Go's units ("90s", "24h", "1h30m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as 30s, 24h or 14d, got %s", describe(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses Go's durations with "d" (24h) as a further unit
// before the others: "7d", "1d12h", "90m". A duration over time.Duration's
// range (about 106,751 days) is an error, not a wrapped-around value.
func ParseDuration(s string) (time.Duration, error) {
	invalid := func() error {
		return fmt.Errorf("invalid duration %q (use a number and a unit: 30s, 24h, 14d)", s)
	}
	const day = 24 * time.Hour
	t := strings.TrimSpace(s)
	var days int64
	hasDays := false
	if i := strings.IndexByte(t, 'd'); i > 0 {
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n < 0 {
			return 0, invalid()
		}
		if n > int64(maxDuration/day) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		days, t, hasDays = n, t[i+1:], true
		if t != "" && (t[0] == '-' || t[0] == '+') {
			// "1d-2h": a sign belongs before the days.
			return 0, invalid()
		}
	}
	var rest time.Duration
	if t != "" || !hasDays {
		var err error
		if rest, err = time.ParseDuration(t); err != nil {
			return 0, invalid()
		}
	}
	if rest > maxDuration-time.Duration(days)*day {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return time.Duration(days)*day + rest, nil
}

// maxDuration is the longest time.Duration.
const maxDuration = time.Duration(1<<63 - 1)

// String formats d with days where it has whole ones: "14d", "1d12h0m0s".
func (d Duration) String() string {
	v := time.Duration(d)
	if v >= 24*time.Hour {
		days := v / (24 * time.Hour)
		if rest := v % (24 * time.Hour); rest != 0 {
			return fmt.Sprintf("%dd%s", days, rest)
		}
		return fmt.Sprintf("%dd", days)
	}
	return v.String()
}

// ByteSize is a size in bytes; in YAML a number of bytes or a number with a
// unit: 512KiB, 1MiB, 10MB.
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size such as 1MiB, got %s", describe(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses "1048576", "1MiB", "512KiB", "10MB", "1GiB".
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q (use bytes or a unit: 512KiB, 1MiB, 10MB)", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	units := map[string]int64{
		"": 1, "b": 1,
		"kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
		"k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
	}
	mult, ok := units[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("invalid size unit in %q (use B, KiB, MiB, GiB, KB, MB or GB)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// String formats b with a binary unit where it divides evenly.
func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return fmt.Sprintf("%dB", int64(b))
}

// Plugin is one entry of `sources:` or `sinks:`. The loader reads name and
// type (and for sinks the common keys of Common); the rest of the mapping is
// the plugin's own config, which its factory decodes from Node.
type Plugin struct {
	Name    string
	Type    string
	Pos     Pos
	TypePos Pos
	// Node is the plugin's whole mapping.
	Node *yaml.Node
	// Own is a copy of Node without the common keys: what the plugin decodes.
	Own *yaml.Node
	// Common keys, set for sinks only.
	Delivery    Delivery
	Concurrency int
	// MaxHops bounds chains of function replies (see sinks.ReplySink).
	MaxHops int
	// MaxPending bounds the sink's deliveries handed out and not yet
	// answered, summed over all replicas (the journal consumer's
	// MaxAckPending, which every replica shares). 0 is the default,
	// max(1000, 16 × concurrency): each replica holds up to 2 × concurrency,
	// so the default serves 8 replicas at full concurrency.
	MaxPending int
	// Batch, when set, makes the sink send events in batches (see
	// sinks.Batching); its defaults are set.
	Batch *Batch
	// RateLimit and CircuitBreaker protect the sink's destination (see
	// protect.go); nil when not set. On a source served on the HTTP
	// ingress, RateLimit bounds its requests (see security.go).
	RateLimit      *RateLimit
	CircuitBreaker *CircuitBreaker
	// Dedup is the dedup window of a source (see dedup.go); 0 is none.
	Dedup Duration
	// Auth is a source's auth key (see security.go); nil is none.
	Auth *Auth
}

// Batch is a sink's `batch` key: a batch is sent once it has MaxEvents
// events, or MaxWait after its first event.
type Batch struct {
	MaxEvents int      `yaml:"maxEvents"`
	MaxWait   Duration `yaml:"maxWait"`
}

// Defaults and bounds of a sink's batch key.
const (
	DefaultBatchMaxEvents = 100
	DefaultBatchMaxWait   = 200 * time.Millisecond
	MaxBatchMaxEvents     = 1000
	MaxBatchMaxWait       = 10 * time.Second
)

// EffectiveConcurrency is how many deliveries the sink is handed at once:
// its concurrency, raised to batch.maxEvents when batching, since a
// delivery waits for its batch to be sent and a batch fills only with as
// many deliveries at once.
func (p *Plugin) EffectiveConcurrency() int {
	if p.Batch != nil {
		return max(p.Concurrency, p.Batch.MaxEvents)
	}
	return p.Concurrency
}

// Where names the plugin for error messages, e.g. `sink "billing"`.
func (p *Plugin) Where(kind string) string {
	if p.Name == "" {
		return kind
	}
	return fmt.Sprintf("%s %q", kind, p.Name)
}
