package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// groupSync makes appends durable with fsync: always in the embedded
// journal, sharing one fsync among all the appends waiting at that moment
// (group commit). The embedded store writes each entry to its block file
// before it acknowledges the publish, so once the block files written since
// the last fsync are fsynced, every entry acknowledged before that fsync
// began is on disk.
type groupSync struct {
	dir string // the stream's msgs directory

	mu        sync.Mutex
	cond      *sync.Cond
	requested uint64 // appends that asked for a sync
	synced    uint64 // requests covered by the last completed sync
	running   bool
	lastBlock int // the lowest block index the next sync must cover

	syncs uint64 // fsync rounds, for tests
}

func newGroupSync(msgsDir string) *groupSync {
	g := &groupSync{dir: msgsDir}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// Sync returns once everything appended before the call is on disk.
func (g *groupSync) Sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requested++
	mine := g.requested
	for g.synced < mine {
		if g.running {
			g.cond.Wait()
			continue
		}
		// Lead a round: it covers every request made so far.
		g.running = true
		target := g.requested
		from := g.lastBlock
		g.mu.Unlock()
		last, err := syncBlocks(g.dir, from)
		g.mu.Lock()
		g.running = false
		g.syncs++
		if err == nil {
			g.synced = target
			g.lastBlock = last
		}
		g.cond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncBlocks fsyncs every block file of dir with an index of at least from,
// and dir itself when a new block appeared, and returns the highest index.
func syncBlocks(dir string, from int) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return from, fmt.Errorf("sync journal: %w", err)
	}
	highest := from
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".blk") {
			continue
		}
		idx, err := strconv.Atoi(strings.TrimSuffix(name, ".blk"))
		if err != nil || idx < from {
			continue
		}
		if err := fsyncPath(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			return from, fmt.Errorf("sync journal: %w", err)
		}
		highest = max(highest, idx)
	}
	if highest != from {
		// A new block file: make its directory entry durable too.
		if err := fsyncPath(dir); err != nil {
			return from, fmt.Errorf("sync journal: %w", err)
		}
	}
	return highest, nil
}

func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
