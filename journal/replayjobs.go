package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replay jobs are records in the key-value bucket <Stream>_REPLAYS, one key
// per job (its id), so that every replica sees them and they survive
// restarts. The journal stores them as they are given (the router's JSON);
// a write names the revision it replaces, so that of two replicas writing
// the same job at once, one fails (ErrJobChanged) and reads it again.

// ErrNoJob means the bucket holds no job of that id.
var ErrNoJob = errors.New("no such replay job")

// ErrJobChanged means a job was written by someone else since it was read.
var ErrJobChanged = errors.New("replay job changed meanwhile")

// minJobAge is the least a job is kept after its last write.
const minJobAge = 24 * time.Hour

// maxJobs bounds the jobs ReplayJobs lists.
const maxJobs = 1000

func (j *Journal) ensureReplayJobs(ctx context.Context) error {
	storage := jetstream.FileStorage
	if j.opts.Memory {
		storage = jetstream.MemoryStorage
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      j.opts.Stream + "_REPLAYS",
		Description: "Junction replay jobs",
		History:     1,
		TTL:         max(j.opts.ArchiveMaxAge, minJobAge),
		Storage:     storage,
		Replicas:    j.opts.Replicas,
	}
	kv, err := setup(ctx, j, "create bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.js.CreateOrUpdateKeyValue(ctx, cfg)
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
	}
	j.jobs = kv
	return nil
}

// ReplayJob is a job as stored: its record and revision.
type ReplayJob struct {
	ID       string
	Data     []byte
	Revision uint64
}

// PutReplayJob writes job id: a new one with revision 0 (ErrJobChanged if
// it exists), else replacing that revision (ErrJobChanged if it is not the
// last). It returns the new revision.
func (j *Journal) PutReplayJob(ctx context.Context, id string, data []byte, revision uint64) (uint64, error) {
	if j.jobs == nil {
		return 0, ErrArchiveOff
	}
	var rev uint64
	var err error
	if revision == 0 {
		rev, err = j.jobs.Create(ctx, id, data)
	} else {
		rev, err = j.jobs.Update(ctx, id, data, revision)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || wrongSequence(err) {
		return 0, fmt.Errorf("write replay job %s: %w", id, ErrJobChanged)
	}
	if err != nil {
		return 0, fmt.Errorf("write replay job %s: %w", id, err)
	}
	return rev, nil
}

// GetReplayJob reads job id (ErrNoJob when there is none).
func (j *Journal) GetReplayJob(ctx context.Context, id string) (ReplayJob, error) {
	if j.jobs == nil {
		return ReplayJob{}, ErrArchiveOff
	}
	e, err := j.jobs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return ReplayJob{}, ErrNoJob
	}
	if err != nil {
		return ReplayJob{}, fmt.Errorf("read replay job %s: %w", id, err)
	}
	return ReplayJob{ID: id, Data: e.Value(), Revision: e.Revision()}, nil
}

// ReplayJobs reads every job (at most 1000).
func (j *Journal) ReplayJobs(ctx context.Context) ([]ReplayJob, error) {
	if j.jobs == nil {
		return nil, ErrArchiveOff
	}
	lister, err := j.jobs.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replay jobs: %w", err)
	}
	var ids []string
	for id := range lister.Keys() {
		if len(ids) < maxJobs {
			ids = append(ids, id)
		}
	}
	var out []ReplayJob
	for _, id := range ids {
		job, err := j.GetReplayJob(ctx, id)
		if errors.Is(err, ErrNoJob) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, job)
	}
	return out, nil
}
