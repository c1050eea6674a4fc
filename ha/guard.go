package ha

import (
	"sync"
	"time"
)

// leaseGuard stops PostgreSQL when this member's leader belief runs out
// without a renewal, whatever the loop is doing (stuck in an etcd call,
// or just resumed after SIGSTOP: an expired timer fires at once).
//
// An external Fence (the fence process) is told the same deadline, so
// that PostgreSQL is stopped even when this daemon cannot run at all.
type leaseGuard struct {
	mu       sync.Mutex
	timer    *time.Timer
	deadline time.Time
	fence    func(deadline time.Time)
	external Fence
}

// Fence is a watchdog outside this process that stops PostgreSQL at the
// deadline unless it is moved or removed. Disarm is called every cycle in
// which this member does not lead, so it must be cheap when nothing is
// armed.
type Fence interface {
	Arm(deadline time.Time)
	Disarm()
}

func newLeaseGuard(fence func(deadline time.Time), external Fence) *leaseGuard {
	return &leaseGuard{fence: fence, external: external}
}

// Arm sets (or moves) the deadline.
func (g *leaseGuard) Arm(deadline time.Time, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil && g.deadline.Equal(deadline) {
		return
	}
	if g.external != nil {
		g.external.Arm(deadline)
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
	if g.external != nil {
		g.external.Disarm() // a no-op when it holds no deadline
	}
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
