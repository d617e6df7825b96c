package natssource

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// progress keeps the server from redelivering a message whose ingest is
// slow: every ackWait/4 it sends InProgress for each message that has been
// pending for half of ackWait since it started or since the last
// InProgress. One goroutine for the source, no timer per message.
type progress struct {
	every time.Duration // scan period: ackWait/4
	after time.Duration // pending this long gets InProgress: ackWait/2
	slots []slot
}

// slot is one worker's message in flight.
type slot struct {
	mu   sync.Mutex
	msg  jetstream.Msg
	last time.Time // start, or the last InProgress
	_    [40]byte  // keep workers' slots on separate cache lines
}

func newProgress(workers int, ackWait time.Duration) *progress {
	return &progress{every: max(ackWait/4, 10*time.Millisecond), after: ackWait / 2, slots: make([]slot, workers)}
}

func (p *progress) slot(i int) *slot { return &p.slots[i] }

func (s *slot) start(m jetstream.Msg) {
	s.mu.Lock()
	s.msg, s.last = m, time.Now()
	s.mu.Unlock()
}

func (s *slot) stop() {
	s.mu.Lock()
	s.msg = nil
	s.mu.Unlock()
}

// run scans the slots until ctx ends.
func (p *progress) run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due = p.due(now, due[:0])
			for _, m := range due {
				// A late InProgress for a message acked meanwhile is
				// ignored by the server.
				_ = m.InProgress()
			}
			clear(due)
		}
	}
}

// due appends the messages pending for at least p.after and marks them.
func (p *progress) due(now time.Time, out []jetstream.Msg) []jetstream.Msg {
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		if s.msg != nil && now.Sub(s.last) >= p.after {
			out = append(out, s.msg)
			s.last = now
		}
		s.mu.Unlock()
	}
	return out
}
