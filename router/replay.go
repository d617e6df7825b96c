package router

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"golang.org/x/time/rate"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/filters"
	"github.com/junctionhq/junction/journal"
)

// Replays route the archived events of a period again (POST
// /api/v1/replays). A job reads the archive (journal.ReadArchive) from the
// first message stored at or after its start, keeps the events accepted in
// [from, to) that pass its filter, and routes each again through the
// current routes (only the job's routes, when it names some) by the same
// path as ingest (routeEvents), with the extension junctionreplay set to
// the job's id. Replayed events are neither archived again nor
// deduplicated.
//
// Replays never starve live traffic: the events of all the jobs of a
// process share a token bucket (journal.archive.replayRate), are appended in batches of at
// most replayBatch, and wait while the journal has appends queued behind
// the rounds it is storing (journal.Busy).
//
// Jobs are records in the journal's bucket of replay jobs, so every
// replica shows them and they outlive a restart. The replica that runs a
// job writes its progress at least every progressEvery; a job whose
// record has not changed for staleAfter lost its replica (killed), and the
// next replica that reads it marks it failed. A job stopped by a graceful
// shutdown is marked failed at once. Failed jobs are not resumed: the user
// replays the rest (a resumed job could not tell which events of its last
// batch were routed, and would route them twice).

// Replay job states.
const (
	ReplayRunning = "running"
	ReplayDone    = "done"
	ReplayFailed  = "failed"
)

// Replay limits and pace.
const (
	// replayBatch bounds the events of one append of a replay, and the
	// token bucket's burst (at most a tenth of a second's worth).
	replayBatch = 64
	// progressEvery is how often a running job writes its progress.
	progressEvery = time.Second
	// staleAfter is how long a running job's record may go unchanged
	// before it is taken for lost.
	staleAfter = 30 * time.Second
	// replayRetryFor bounds how long a job retries an append the journal
	// refuses, or a read of the archive that fails, before it fails.
	replayRetryFor = 2 * time.Minute
	// createRetryFor bounds how long POST /api/v1/replays tries to store
	// its job.
	createRetryFor = 5 * time.Second
	// maxReplayBody bounds the body of POST /api/v1/replays.
	maxReplayBody = 64 << 10
)

// ReplayJob is a replay job's record, as stored and as the admin API shows
// it (the CLI decodes the API's answers into it).
type ReplayJob struct {
	ID     string    `json:"id"`
	State  string    `json:"state"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Routes []string  `json:"routes"`
	Filter string    `json:"filter"`
	// Scanned counts the archived events of the period read so far;
	// Matched those that passed the filter; Routed those of them that a
	// route took again, Unrouted those that none did.
	Scanned  int64 `json:"scanned"`
	Matched  int64 `json:"matched"`
	Routed   int64 `json:"routed"`
	Unrouted int64 `json:"unrouted"`
	// FilterErrors counts the events the filter failed on (such as
	// data.n % 2 with n a JSON number: int(data.n) % 2 works); they are
	// not matched.
	FilterErrors int64  `json:"filterErrors,omitempty"`
	Error        string `json:"error,omitempty"`
	// Replica is the process that runs the job (host and pid).
	Replica    string     `json:"replica"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`

	rev     uint64
	savedAt time.Time
}

// replaying is what routeEvents needs of a replay: its id and routes, and
// where it counts the outcome of one call.
type replaying struct {
	id     string
	routes map[string]bool // nil: every route
	// routed and unrouted are set by routeEvents.
	routed, unrouted int
}

func (rp *replaying) takes(route string) bool { return rp.routes == nil || rp.routes[route] }

// replays runs the replay jobs of one process.
type replays struct {
	r       *Router
	replica string
	limit   *rate.Limiter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newReplays(r *Router, a *config.Archive) *replays {
	ctx, cancel := context.WithCancel(context.Background())
	host, _ := os.Hostname()
	n := r.opts.ReplayRate
	if n <= 0 && a != nil {
		n = float64(a.ReplayRate)
	}
	if n <= 0 {
		n = config.DefaultReplayRate
	}
	return &replays{
		r:       r,
		replica: fmt.Sprintf("%s/%d", host, os.Getpid()),
		limit:   rate.NewLimiter(rate.Limit(n), max(1, min(replayBatch, int(n/10)))),
		ctx:     ctx,
		cancel:  cancel,
	}
}

// stop ends the running jobs (each is marked failed) and waits for them.
func (p *replays) stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}

// routes adds the replay API to the admin mux.
func (p *replays) routes(mux handlers) {
	mux.HandleFunc("POST /api/v1/replays", p.create)
	mux.HandleFunc("GET /api/v1/replays", p.list)
	mux.HandleFunc("GET /api/v1/replays/{id}", p.get)
}

// replayRequest is a checked body of POST /api/v1/replays.
type replayRequest struct {
	from, to time.Time
	routes   []string
	filter   string
	match    filters.Matcher
}

// parseReplayRequest reads and checks a body of POST /api/v1/replays:
// {"from": T1, "to": T2, "routes": [...], "filter": EXPR}. known says
// whether a route exists. Its error is one line, for a 400.
func parseReplayRequest(body []byte, known func(string) bool) (replayRequest, error) {
	var in struct {
		From   *string  `json:"from"`
		To     *string  `json:"to"`
		Routes []string `json:"routes"`
		Filter string   `json:"filter"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return replayRequest{}, fmt.Errorf("body: %s (want {\"from\": T1, \"to\": T2, \"routes\": [...], \"filter\": EXPR})", oneLine(err.Error(), 200))
	}
	if dec.More() {
		return replayRequest{}, errors.New("body: more than one JSON value")
	}
	var req replayRequest
	var err error
	if req.from, err = parseTime("from", in.From); err != nil {
		return replayRequest{}, err
	}
	if req.to, err = parseTime("to", in.To); err != nil {
		return replayRequest{}, err
	}
	if !req.from.Before(req.to) {
		return replayRequest{}, fmt.Errorf("from (%s) must be before to (%s)", req.from.Format(time.RFC3339Nano), req.to.Format(time.RFC3339Nano))
	}
	if len(in.Routes) > 1000 {
		return replayRequest{}, errors.New("routes: at most 1000")
	}
	for _, name := range in.Routes {
		if !known(name) {
			return replayRequest{}, fmt.Errorf("routes: no route %q", oneLine(name, 100))
		}
		if !slices.Contains(req.routes, name) {
			req.routes = append(req.routes, name)
		}
	}
	if req.filter = strings.TrimSpace(in.Filter); req.filter != "" {
		if req.match, err = filters.CompileFilter(config.Expr{Src: req.filter}); err != nil {
			return replayRequest{}, fmt.Errorf("filter: %s", oneLine(filterError(err), 300))
		}
	}
	return req, nil
}

// filterError is the message of a filter's compile error without the
// position config.Errors gives it (there is no file here).
func filterError(err error) string {
	var errs config.Errors
	if errors.As(err, &errs) && len(errs) > 0 {
		msg := strings.TrimPrefix(errs[0].Msg, "filter: ")
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return msg
	}
	return err.Error()
}

func parseTime(name string, s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, fmt.Errorf("%s: missing (an RFC 3339 time such as 2026-01-02T15:04:05Z)", name)
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is not an RFC 3339 time (such as 2026-01-02T15:04:05Z)", name, oneLine(*s, 60))
	}
	return t, nil
}

// create serves POST /api/v1/replays: 202 {"id": ...} once the job is
// stored and started; 400 for a bad body, 409 when the archive is off (the
// request may be right, the server cannot do it).
func (p *replays) create(w http.ResponseWriter, req *http.Request) {
	r := p.r
	if !r.journal.Archiving() {
		apiError(w, http.StatusConflict, "the archive is off: set journal.archive (such as {maxAge: 7d}) in the config to keep accepted events for replays")
		return
	}
	body, err := readBody(w, req, maxReplayBody)
	if err != nil {
		apiError(w, http.StatusBadRequest, "body: "+oneLine(err.Error(), 200))
		return
	}
	rq, err := parseReplayRequest(body, func(name string) bool {
		return slices.ContainsFunc(r.runningPlan().Routes, func(rt *Route) bool { return rt.Name == name })
	})
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := time.Now().UTC()
	job := &ReplayJob{ID: newReplayID(), State: ReplayRunning, From: rq.from.UTC(), To: rq.to.UTC(),
		Routes: rq.routes, Filter: rq.filter, Replica: p.replica, CreatedAt: now, UpdatedAt: now}
	if job.Routes == nil {
		job.Routes = []string{}
	}
	// A cluster's bucket may be without a leader for a moment: ask again
	// for a few seconds before answering 503.
	err = p.save(req.Context(), job)
	for wait, deadline := 50*time.Millisecond, time.Now().Add(createRetryFor); err != nil && time.Now().Before(deadline); wait *= 2 {
		if pause(req.Context(), wait) != nil {
			break
		}
		err = p.save(req.Context(), job)
	}
	if err != nil {
		r.log.Warn("store replay job", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the journal cannot store the job now; retry")
		return
	}
	r.log.Info("replay started", "replay", job.ID, "from", job.From, "to", job.To, "routes", job.Routes, "filter", job.Filter)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(job, rq.match)
	}()
	writeJSON(w, http.StatusAccepted, map[string]string{"id": job.ID})
}

// readBody reads at most limit bytes of req's body.
func readBody(w http.ResponseWriter, req *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
}

// get serves GET /api/v1/replays/{id}.
func (p *replays) get(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if !p.r.journal.Archiving() {
		apiError(w, http.StatusNotFound, "no replay "+oneLine(id, 60)+" (the archive is off)")
		return
	}
	job, err := p.load(req.Context(), id)
	if errors.Is(err, journal.ErrNoJob) {
		apiError(w, http.StatusNotFound, "no replay "+oneLine(id, 60))
		return
	}
	if err != nil {
		p.r.log.Warn("read replay job", "replay", id, "err", err)
		apiError(w, http.StatusServiceUnavailable, "the journal cannot be read now; retry")
		return
	}
	writeReplayJSON(w, job)
}

// writeReplayJSON answers 200 with v, filters shown as written (no \u003e
// for >).
func writeReplayJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// list serves GET /api/v1/replays: every job, newest first.
func (p *replays) list(w http.ResponseWriter, req *http.Request) {
	out := struct {
		Replays []*ReplayJob `json:"replays"`
	}{Replays: []*ReplayJob{}}
	if !p.r.journal.Archiving() {
		writeJSON(w, http.StatusOK, out)
		return
	}
	stored, err := p.r.journal.ReplayJobs(req.Context())
	if err != nil {
		p.r.log.Warn("list replay jobs", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the journal cannot be read now; retry")
		return
	}
	for _, s := range stored {
		job, err := p.decode(req.Context(), s)
		if err != nil {
			continue
		}
		out.Replays = append(out.Replays, job)
	}
	slices.SortFunc(out.Replays, func(a, b *ReplayJob) int { return b.CreatedAt.Compare(a.CreatedAt) })
	writeReplayJSON(w, out)
}

// load reads job id; a running job whose replica is lost is marked failed.
func (p *replays) load(ctx context.Context, id string) (*ReplayJob, error) {
	s, err := p.r.journal.GetReplayJob(ctx, id)
	if err != nil {
		return nil, err
	}
	return p.decode(ctx, s)
}

func (p *replays) decode(ctx context.Context, s journal.ReplayJob) (*ReplayJob, error) {
	job := &ReplayJob{}
	if err := json.Unmarshal(s.Data, job); err != nil {
		return nil, fmt.Errorf("read replay job %s: %w", s.ID, err)
	}
	job.rev = s.Revision
	if job.State == ReplayRunning && time.Since(job.UpdatedAt) > staleAfter {
		lost := *job
		p.finish(&lost, fmt.Errorf("lost: the replica running it (%s) stopped; replay the rest again", job.Replica))
		if err := p.save(ctx, &lost); err == nil {
			return &lost, nil
		} else if errors.Is(err, journal.ErrJobChanged) {
			return p.load(ctx, s.ID)
		}
	}
	return job, nil
}

// save writes job, replacing the revision it was read at.
func (p *replays) save(ctx context.Context, job *ReplayJob) error {
	job.UpdatedAt = time.Now().UTC()
	data, err := json.Marshal(job)
	if err != nil {
		return err
	}
	rev, err := p.r.journal.PutReplayJob(ctx, job.ID, data, job.rev)
	if err != nil {
		return err
	}
	job.rev, job.savedAt = rev, time.Now()
	return nil
}

// finish sets job's final state: done, or failed with err.
func (p *replays) finish(job *ReplayJob, err error) {
	now := time.Now().UTC()
	job.FinishedAt = &now
	job.State = ReplayDone
	if err != nil {
		job.State = ReplayFailed
		job.Error = oneLine(err.Error(), MaxErrorLen)
	}
}

// run runs job to its end and stores how it ended.
func (p *replays) run(job *ReplayJob, match filters.Matcher) {
	log := p.r.log.With("replay", job.ID)
	err := p.replay(job, match)
	if errors.Is(err, journal.ErrJobChanged) {
		log.Warn("replay stopped: its job was changed by another replica", "err", err)
		return
	}
	if err != nil && p.ctx.Err() != nil {
		err = errors.New("stopped: junction shut down before the replay finished; replay the rest again")
	}
	p.finish(job, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := p.save(ctx, job); serr != nil {
		log.Warn("store the end of a replay", "err", serr)
	}
	if err != nil {
		log.Warn("replay failed", "err", err, "matched", job.Matched, "routed", job.Routed)
		return
	}
	log.Info("replay done", "scanned", job.Scanned, "matched", job.Matched, "routed", job.Routed, "unrouted", job.Unrouted)
}

// replay reads the job's period from the archive and routes its events
// again, writing progress as it goes.
func (p *replays) replay(job *ReplayJob, match filters.Matcher) error {
	ctx := p.ctx
	var rd *journal.ArchiveReader
	err := p.retry(ctx, job, func() (err error) {
		rd, err = p.r.journal.ReadArchive(ctx, job.From, job.To)
		return err
	})
	if err != nil {
		return err
	}
	rp := &replaying{id: job.ID}
	if len(job.Routes) > 0 {
		rp.routes = map[string]bool{}
		for _, name := range job.Routes {
			rp.routes[name] = true
		}
	}
	for {
		var archived []journal.ArchivedEvent
		var done bool
		err := p.retry(ctx, job, func() (err error) {
			archived, done, err = rd.Next(ctx)
			return err
		})
		if err != nil {
			return err
		}
		job.Scanned += int64(len(archived))
		for len(archived) > 0 {
			// A run of events of one source, at most a batch (and the
			// token bucket's burst).
			n := 1
			for n < len(archived) && n < p.limit.Burst() && archived[n].Source == archived[0].Source {
				n++
			}
			if err := p.routeBatch(ctx, job, rp, match, archived[:n]); err != nil {
				return err
			}
			archived = archived[n:]
			if err := p.beat(ctx, job); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		if err := p.beat(ctx, job); err != nil {
			return err
		}
	}
}

// routeBatch routes again the events of one source that pass match.
func (p *replays) routeBatch(ctx context.Context, job *ReplayJob, rp *replaying, match filters.Matcher, archived []journal.ArchivedEvent) error {
	events := make([]*event.Event, 0, len(archived))
	for _, a := range archived {
		e := &event.Event{}
		if err := journal.DecodeEvent(a.Data, e); err != nil {
			p.r.log.Warn("replay: skip an unreadable archived event", "replay", job.ID, "seq", a.Seq, "err", err)
			continue
		}
		if match != nil {
			ok, err := match.Match(filters.NewEnv(e))
			if err != nil {
				job.FilterErrors++
			}
			if err != nil || !ok {
				continue
			}
		}
		e.SetExtension(ExtReplay, job.ID)
		events = append(events, e)
	}
	if len(events) == 0 {
		return nil
	}
	job.Matched += int64(len(events))
	if err := p.limit.WaitN(ctx, len(events)); err != nil {
		return err
	}
	in := p.r.ingester(archived[0].Source)
	var failing time.Time
	wait := 10 * time.Millisecond
	for {
		// Live traffic first: wait while appends queue up.
		for p.r.journal.Busy() {
			if err := pause(ctx, 5*time.Millisecond); err != nil {
				return err
			}
			if err := p.beat(ctx, job); err != nil {
				return err
			}
		}
		err := in.routeEvents(ctx, events, rp)
		if err == nil {
			job.Routed += int64(rp.routed)
			job.Unrouted += int64(rp.unrouted)
			return nil
		}
		if !errors.Is(err, journal.ErrUnavailable) || ctx.Err() != nil {
			return fmt.Errorf("route again: %w", err)
		}
		// The journal refuses writes (full, disk, leader lost): back off.
		if failing.IsZero() {
			failing = time.Now()
		} else if time.Since(failing) > replayRetryFor {
			return fmt.Errorf("route again: the journal refused writes for %v: %w", replayRetryFor, err)
		}
		if err := pause(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 5*time.Second)
		// The journal refuses writes: the job's record may not be
		// written either; the next beat that works says the job lives.
		if err := p.beat(ctx, job); errors.Is(err, journal.ErrJobChanged) {
			return err
		}
	}
}

// retry calls read until it succeeds, backing off, for at most
// replayRetryFor: the archive may be unreadable for a moment (on a cluster,
// while its stream elects a leader).
func (p *replays) retry(ctx context.Context, job *ReplayJob, read func() error) error {
	wait := 50 * time.Millisecond
	var failing time.Time
	for {
		err := read()
		if err == nil || errors.Is(err, journal.ErrArchiveOff) || ctx.Err() != nil {
			return err
		}
		if failing.IsZero() {
			failing = time.Now()
			p.r.log.Debug("replay: read the archive failed; retrying", "replay", job.ID, "err", err)
		} else if time.Since(failing) > replayRetryFor {
			return fmt.Errorf("the archive could not be read for %v: %w", replayRetryFor, err)
		}
		if err := pause(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 5*time.Second)
		if err := p.beat(ctx, job); errors.Is(err, journal.ErrJobChanged) {
			return err
		}
	}
}

// beat writes job's progress when it was last written progressEvery ago,
// so that other replicas see it and know it is alive.
func (p *replays) beat(ctx context.Context, job *ReplayJob) error {
	if time.Since(job.savedAt) < progressEvery {
		return nil
	}
	return p.save(ctx, job)
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newReplayID returns a new job id: "rp-" and 16 random base32 letters.
func newReplayID() string {
	var b [10]byte
	rand.Read(b[:])
	return "rp-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// withArchive sets the journal's archive options from journal.archive.
func withArchive(o journal.Options, a *config.Archive) journal.Options {
	if a != nil {
		o.Archive, o.ArchiveMaxAge, o.ArchiveMaxBytes = true, time.Duration(a.MaxAge), int64(a.MaxBytes)
	}
	return o
}
