package router

import (
	"context"
	"fmt"
	"sync"
)

// supervisor runs the router's components (the ingress and admin servers,
// each source, one dispatcher per sink, the pending tracker), each in a
// goroutine of its own with contexts of its own, so that reload can stop
// and start them one by one. A component that ends with an error while it
// was not asked to stop fails the router (fail, set by Run).
type supervisor struct {
	fail func(error)
}

// component is one running part of the router.
type component struct {
	name string
	// stopRun asks the component to stop taking work; stopDrain cuts short
	// the work it still does (the deadline of stop passed).
	stopRun, stopDrain context.CancelFunc
	done               chan struct{}
}

// start runs fn in a goroutine until its ctx ends. fn must then finish what
// it holds (in-flight requests, deliveries) with drain, which ends only when
// the stop's deadline passes, and return.
func (s *supervisor) start(name string, fn func(ctx, drain context.Context) error) *component {
	ctx, stopRun := context.WithCancel(context.Background())
	drain, stopDrain := context.WithCancel(context.Background())
	c := &component{name: name, stopRun: stopRun, stopDrain: stopDrain, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer stopDrain()
		if err := fn(ctx, drain); err != nil && ctx.Err() == nil {
			s.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
	return c
}

// stop asks c to stop and waits until it has: until deadline for it to
// finish its work, then with its work cut short. It reports whether the
// deadline cut it short.
func (c *component) stop(deadline context.Context) (cut bool) {
	if c == nil {
		return false
	}
	c.stopRun()
	select {
	case <-c.done:
		return false
	case <-deadline.Done():
		c.stopDrain()
		<-c.done
		return true
	}
}

// stopAll stops the components together (see component.stop) and returns
// the names of those the deadline cut short.
func stopAll(deadline context.Context, cs []*component) (cut []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.stop(deadline) {
				mu.Lock()
				cut = append(cut, c.name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return cut
}
