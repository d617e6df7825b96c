package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The archive keeps every accepted event for a while (Options.Archive), so
// that a period can be routed again (a replay). It is a stream of its own,
// <Stream>_ARCHIVE, with limits retention: entries expire after
// Options.ArchiveMaxAge, and past Options.ArchiveMaxBytes the oldest go
// first, so it never blocks ingest. It lives in JetStream like the
// deliveries, so replicas share it.
//
// Archive entries travel with the deliveries of the same append: they are
// entries of the appender's rounds (see batch.go) in a lane of their own
// whose messages go to the archive stream, coalesced like deliveries (one
// message holds the events of many appends), and an Append returns only
// once its archive entries are stored too. A message's payload is an
// envelope (see envelope.go) whose entries hold, as their route, the name
// of the Junction source that accepted the event, and its acceptance time.
//
// Jobs of replays are kept in a key-value bucket beside it,
// <Stream>_REPLAYS (see ReplayJobs).

// memoryArchiveBytes bounds the archive in memory (tests).
const memoryArchiveBytes = 32 << 20

// ErrArchiveOff means the journal keeps no archive (Options.Archive unset).
var ErrArchiveOff = errors.New("the archive is off")

func (j *Journal) archiveStreamName() string { return j.opts.Stream + "_ARCHIVE" }

// ArchiveEntry is the entry that archives one accepted event: data is the
// encoded event, source the Junction source that accepted it, accepted
// when. Appended with the event's deliveries, it is stored in the archive
// before Append returns.
func ArchiveEntry(source string, accepted time.Time, data []byte) Entry {
	return Entry{Route: source, Accepted: accepted, Data: data, archive: true}
}

// Archiving says whether the journal keeps an archive.
func (j *Journal) Archiving() bool { return j.opts.Archive }

func (j *Journal) ensureArchive(ctx context.Context) error {
	if !j.opts.Archive {
		return nil
	}
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	maxBytes := j.opts.ArchiveMaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	if j.opts.Memory && (maxBytes < 0 || maxBytes > memoryArchiveBytes) {
		maxBytes = memoryArchiveBytes
	}
	if j.opts.URL == "" && !j.opts.Memory {
		// As the dead-letter store: the embedded server reserves maxBytes
		// against its store limit.
		if free, _, err := statfs(j.opts.Dir); err == nil && free > 0 && (maxBytes < 0 || maxBytes > free/4) {
			j.log.Warn("archive limited to a quarter of the journal's free disk space",
				"archiveMaxBytes", j.opts.ArchiveMaxBytes, "limit", free/4)
			maxBytes = max(free/4, 1<<20)
		}
	}
	cfg := jetstream.StreamConfig{
		Name:        j.archiveStreamName(),
		Description: "Junction archive of accepted events (replay)",
		Subjects:    []string{j.lanes.archive + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     storage,
		Replicas:    j.opts.Replicas,
		MaxAge:      j.opts.ArchiveMaxAge,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  j.duplicates(),
	}
	s, err := setup(ctx, j, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	j.arStream = s
	if j.gsync != nil {
		j.arSync = newGroupSync(filepath.Join(j.opts.Dir, "jetstream-store", "jetstream", "$G", "streams", cfg.Name, "msgs"))
	}
	return j.ensureReplayJobs(ctx)
}

// ArchivedEvent is one event of the archive.
type ArchivedEvent struct {
	// Seq is the sequence of its archive message.
	Seq uint64
	// Source is the Junction source that accepted it.
	Source string
	// Accepted is when.
	Accepted time.Time
	// Data is the encoded event.
	Data []byte
}

// ArchiveReader reads the archive from a time on (see ReadArchive).
type ArchiveReader struct {
	j        *Journal
	from, to time.Time
	cons     jetstream.Consumer
	last     uint64 // the archive's last sequence when the reader was made
	seen     uint64 // the last sequence read
	done     bool
}

// ReadArchive returns a reader of the events accepted in [from, to) that
// the archive holds now: an ordered consumer from the first archive
// message stored at or after from. ErrArchiveOff when there is no archive.
func (j *Journal) ReadArchive(ctx context.Context, from, to time.Time) (*ArchiveReader, error) {
	if j.arStream == nil {
		return nil, ErrArchiveOff
	}
	info, err := j.arStream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	r := &ArchiveReader{j: j, from: from, to: to, last: info.State.LastSeq}
	if info.State.Msgs == 0 || info.State.LastTime.Before(from) {
		r.done = true
		return r, nil
	}
	start := from
	r.cons, err = j.js.OrderedConsumer(ctx, j.archiveStreamName(), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &start,
	})
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	return r, nil
}

// archiveSlack is how long after to an archive message may still hold an
// event accepted before to: an append is stored within its write timeout,
// and a message published again within twice that.
func (j *Journal) archiveSlack() time.Duration { return 2*j.writeTimeout() + time.Second }

// readBatch bounds the archive messages one Next reads.
const readBatch = 16

// Next returns the events accepted in [from, to) of the next archive
// messages (perhaps none, when none of theirs were), and done once the
// reader is past to or at the end of what the archive held when the reader
// was made.
func (r *ArchiveReader) Next(ctx context.Context) (events []ArchivedEvent, done bool, err error) {
	// waited: the last fetch that takes what is there found nothing;
	// the next one waits a moment.
	waited := false
	for !r.done {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		var batch jetstream.MessageBatch
		var err error
		if waited {
			batch, err = r.cons.Fetch(readBatch, jetstream.FetchMaxWait(time.Second))
		} else {
			batch, err = r.cons.FetchNoWait(readBatch)
		}
		if err != nil {
			return nil, false, fmt.Errorf("read archive: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil || r.done {
				continue
			}
			r.seen = meta.Sequence.Stream
			if r.seen >= r.last || meta.NumPending == 0 || meta.Timestamp.After(r.to.Add(r.j.archiveSlack())) {
				r.done = true
			}
			entries, err := decodeEnvelope(m.Data())
			if err != nil {
				r.j.log.Warn("skip unreadable archive message", "seq", r.seen, "err", err)
				continue
			}
			for _, e := range entries {
				if e.Accepted.Before(r.from) || !e.Accepted.Before(r.to) {
					continue
				}
				events = append(events, ArchivedEvent{Seq: r.seen, Source: e.Route, Accepted: e.Accepted, Data: e.Data})
			}
		}
		if err := batch.Error(); got == 0 && err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			// (With messages read, they are returned: the error comes
			// again with the next fetch, if it lasts.)
			return nil, false, fmt.Errorf("read archive: %w", err)
		}
		if got == 0 {
			// Nothing came: what was left expired meanwhile, or the
			// archive is slow to answer.
			if info, ierr := r.j.arStream.Info(ctx); ierr == nil {
				st := info.State
				r.done = st.Msgs == 0 || st.FirstSeq > r.last || st.LastSeq <= r.seen
			}
			waited = true
			continue
		}
		return events, r.done, nil
	}
	return nil, true, nil
}

// archiveInfo is the archive's state, for tests: messages and bytes.
func (j *Journal) archiveInfo(ctx context.Context) (msgs, bytes uint64, err error) {
	if j.arStream == nil {
		return 0, 0, ErrArchiveOff
	}
	info, err := j.arStream.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.State.Msgs, info.State.Bytes, nil
}
