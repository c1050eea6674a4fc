package ha

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
)

// recCitus records the Citus calls of every node of a simulated group.
type recCitus struct {
	mu     sync.Mutex
	node   string
	events *[]string
	lead   bool
}

func (r *recCitus) AdjustParameters(p map[string]string) { p["shared_preload_libraries"] = "citus" }
func (r *recCitus) Bootstrap(context.Context) error      { return nil }
func (r *recCitus) Leading(_ context.Context, v bool)    { r.lead = v }
func (r *recCitus) Notify(_ context.Context, ev string, _, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.events = append(*r.events, r.node+":"+ev)
	return nil
}

// In a Citus worker group, a switchover tells the coordinator
// before_demote (old primary, before it stops), then before_promote and
// after_promote (new primary, around pg_promote), in that order; the
// parameters carry citus; and a group without synchronous mode warns.
func TestSimCitusWorkerSwitchoverEvents(t *testing.T) {
	s := newSim(t, 2)
	var events []string
	var logs bytes.Buffer
	var mu sync.Mutex
	for _, n := range s.nodes {
		n.loop.cfg.Citus = &recCitus{node: n.name, events: &events}
		n.loop.cfg.CitusGroup = 1
		n.loop.log = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	}
	s.runUntilHealthy(5)
	old := s.node(s.leader())
	var cand *simNode
	for _, n := range s.nodes {
		if n != old {
			cand = n
		}
	}
	if !old.loop.cfg.Citus.(*recCitus).lead || cand.loop.cfg.Citus.(*recCitus).lead {
		t.Errorf("Leading: leader %v, replica %v", old.loop.cfg.Citus.(*recCitus).lead, cand.loop.cfg.Citus.(*recCitus).lead)
	}
	if p := old.loop.wantParameters()["shared_preload_libraries"]; p != "citus" {
		t.Errorf("the Citus parameters were not applied: shared_preload_libraries=%q", p)
	}
	events = nil
	s.run(2)
	s.request(dcs.Failover{Leader: old.name, Candidate: cand.name})
	for i := 0; s.leader() != cand.name || len(events) < 3; i++ {
		if i > 8 {
			t.Fatalf("no switchover to %s (leader %q, events %v)", cand.name, s.leader(), events)
		}
		s.step(time.Second)
	}
	want := fmt.Sprintf("%s:before_demote %s:before_promote %s:after_promote", old.name, cand.name, cand.name)
	if got := strings.Join(events, " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "runs without synchronous_mode") {
		t.Errorf("no warning about an asynchronous worker group in the logs")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
