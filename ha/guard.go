package ha

import (
	"sync"
	"time"
)

// leaseGuard stops PostgreSQL when this member's leader belief runs out
// without a renewal, whatever the loop is doing (stuck in an etcd call,
// or just resumed after SIGSTOP: an expired timer fires at once).
type leaseGuard struct {
	mu       sync.Mutex
	timer    *time.Timer
	deadline time.Time
	fence    func(deadline time.Time)
}

func newLeaseGuard(fence func(deadline time.Time)) *leaseGuard {
	return &leaseGuard{fence: fence}
}

// Arm sets (or moves) the deadline.
func (g *leaseGuard) Arm(deadline time.Time, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil && g.deadline.Equal(deadline) {
		return
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	g.deadline = deadline
	d := deadline.Sub(now)
	g.timer = time.AfterFunc(d, func() { g.fire(deadline) })
}

// Disarm cancels the guard: this member no longer leads.
func (g *leaseGuard) Disarm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.deadline = time.Time{}
}

func (g *leaseGuard) fire(deadline time.Time) {
	g.mu.Lock()
	current := g.timer != nil && g.deadline.Equal(deadline)
	if current {
		g.timer = nil
	}
	g.mu.Unlock()
	if current {
		g.fence(deadline)
	}
}
