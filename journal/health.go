package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The journal's health is whether it can take writes now, and if not, why.
// The causes it knows:
//
//   - the connection to the journal is down;
//   - the embedded server's JetStream is disabled, or one of its streams has
//     a write error. nats-server's file store keeps the first write error it
//     meets (ENOSPC included): from then on it leaves every publish
//     unanswered and removes no acknowledged message, until its streams are
//     loaded again. The journal then reloads JetStream in place once the
//     disk has room (see reload), and removes what was acknowledged but not
//     removed meanwhile (see reconcile);
//   - free space on the embedded journal's filesystem below MinFreeSpace:
//     the journal refuses appends before JetStream meets a full disk, and
//     keeps that room for what frees space (consumers acknowledging,
//     JetStream's own state and compaction) and for dead letters;
//   - the stream at MaxBytes, where JetStream refuses what does not fit.
//
// A monitor goroutine checks them (free space every diskEvery, the rest
// every healthEvery, at once when a write fails) and clears a cause when it
// is gone, without needing writes: a load balancer that saw /readyz fail
// sends none. Appends are refused at once (no publish) while the store is
// broken or the disk is below the reserve; a full stream still gets the
// appends, since JetStream answers at once whether they fit.

// Health checks.
const (
	// healthEvery is how often the monitor reads the stream's state and the
	// embedded server's health.
	healthEvery = time.Second
	// diskEvery is how often the monitor reads the free space.
	diskEvery = 250 * time.Millisecond
	// diskFresh is how old a free-space reading the appender uses; older,
	// it reads again before a round.
	diskFresh = 100 * time.Millisecond
	// reconcileEvery is how often the embedded journal looks for entries
	// acknowledged but left in the stream.
	reconcileEvery = 10 * time.Second
	// reloadEvery bounds how often JetStream is reloaded.
	reloadEvery = 5 * time.Second
	// fullHold is how long an append refused for fullness keeps the
	// journal unhealthy at least.
	fullHold = time.Second
	// msgOverhead is what the store adds to an entry, about.
	msgOverhead = 96
)

// statfs returns the free space (for unprivileged users) and the size of the
// filesystem that holds dir. Tests replace it.
var statfs = diskSpace

// unhealthy is the reason the journal cannot take writes now. Its text is
// the reason alone; it matches ErrUnavailable.
type unhealthy string

func (e unhealthy) Error() string        { return string(e) }
func (e unhealthy) Is(target error) bool { return target == ErrUnavailable }

// cause is one reason to be unhealthy, or none.
type cause struct{ p atomic.Pointer[string] }

// set records reason and reports whether the cause was not set before.
func (c *cause) set(reason string) bool { return c.p.Swap(&reason) == nil }

// clear removes the cause and reports whether it was set.
func (c *cause) clear() bool { return c.p.Swap(nil) != nil }

func (c *cause) get() string {
	if p := c.p.Load(); p != nil {
		return *p
	}
	return ""
}

type health struct {
	j   *Journal
	dir string
	// reserve is the free space to keep on dir's filesystem; 0 disables
	// the check.
	reserve int64

	store cause // JetStream disabled, a store write error, a reload
	disk  cause // free space below the reserve
	full  cause // the stream at MaxBytes
	reach cause // the stream cannot be read

	mu sync.Mutex
	// The appender's free-space reading: free bytes at diskAt, and the
	// bytes sent since.
	diskAt   time.Time
	diskFree int64
	diskSent int64
	// critical is set when free space fell under half the reserve: JetStream
	// may have met a full disk, so it is reloaded before writes resume.
	critical bool
	// needRoom is the size of the largest append refused for fullness since
	// the stream was last seen with room; refusedAt, the last refusal.
	needRoom  int64
	refusedAt time.Time
	// fullFinished is the journal's finished count when it was found full
	// (see checkStream).
	fullFinished uint64
	// maxBytes is journal.maxBytes as the stream has it, usedRead what the
	// deliveries and delay streams held at the monitor's last reading, and
	// usedSent the bytes sent since (see checkBytes).
	maxBytes, usedRead, usedSent int64
	readAt                       time.Time
	// lastReload is when JetStream was last reloaded.
	lastReload time.Time
	// infoFails counts the stream reads that failed in a row (monitor
	// only): one slow answer under load does not make the journal
	// unhealthy, two do.
	infoFails int

	kick     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// startHealth starts the health monitor of j.
func (j *Journal) startHealth() {
	h := &health{j: j, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	h.maxBytes = j.opts.MaxBytes // until the monitor reads the stream
	if j.srv != nil && !j.opts.Memory && j.opts.MinFreeSpace > 0 {
		h.dir, h.reserve = j.opts.Dir, j.opts.MinFreeSpace
		if free, size, err := statfs(h.dir); err != nil {
			j.log.Warn("journal: cannot read free disk space; journal.minFreeSpace is not enforced", "dir", h.dir, "err", err)
			h.reserve = 0
		} else {
			if size > 0 && h.reserve > size/4 {
				j.log.Warn("journal: journal.minFreeSpace is over a quarter of the journal's filesystem; keeping a quarter free instead",
					"dir", h.dir, "min_free_space", sizeText(h.reserve), "filesystem", sizeText(size), "reserve", sizeText(size/4))
				h.reserve = size / 4
			}
			h.diskAt, h.diskFree = time.Now(), free
		}
	}
	j.health = h
	go h.run()
}

// Health returns nil when the journal can take writes, else why not (an
// error that matches ErrUnavailable, whose text is the reason alone, such as
// "disk full: 12 MiB free, reserve 32 MiB"). It changes within a second or
// so of its cause, and recovers on its own when the cause is gone.
func (j *Journal) Health() error {
	if j.nc == nil || j.nc.IsClosed() {
		return unhealthy("journal closed")
	}
	if !j.nc.IsConnected() {
		return unhealthy("disconnected from the journal")
	}
	if j.srv != nil && !j.srv.JetStreamEnabled() {
		return unhealthy("journal store (JetStream) disabled")
	}
	h := j.health
	if h == nil {
		return nil
	}
	for _, c := range []*cause{&h.disk, &h.store, &h.full, &h.reach} {
		if r := c.get(); r != "" {
			return unhealthy(r)
		}
	}
	return nil
}

// refusal is why appends are refused without being sent: the store is
// broken or the disk is below the reserve; for new entries (not internal:
// a retry or a due entry moved into its lane, which move bytes rather than
// add them) also when the deliveries and the delay stream together reach
// journal.maxBytes.
func (h *health) refusal(internal bool) error {
	if h == nil {
		return nil
	}
	causes := []*cause{&h.disk, &h.store, &h.full}
	if internal {
		causes = causes[:2]
	}
	for _, c := range causes {
		if r := c.get(); r != "" {
			return fmt.Errorf("%w: %s", ErrUnavailable, r)
		}
	}
	return nil
}

// admit is the check of a round of appends: refused while the store is
// broken, and when its entries would leave less free space than the
// reserve (from a reading at most diskFresh old, less what was sent since).
func (h *health) admit(round []queued, internal bool) error {
	if err := h.refusal(internal); err != nil || h == nil || h.reserve == 0 {
		return err
	}
	var n int64
	for _, q := range round {
		n += entrySize(q.e)
	}
	h.mu.Lock()
	if time.Since(h.diskAt) > diskFresh {
		if free, _, err := statfs(h.dir); err == nil {
			h.diskAt, h.diskFree, h.diskSent = time.Now(), free, 0
		}
	}
	free := h.diskFree - h.diskSent
	ok := free-n >= h.reserve
	if ok {
		h.diskSent += n
	}
	h.mu.Unlock()
	if ok {
		return nil
	}
	reason := h.diskReason(free)
	if h.disk.set(reason) {
		h.j.log.Warn("journal: free disk space below journal.minFreeSpace; refusing writes until there is room", "dir", h.dir, "reason", reason)
		h.poke()
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, reason)
}

// checkBytes makes the journal full when n more bytes of new entries
// would leave less than fullMargin of journal.maxBytes, counting from the
// monitor's last reading of the deliveries and delay streams and what was
// sent since (countSent). Entries leave the deliveries stream for the
// delay stream as soon as they are retried or delayed, so the deliveries
// stream's own limit does not bound them: without this count a fast
// producer could overfill the journal many times between two readings.
// Removals are not counted, so the estimate errs on the full side: when
// it says full and the reading is older than freshBytes, the streams are
// read again first (so that a small maxBytes under a high rate of
// deliveries that keep up is not taken for full).
func (h *health) checkBytes(n int64) {
	if h == nil || n == 0 || h.j.opts.MaxBytes <= 0 {
		return
	}
	h.mu.Lock()
	maxBytes, used := h.maxBytes, h.usedRead+h.usedSent
	full := maxBytes > 0 && maxBytes-used-n < fullMargin(maxBytes)
	stale := time.Since(h.readAt) > freshBytes
	h.mu.Unlock()
	if full && stale {
		if read, err := h.readBytes(); err == nil {
			h.mu.Lock()
			h.usedRead, h.usedSent, h.readAt = read, 0, time.Now()
			used = read
			h.mu.Unlock()
			full = maxBytes-used-n < fullMargin(maxBytes)
		}
	}
	if !full {
		return
	}
	h.mu.Lock()
	h.refusedAt = time.Now()
	h.mu.Unlock()
	reason := fmt.Sprintf("journal full: about %s of journal.maxBytes %s used", sizeText(used), sizeText(maxBytes))
	if h.setFull(reason) {
		h.j.log.Warn("journal: full; refusing writes until entries are delivered", "reason", reason)
	}
}

// freshBytes is how old a reading of the streams' bytes may be for
// checkBytes to refuse new entries on it.
// (At most one reading per freshBytes while the journal is nearly full:
// an in-process request of about 0.1 ms.)
const freshBytes = 5 * time.Millisecond

// readBytes reads what the deliveries and delay streams hold.
func (h *health) readBytes() (int64, error) {
	if h.j.stream == nil {
		return 0, errors.New("no stream")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := h.j.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	delayed, err := h.delayBytes(ctx)
	return int64(info.State.Bytes) + delayed, err
}

// delayBytes reads what the delay stream holds (0 without one): what
// waits there counts toward journal.maxBytes, as it goes back to the
// deliveries when due.
func (h *health) delayBytes(ctx context.Context) (int64, error) {
	if h.j.delayStream == nil {
		return 0, nil
	}
	info, err := h.j.delayStream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.State.Bytes), nil
}

// countSent counts n bytes published to the deliveries or delay stream
// (see checkBytes).
func (h *health) countSent(n int64) {
	if h == nil || h.j.opts.MaxBytes <= 0 {
		return
	}
	h.mu.Lock()
	h.usedSent += n
	h.mu.Unlock()
}

func (h *health) diskReason(free int64) string {
	return fmt.Sprintf("disk full: %s free, reserve %s", sizeText(max(free, 0)), sizeText(h.reserve))
}

// failed is told of an append that failed: one refused for fullness makes
// the journal unhealthy at once; any other has the monitor look now.
func (h *health) failed(size int, err error) {
	if h == nil {
		return
	}
	if isFull(err) {
		h.mu.Lock()
		h.needRoom = max(h.needRoom, int64(size))
		h.refusedAt = time.Now()
		h.mu.Unlock()
		reason := "journal full: " + fullText(err)
		if mb := h.j.opts.MaxBytes; mb > 0 && strings.Contains(err.Error(), "maximum bytes") {
			reason += " (journal.maxBytes " + sizeText(mb) + ")"
		}
		if h.setFull(reason) {
			h.j.log.Warn("journal: full; refusing writes until entries are delivered", "reason", reason)
		}
		return
	}
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		// No answer at all, or nothing took the write: on a cluster, the
		// stream has lost its leader (an election takes seconds), and
		// ingest answers 503 meanwhile. Unhealthy until the monitor reads
		// the stream again with a leader, which it tries now.
		reason := fmt.Sprintf("journal stream unavailable: no answer to a write within %v", h.j.writeTimeout()/2)
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			reason = "journal stream unavailable: nothing took a write (no stream leader)"
		}
		if h.reach.set(reason) {
			h.j.log.Warn("journal: stream unavailable", "reason", reason)
		}
	}
	h.poke()
}

// poke has the monitor check now.
func (h *health) poke() {
	if h == nil {
		return
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *health) close() {
	if h == nil {
		return
	}
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}

// run is the monitor.
func (h *health) run() {
	defer close(h.done)
	disk := time.NewTicker(diskEvery)
	defer disk.Stop()
	var checked, reconciled time.Time
	for {
		h.checkDisk()
		// Below the reserve, JetStream may have met the full disk: look
		// at its store at every reading.
		if time.Since(checked) >= healthEvery-diskEvery/2 || h.disk.get() != "" {
			h.checkStore()
			h.checkStream()
			checked = time.Now()
		}
		if h.j.srv != nil && time.Since(reconciled) >= reconcileEvery {
			h.reconcile()
			reconciled = time.Now()
		}
		select {
		case <-h.stop:
			return
		case <-disk.C:
		case <-h.kick:
			checked = time.Time{}
		}
	}
}

// checkDisk reads the free space: below the reserve the journal refuses
// writes; it takes them again with an eighth of the reserve more free, after
// reloading JetStream if the disk came close to full.
func (h *health) checkDisk() {
	if h.reserve == 0 {
		return
	}
	free, _, err := statfs(h.dir)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.diskAt, h.diskFree, h.diskSent = time.Now(), free, 0
	if free < h.reserve/2 {
		h.critical = true
	}
	critical := h.critical
	h.mu.Unlock()
	switch {
	case free < h.reserve:
		reason := h.diskReason(free)
		if h.disk.set(reason) {
			h.j.log.Warn("journal: free disk space below journal.minFreeSpace; refusing writes until there is room", "dir", h.dir, "reason", reason)
		}
	case h.disk.get() != "" && free >= h.reserve+h.reserve/8:
		if critical {
			// JetStream may have met the full disk: its store may hold
			// a write error that only a reload clears.
			if !h.reload("the disk was nearly full") {
				return
			}
		}
		h.mu.Lock()
		h.critical = false
		h.mu.Unlock()
		h.disk.clear()
		h.j.log.Info("journal: free disk space back above journal.minFreeSpace; taking writes", "free", sizeText(free))
	}
}

// checkStore asks the embedded server whether JetStream is enabled and its
// streams writable; if not, it reloads JetStream once the disk has room.
func (h *health) checkStore() {
	srv := h.j.srv
	if srv == nil {
		return
	}
	reason := ""
	if !srv.JetStreamEnabled() {
		reason = "journal store (JetStream) disabled"
	} else if hs := srv.Healthz(nil); hs != nil && storeFailure(hs.Error) {
		reason = storeReason(hs.Error)
	}
	if reason == "" {
		if h.store.clear() {
			h.j.log.Info("journal: store writable again")
		}
		return
	}
	if h.store.set(reason) {
		h.j.log.Warn("journal: store cannot take writes; it is reloaded once the disk has room", "reason", reason)
		// The appends it has not answered never will be.
		h.j.app.abort(fmt.Errorf("%w: %s", ErrUnavailable, reason))
	}
	if h.reserve > 0 {
		if h.disk.get() != "" {
			return // checkDisk reloads when there is room
		}
	} else if free, _, err := statfs(h.j.opts.Dir); err == nil && free < 1<<20 {
		return
	}
	h.reload(reason)
}

// storeFailure reports whether a health error of the embedded server is
// the store's. Healthz first checks that the server is ready for
// connections within 1 ms; without a listener that check fails when the
// goroutine is descheduled for a millisecond (seen under CPU load in CI:
// "failed to be ready for connections after 1ms: "), which says nothing of
// the store, started long before, and must not refuse writes.
func storeFailure(e string) bool {
	return e != "" && !strings.HasPrefix(e, "failed to be ready for connections")
}

// storeReason is the reason for a JetStream health error.
func storeReason(e string) string {
	if strings.Contains(e, "no space left") {
		return "disk full: the journal store met a full disk (" + e + ")"
	}
	return "journal store: " + e
}

// reload shuts JetStream down and enables it again, which loads the streams
// from disk without the write error their store kept, then removes what was
// acknowledged meanwhile but not removed. It reports whether JetStream is
// enabled and healthy after it; it does nothing if the last reload was
// less than reloadEvery ago.
func (h *health) reload(why string) bool {
	j := h.j
	if j.opts.Memory {
		return false // a reload would lose the streams kept in memory
	}
	h.mu.Lock()
	if time.Since(h.lastReload) < reloadEvery {
		h.mu.Unlock()
		return false
	}
	h.lastReload = time.Now()
	h.mu.Unlock()
	h.store.set("journal store reloading")
	j.log.Warn("journal: reloading the store", "why", why)
	start := time.Now()
	if j.srv.JetStreamEnabled() {
		if err := j.srv.ShutdownJetStream(); err != nil {
			j.log.Warn("journal: stop JetStream", "err", err)
		}
	}
	o := j.embedded
	err := j.srv.EnableJetStream(&server.JetStreamConfig{
		StoreDir:     o.StoreDir,
		MaxMemory:    o.JetStreamMaxMemory,
		MaxStore:     o.JetStreamMaxStore,
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		Strict:       !o.NoJetStreamStrict,
		CompressOK:   true,
	})
	if err != nil {
		j.log.Error("journal: reload the store", "err", err)
		h.store.set("journal store reload failed: " + err.Error())
		return false
	}
	if hs := j.srv.Healthz(nil); hs != nil && hs.Error != "" {
		h.store.set(storeReason(hs.Error))
		j.log.Error("journal: store still unhealthy after reload", "reason", hs.Error)
		return false
	}
	h.store.clear()
	j.log.Info("journal: store reloaded", "took", time.Since(start).Round(time.Millisecond))
	h.reconcile()
	return true
}

// checkStream reads the stream's state: unreadable, or at MaxBytes.
func (h *health) checkStream() {
	j := h.j
	if j.stream == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := j.stream.Info(ctx)
	if err == nil && info.Cluster != nil && info.Cluster.Leader == "" && j.opts.Replicas > 1 {
		// On a cluster: no node leads the stream (an election after the
		// leader was lost), so no write can be stored.
		err = errors.New("no stream leader")
		h.infoFails++
	}
	if err != nil {
		if h.infoFails++; h.infoFails < 2 || j.srv != nil && h.store.get() != "" {
			return // once may be load; a broken store says it itself
		}
		if h.reach.set("journal stream unavailable: " + err.Error()) {
			j.log.Warn("journal: stream unavailable", "err", err)
		}
		return
	}
	h.infoFails = 0
	if h.reach.clear() {
		j.log.Info("journal: stream available again")
	}
	maxBytes := info.Config.MaxBytes
	used := int64(info.State.Bytes)
	if maxBytes > 0 {
		if delayed, err := h.delayBytes(ctx); err == nil {
			used += delayed
		}
	}
	room := maxBytes - used
	h.mu.Lock()
	h.maxBytes, h.usedRead, h.usedSent, h.readAt = maxBytes, used, 0, time.Now()
	need := max(2*fullMargin(maxBytes), h.needRoom)
	recent := time.Since(h.refusedAt) < fullHold
	// Retries move entries between the deliveries and the delay stream,
	// where each takes more room (its own message, the schedule's
	// headers): with a sink down, room comes and goes without anything
	// leaving. In the embedded journal, where this process handles every
	// delivery, room counts only once an entry has left for good since
	// the journal was found full, or when half the journal is free (more
	// than moves explain; and a journal found full by checkBytes's
	// estimate may hold nothing left to deliver). With an external
	// journal the other replicas' deliveries are not counted here: room
	// alone decides.
	draining := j.srv == nil || j.finished.Load() != h.fullFinished || room >= maxBytes/2
	h.mu.Unlock()
	switch {
	case maxBytes > 0 && room < fullMargin(maxBytes):
		reason := fmt.Sprintf("journal full: %s of journal.maxBytes %s used", sizeText(used), sizeText(maxBytes))
		if h.setFull(reason) {
			j.log.Warn("journal: full; refusing writes until entries are delivered", "reason", reason)
		}
	case h.full.get() != "" && !recent && draining && (maxBytes <= 0 || room >= need):
		h.mu.Lock()
		h.needRoom = 0
		h.mu.Unlock()
		h.full.clear()
		j.log.Info("journal: room again; taking writes")
	}
}

// setFull sets the full cause to reason and reports whether it was clear;
// then it notes the finished count (see checkStream).
func (h *health) setFull(reason string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full.set(reason) {
		return false
	}
	h.fullFinished = h.j.finished.Load()
	return true
}

// entrySize is about what e takes in the journal.
func entrySize(e Entry) int64 {
	return int64(len(e.Data) + len(e.Route) + len(e.Sink) + msgOverhead)
}

// fullMargin is the room under which a stream of maxBytes is full.
func fullMargin(maxBytes int64) int64 {
	return min(max(maxBytes/32, 4<<10), 1<<20)
}

// reconcile removes entries that their consumer acknowledged but that the
// stream still holds: acknowledgements made while the store had a write
// error leave them (nats-server does not remove them when it loads the
// stream again), and no consumer would ever hand them out again. A
// consumer's entries at or below its acknowledgement floor have all been
// acknowledged: they are purged when the stream holds more of the
// consumer's entries than the consumer still has to deliver or to see
// acknowledged, and its first entry is at or below the floor. (Entries
// acknowledged above the floor go once the floor passes them.)
func (h *health) reconcile() {
	j := h.j
	if j.stream == nil || h.store.get() != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := j.stream.Info(ctx, jetstream.WithSubjectFilter(j.lanes.all()))
	if err != nil || info.State.Msgs == 0 {
		return
	}
	consumers := j.stream.ListConsumers(ctx)
	for ci := range consumers.Info() {
		filters := ci.Config.FilterSubjects
		if ci.Config.FilterSubject != "" {
			filters = append(filters, ci.Config.FilterSubject)
		}
		if len(filters) == 0 || ci.AckFloor.Stream == 0 {
			continue
		}
		var held uint64
		for subject, n := range info.State.Subjects {
			for _, f := range filters {
				if subjectMatch(f, subject) {
					held += n
					break
				}
			}
		}
		expected := ci.NumPending + uint64(ci.NumAckPending)
		if held <= expected {
			continue
		}
		for _, f := range filters {
			// The counts above race with acknowledgements; the
			// consumer's first entry at or below its floor does not.
			first, err := j.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(f))
			if err != nil || first.Sequence > ci.AckFloor.Stream {
				continue
			}
			err = j.stream.Purge(ctx, jetstream.WithPurgeSubject(f), jetstream.WithPurgeSequence(ci.AckFloor.Stream+1))
			if err != nil {
				j.log.Warn("journal: remove acknowledged entries left in the stream", "consumer", ci.Name, "err", err)
				continue
			}
			j.log.Warn("journal: removed acknowledged entries left in the stream", "consumer", ci.Name, "subjects", f, "messages", held-expected, "ack_floor", ci.AckFloor.Stream)
		}
	}
	if err := consumers.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		j.log.Debug("journal: list consumers", "err", err)
	}
}

// subjectMatch reports whether subject matches the NATS subject filter.
func subjectMatch(filter, subject string) bool {
	for {
		ft, frest, fmore := strings.Cut(filter, ".")
		st, srest, smore := strings.Cut(subject, ".")
		switch {
		case ft == ">":
			return true
		case ft != "*" && ft != st:
			return false
		case !fmore || !smore:
			return fmore == smore
		}
		filter, subject = frest, srest
	}
}

// isFull reports whether err is JetStream refusing a write for lack of room
// (the stream's or the server's limits, or the disk).
func isFull(err error) bool {
	if err == nil {
		return false
	}
	s := strings.ToLower(err.Error())
	for _, m := range []string{"maximum bytes", "maximum messages", "insufficient", "resources exceeded", "resource limits exceeded", "no space left"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// fullText is JetStream's reason in a fullness error, without the wrapping.
func fullText(err error) string {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Description != "" {
		return apiErr.Description
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return strings.TrimPrefix(s, "nats: ")
}

// sizeText formats n bytes with a binary unit: 512 B, 900 KiB, 12 MiB,
// 1.5 GiB.
func sizeText(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	if u == 0 || f >= 10 || f == float64(int64(f)) {
		return fmt.Sprintf("%d %s", int64(f), units[u])
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}
