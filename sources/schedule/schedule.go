// Package schedulesource is the schedule source: it emits a configured
// CloudEvent on a cron expression or every fixed period. With several
// replicas sharing a journal, each tick is emitted by one of them only: the
// replica that claims the tick in the journal (sources.Claims) emits it.
package schedulesource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones also where the system has none (containers)

	"github.com/cloudevents/sdk-go/v2/event"
	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/sources"
)

// Type is the source type name in the config.
const Type = "schedule"

func init() {
	sources.Register(Type, func() sources.Config { return NewConfig() })
}

// Config is the schedule source's config.
type Config struct {
	// Cron is a five-field cron expression (minute hour day-of-month month
	// day-of-week), or a descriptor such as @daily. Either Cron or Every.
	Cron string `yaml:"cron"`
	// Timezone is the IANA name of Cron's time zone, e.g. Europe/Paris.
	// Default UTC.
	Timezone string `yaml:"timezone"`
	// Every is a fixed period, whole seconds, at least 1s; the ticks are
	// its multiples since the Unix epoch.
	Every time.Duration `yaml:"every"`
	// CatchUp emits, on start, the last tick missed while every replica
	// was down (one event, however many were missed). Default false.
	CatchUp bool `yaml:"catchUp"`
	// Event is the event emitted at each tick.
	Event Event `yaml:"event"`
}

// Event is what a schedule source emits. Its id is <source name>-<tick in
// Unix seconds>, its time the tick.
type Event struct {
	Type    string `yaml:"type"`
	Source  string `yaml:"source"`
	Subject string `yaml:"subject"`
	// Data is any YAML value: a string is sent as text/plain, anything
	// else as JSON.
	Data yaml.Node `yaml:"data"`
}

// NewConfig returns a Config with its defaults set.
func NewConfig() *Config { return &Config{} }

var (
	_ sources.Config       = (*Config)(nil)
	_ sources.ClaimsConfig = (*Config)(nil)
)

// UsesClaims implements sources.ClaimsConfig: ticks are claimed.
func (c *Config) UsesClaims() bool { return true }

// Validate checks the config without I/O; every problem is a
// config.FieldError naming its key.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Cron != "" && c.Every != 0:
		errs = append(errs, config.FieldErrorf("every", "give cron or every, not both"))
	case c.Cron == "" && c.Every == 0:
		errs = append(errs, config.FieldErrorf("cron", `required: a cron expression such as "0 2 * * *", or every: 30s`))
	case c.Cron != "":
		if strings.HasPrefix(c.Cron, "TZ=") || strings.HasPrefix(c.Cron, "CRON_TZ=") {
			errs = append(errs, config.FieldErrorf("cron", "give the time zone with the timezone key, not in the expression"))
		} else if strings.HasPrefix(c.Cron, "@every") {
			errs = append(errs, config.FieldErrorf("cron", "for a fixed period use every: instead of cron: %q", c.Cron))
		} else if _, err := cronParser.Parse(c.Cron); err != nil {
			errs = append(errs, config.FieldErrorf("cron", "%q is not a cron expression of five fields (minute hour day-of-month month day-of-week, such as \"0 2 * * *\"): %v", c.Cron, err))
		}
	case c.Every < time.Second || c.Every%time.Second != 0:
		errs = append(errs, config.FieldErrorf("every", "must be whole seconds, at least 1s"))
	}
	if c.Timezone != "" {
		if c.Cron == "" {
			errs = append(errs, config.FieldErrorf("timezone", "applies to cron only (every counts from the Unix epoch)"))
		} else if _, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "Local" {
			errs = append(errs, config.FieldErrorf("timezone", "%q is not an IANA time zone name such as Europe/Paris or UTC", c.Timezone))
		}
	}
	if strings.TrimSpace(c.Event.Type) == "" {
		errs = append(errs, config.FieldErrorf("event.type", "required: the CloudEvents type of the emitted event"))
	}
	if strings.TrimSpace(c.Event.Source) == "" {
		errs = append(errs, config.FieldErrorf("event.source", "required: the CloudEvents source of the emitted event, such as /junction/nightly"))
	}
	if _, _, err := c.data(); err != nil {
		errs = append(errs, config.FieldErrorf("event.data", "%v", err))
	}
	return errors.Join(errs...)
}

// data is the event's data and its content type (nil when none).
func (c *Config) data() ([]byte, string, error) {
	n := &c.Event.Data
	if n.Kind == 0 || n.Tag == "!!null" {
		return nil, "", nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		return []byte(n.Value), "text/plain", nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("cannot be written as JSON: %v", err)
	}
	return b, "application/json", nil
}

// Schedule is the config's schedule (the config must be valid).
func (c *Config) Schedule() (Schedule, error) {
	if c.Every > 0 {
		return Every(c.Every), nil
	}
	loc := time.UTC
	if c.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(c.Timezone); err != nil {
			return nil, err
		}
	}
	return ParseCron(c.Cron, loc)
}

// Build makes the source.
func (c *Config) Build(_ context.Context, deps sources.Deps) (any, error) {
	sched, err := c.Schedule()
	if err != nil {
		return nil, err
	}
	data, ct, err := c.data()
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{name: deps.Name, sched: sched, catchUp: c.CatchUp, ev: c.Event, data: data, contentType: ct,
		log: log, now: time.Now, retry: time.Second}, nil
}

// Source emits its event at every tick of its schedule.
type Source struct {
	name        string
	sched       Schedule
	catchUp     bool
	ev          Event
	data        []byte
	contentType string
	log         *slog.Logger
	now         func() time.Time
	// retry is how long a tick that could not be settled (the journal
	// refused, another replica holds it) waits before the next attempt.
	retry time.Duration
}

var _ sources.Source = (*Source)(nil)

// stateLast is the state key of the last tick emitted (Unix seconds).
const stateLast = "last"

// Run emits ticks until ctx ends. With an Ingester that offers
// sources.Claims (the router's), a tick is emitted by the replica that
// claims it; another finds it done, or waits while the holder works on it
// (and takes it over if the holder dies). Without, every tick is emitted.
func (s *Source) Run(ctx context.Context, in sources.Ingester) error {
	claims, _ := in.(sources.Claims)
	now := s.now()
	due := s.sched.Next(now)
	if s.catchUp && claims != nil {
		if t := s.missed(ctx, claims, now); !t.IsZero() {
			due = t
		}
	}
	for {
		if due.IsZero() {
			<-ctx.Done() // a schedule without further ticks
			return nil
		}
		wait := due.Sub(s.now())
		if wait > 0 {
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		if s.fire(ctx, in, claims, due) {
			due = s.sched.Next(due)
			continue
		}
		if !sleep(ctx, s.retry) {
			return nil
		}
	}
}

// missed is the tick to catch up on start: the last one in (the last tick
// emitted, now], zero when none, or when no tick was ever emitted.
func (s *Source) missed(ctx context.Context, claims sources.Claims, now time.Time) time.Time {
	for {
		v, err := claims.State(ctx, stateLast)
		if err == nil {
			if v == nil {
				return time.Time{}
			}
			sec, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				s.log.Warn("schedule: unreadable last tick; no catch-up", "value", string(v))
				return time.Time{}
			}
			t := LatestTick(s.sched, time.Unix(sec, 0), now)
			if !t.IsZero() {
				s.log.Info("schedule: catching up on a tick missed while down", "tick", t.UTC().Format(time.RFC3339), "last", time.Unix(sec, 0).UTC().Format(time.RFC3339))
			}
			return t
		}
		s.log.Warn("schedule: read the last tick failed; retrying", "err", err)
		if !sleep(ctx, s.retry) {
			return time.Time{}
		}
	}
}

// fire emits tick unless another replica did or does: it reports whether
// the tick is settled (emitted here or elsewhere).
func (s *Source) fire(ctx context.Context, in sources.Ingester, claims sources.Claims, tick time.Time) bool {
	e := s.event(tick)
	log := s.log.With("tick", tick.UTC().Format(time.RFC3339), "ce_id", e.ID())
	if claims == nil {
		if err := in.Ingest(ctx, []*event.Event{e}); err != nil {
			log.Warn("schedule: emit failed; retrying", "err", err)
			return false
		}
		return true
	}
	key := "tick." + strconv.FormatInt(tick.Unix(), 10)
	c, state, err := claims.Claim(ctx, key, s.claimTTL(tick))
	if err != nil {
		log.Warn("schedule: claim the tick failed; retrying", "err", err)
		return false
	}
	switch state {
	case sources.ClaimDone:
		log.Debug("schedule: tick emitted by another replica")
		return true
	case sources.ClaimBusy:
		log.Debug("schedule: another replica is emitting the tick")
		return false
	}
	if err := in.Ingest(ctx, []*event.Event{e}); err != nil {
		log.Warn("schedule: emit failed; retrying", "err", err)
		if err := c.Release(context.WithoutCancel(ctx)); err != nil {
			log.Debug("schedule: release the tick failed (taken over later)", "err", err)
		}
		return false
	}
	if err := c.Confirm(context.WithoutCancel(ctx)); err != nil {
		log.Warn("schedule: confirm the tick failed (another replica may emit it again)", "err", err)
	}
	if err := claims.SetState(context.WithoutCancel(ctx), stateLast, []byte(strconv.FormatInt(tick.Unix(), 10))); err != nil {
		log.Warn("schedule: store the last tick failed", "err", err)
	}
	log.Debug("schedule: tick emitted")
	return true
}

// claimTTL keeps a tick's claim for an hour plus two periods: longer than
// any replica still settles that tick.
func (s *Source) claimTTL(tick time.Time) time.Duration {
	return time.Hour + 2*Period(s.sched, tick)
}

// event is the event of tick.
func (s *Source) event(tick time.Time) *event.Event {
	e := event.New()
	e.SetID(s.name + "-" + strconv.FormatInt(tick.Unix(), 10))
	e.SetSource(s.ev.Source)
	e.SetType(s.ev.Type)
	e.SetTime(tick)
	if s.ev.Subject != "" {
		e.SetSubject(s.ev.Subject)
	}
	if s.data != nil {
		e.SetDataContentType(s.contentType)
		e.DataEncoded = s.data
	}
	return &e
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
