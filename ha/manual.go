package ha

import (
	"fmt"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
)

// This file holds the decisions about operator requests: switchover and
// failover (the failover key), scheduled restarts and reinitialize.

// staleScheduleAfter is how late a scheduled switchover may still run:
// Patroni drops one missed by more than 1.5 loop_wait.
func staleScheduleAfter(s Settings) time.Duration {
	return max(3*s.LoopWait/2, 2*time.Second)
}

// decideLeaderRequest is the leader's side of the failover key. ok is
// false when there is no request to act on.
func decideLeaderRequest(o Observation) (Plan, bool) {
	c := o.Cluster
	f := c.FailoverRequest
	if f == nil {
		return Plan{}, false
	}
	clear := func(why string) (Plan, bool) {
		return plan("failover key: "+why+"; clearing it", Action{Kind: ClearFailover, Revision: c.FailoverRevision}), true
	}
	if f.Leader != "" && f.Leader != o.Name {
		return clear(fmt.Sprintf("the request is to move away from %s, but this member is the leader", f.Leader))
	}
	if f.Candidate == o.Name {
		return clear("its candidate is already the leader")
	}
	if !f.ScheduledAt.IsZero() {
		if o.Paused {
			return plan(fmt.Sprintf("a switchover is scheduled at %s, but scheduled actions do not run in maintenance mode", f.ScheduledAt.Format(time.RFC3339))), true
		}
		if d := f.ScheduledAt.Sub(o.Now); d > 0 {
			p := plan(fmt.Sprintf("switchover scheduled at %s (in %s)", f.ScheduledAt.Format(time.RFC3339), d.Round(time.Second)))
			p.WakeAt = o.Now.Add(d)
			return p, true
		} else if -d > staleScheduleAfter(o.Settings) {
			return clear(fmt.Sprintf("the switchover scheduled at %s was missed by %s", f.ScheduledAt.Format(time.RFC3339), (-d).Round(time.Second)))
		}
	}
	if f.Candidate != "" {
		if ok, why := eligible(o, c.Member(f.Candidate)); !ok {
			return clear(fmt.Sprintf("candidate %s cannot take over: %s", f.Candidate, why))
		}
	} else {
		if o.Paused {
			return clear("in maintenance mode a switchover needs a candidate")
		}
		found := false
		for i := range c.Members {
			if m := &c.Members[i]; m.Name != o.Name {
				if ok, _ := eligible(o, m); ok {
					found = true
					break
				}
			}
		}
		if !found {
			return clear("no other member can take over")
		}
	}
	to := f.Candidate
	if to == "" {
		to = "the healthiest standby"
	}
	return Plan{Reason: fmt.Sprintf("switchover to %s requested: checkpointing, stopping cleanly and releasing the leader key", to),
		Actions: []Action{act(Demote)}, State: "stopping"}, true
}

// eligible says whether member m may become the leader now, judged from
// its member key and the leader's own position.
func eligible(o Observation, m *dcs.Member) (bool, string) {
	if m == nil {
		return false, "it has no member key (not running pgwarden, or unknown)"
	}
	if m.State != "running" {
		return false, fmt.Sprintf("its state is %q", m.State)
	}
	if nf, _ := m.Tags["nofailover"].(bool); nf {
		return false, "it is tagged nofailover"
	}
	if m.IsPrimary() {
		return false, "it runs as a primary"
	}
	if o.Settings.SynchronousMode {
		if s := o.Cluster.SyncState; s == nil || s.Leader != o.Name || !s.Names(m.Name) {
			return false, "synchronous mode is on and it is not a synchronous standby"
		}
	}
	pos := m.XLogLocation
	if m.ReceiveLSN != nil {
		pos = max(pos, *m.ReceiveLSN)
	}
	if lag := o.PG.WALPosition - pos; o.Settings.MaximumLagOnFailover >= 0 && lag > o.Settings.MaximumLagOnFailover {
		return false, fmt.Sprintf("it lags %d bytes behind (maximum_lag_on_failover %d)", lag, o.Settings.MaximumLagOnFailover)
	}
	return true, ""
}

// pendingRequest returns the failover request that still binds who takes
// the free leader key: it names a candidate or a leader, and the key has
// not been free for longer than a ttl.
func pendingRequest(o Observation) *dcs.Failover {
	c := o.Cluster
	f := c.FailoverRequest
	if f == nil || c.Leader != nil || !f.ScheduledAt.IsZero() && f.ScheduledAt.After(o.Now) {
		return nil
	}
	if !o.Memory.LeaderlessSince.IsZero() && o.Now.Sub(o.Memory.LeaderlessSince) > o.Settings.TTL {
		return nil
	}
	return f
}

// candidateAlive: the request's candidate has a member key with PostgreSQL
// running.
func candidateAlive(o Observation, f *dcs.Failover) bool {
	m := o.Cluster.Member(f.Candidate)
	return m != nil && m.State == "running"
}

// decideStandbyRequest is a standby's side of a pending request when the
// leader key is free. ok is false when the normal race applies.
func decideStandbyRequest(o Observation) (Plan, bool) {
	f := pendingRequest(o)
	if f == nil {
		return Plan{}, false
	}
	planned := f.Leader != ""
	if f.Leader == o.Name {
		return plan("this member handed over in a switchover; not racing for the leader key"), true
	}
	if f.Candidate != "" && f.Candidate != o.Name {
		if candidateAlive(o, f) {
			return plan(fmt.Sprintf("switchover to %s in progress; not racing for the leader key", f.Candidate)), true
		}
		return Plan{}, false
	}
	if o.Settings.NoFailover {
		return plan("a switchover names this member, but it is tagged nofailover"), true
	}
	if planned {
		if st := o.Cluster.Status; st != nil && o.PG.WALPosition <= st.Optime {
			p := plan(fmt.Sprintf("switchover: waiting to receive the old primary's WAL up to its shutdown checkpoint %s (have %s)",
				dcs.FormatLSN(st.Optime), dcs.FormatLSN(o.PG.WALPosition)))
			p.WakeAt = o.Now.Add(50 * time.Millisecond)
			return p, true
		}
	}
	if f.Candidate == o.Name {
		if ok, why := mayPromote(o, o.Name); !ok {
			return plan("named by the switchover, but " + why), true
		}
		if o.LeaseID == 0 || !o.Now.Before(o.LeaderUntil) {
			return plan("named by the switchover, but our etcd lease is not fresh"), true
		}
		return plan("named by the switchover/failover request: taking the leader key", act(AcquireLeader)), true
	}
	return Plan{}, false // no candidate: the healthiest races
}

// decideDueRestart plans a scheduled restart whose time has come.
func decideDueRestart(o Observation) (Plan, bool) {
	r := o.Memory.ScheduledRestart
	if r == nil || o.Paused {
		return Plan{}, false
	}
	if d := r.At.Sub(o.Now); d > 0 {
		return Plan{WakeAt: o.Now.Add(d)}, false
	}
	return Plan{Reason: fmt.Sprintf("scheduled restart at %s", r.At.Format(time.RFC3339)),
		Actions: []Action{act(Restart)}, State: "restarting"}, true
}
