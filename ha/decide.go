package ha

import (
	"fmt"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// Decide turns one observation into a plan. It must not block, do I/O or
// read a clock: everything it needs is in o.
func Decide(o Observation) Plan {
	if o.Cluster == nil {
		return decideWithoutDCS(o)
	}
	c := o.Cluster

	if o.Memory.SysIDMismatch {
		return Plan{Reason: "the data directory belongs to another cluster (system identifier mismatch); not touching it", State: "sysid mismatch"}
	}

	if !c.Initialized {
		return decideUninitialized(o)
	}
	if c.SystemID == "" {
		if o.DataDirEmpty {
			return Plan{Reason: "another member is bootstrapping the cluster", State: "stopped"}
		}
	}

	if o.DataDirEmpty {
		src := cloneSource(o)
		if src == nil {
			return Plan{Reason: "no leader to clone from yet", State: "stopped"}
		}
		return Plan{Reason: fmt.Sprintf("data directory is empty; cloning from %s", src.Name),
			Actions: []Action{{Kind: Clone, Source: src}}, State: "creating replica"}
	}

	if c.SystemID != "" {
		if local := localSysID(o); local != "" && local != c.SystemID {
			return Plan{Reason: fmt.Sprintf("system identifier %s of the data directory differs from the cluster's %s", local, c.SystemID), State: "sysid mismatch"}
		}
	}

	if o.Memory.Reinit && !holdsLeader(o) {
		if src := cloneSource(o); src != nil {
			return Plan{Reason: fmt.Sprintf("reinitialize requested: removing the data directory and cloning from %s", src.Name),
				Actions: []Action{{Kind: Reinitialize, Source: src}}, State: "creating replica"}
		}
	}

	if !o.PG.Running {
		return decideStopped(o)
	}
	if !o.PG.Accepting {
		return Plan{Reason: "PostgreSQL is running but not accepting connections yet", State: "starting"}
	}
	var p Plan
	if o.PG.InRecovery {
		p = decideStandby(o)
	} else {
		p = decidePrimary(o)
	}
	if len(p.Actions) == 0 {
		if r, due := decideDueRestart(o); due {
			return r
		} else if !r.WakeAt.IsZero() && (p.WakeAt.IsZero() || r.WakeAt.Before(p.WakeAt)) {
			p.WakeAt = r.WakeAt
		}
	}
	return p
}

// holdsLeader reports whether the snapshot shows the leader key bound to
// our current lease, and our belief in it has not expired.
func holdsLeader(o Observation) bool {
	l := o.Cluster.Leader
	return l != nil && l.Name == o.Name && o.LeaseID != 0 && l.Lease == o.LeaseID && o.Now.Before(o.LeaderUntil)
}

// ourStaleLeaderKey: the leader key has our name but another lease (a
// previous run of this daemon), and our own lease is fresh.
func ourStaleLeaderKey(o Observation) bool {
	l := o.Cluster.Leader
	return l != nil && l.Name == o.Name && o.LeaseID != 0 && l.Lease != o.LeaseID && o.Now.Before(o.LeaderUntil)
}

func otherLeader(o Observation) *dcs.Member {
	l := o.Cluster.Leader
	if l == nil || l.Name == o.Name {
		return nil
	}
	return o.Cluster.Member(l.Name)
}

func decideWithoutDCS(o Observation) Plan {
	if o.Paused {
		return plan("etcd is unreachable; maintenance mode: keeping PostgreSQL as it is")
	}
	if o.PG.Running && !o.PG.InRecovery && o.Memory.WasLeader {
		if !o.Now.Before(o.LeaderUntil) {
			return plan("etcd is unreachable and the leader lease may expire: demoting so no two primaries accept writes",
				Action{Kind: Stop, Mode: "immediate"})
		}
		return plan("etcd is unreachable; staying primary while the leader lease is still certainly ours")
	}
	return plan("etcd is unreachable; keeping PostgreSQL as it is")
}

func decideUninitialized(o Observation) Plan {
	c := o.Cluster
	if o.DataDirEmpty {
		if c.Leader != nil {
			return Plan{Reason: "a leader exists but the cluster is not initialized; waiting", State: "stopped"}
		}
		return Plan{Reason: "cluster is not initialized; racing to bootstrap it",
			Actions: []Action{act(Bootstrap)}, State: "initializing new cluster"}
	}
	// We have data but the cluster has no initialize key (it was removed,
	// or this is the first pgwarden on an existing database).
	if !o.PG.Running {
		return plan("cluster is not initialized and PostgreSQL is stopped; starting it read-only to learn its position",
			Action{Kind: StartStandby})
	}
	if holdsLeader(o) {
		return plan("recording our system identifier as the cluster's", act(WriteInitialize))
	}
	if c.Leader == nil && o.PG.Accepting {
		return plan("cluster is not initialized; taking leadership with the existing data", act(AcquireLeader))
	}
	return plan("cluster is not initialized; waiting for the leader to record it")
}

func decideStopped(o Observation) Plan {
	c := o.Cluster
	if holdsLeader(o) {
		if o.Paused {
			return Plan{Reason: "maintenance mode: PostgreSQL is not running on the leader; releasing the leader key without restarting it",
				Actions: []Action{act(ReleaseLeader)}, State: "stopped"}
		}
		if o.Memory.PrimaryRestarts < o.Settings.MaxPrimaryRestarts {
			return Plan{Reason: fmt.Sprintf("PostgreSQL is not running on the leader; restart attempt %d of %d",
				o.Memory.PrimaryRestarts+1, o.Settings.MaxPrimaryRestarts),
				Actions: []Action{act(StartPrimary)}, State: "restarting"}
		}
		return Plan{Reason: fmt.Sprintf("PostgreSQL failed to restart %d times; releasing the leader key so a replica takes over",
			o.Memory.PrimaryRestarts), Actions: []Action{act(ReleaseLeader)}, State: "crashed"}
	}
	if o.Paused && !o.Memory.Demoted {
		return Plan{Reason: "maintenance mode: PostgreSQL is stopped and is not started automatically", State: "stopped"}
	}
	if o.Memory.StayStopped != "" {
		return Plan{Reason: o.Memory.StayStopped + " (POST /reinitialize or pgwardenctl reinit clones it again)", State: o.Memory.StayStoppedState}
	}
	leader := otherLeader(o)
	if leader == nil {
		if f := pendingRequest(o); f != nil && (f.Leader == o.Name || f.Candidate != "" && f.Candidate != o.Name && candidateAlive(o, f)) {
			return Plan{Reason: "switchover: waiting for the new leader to take the leader key", State: "stopped"}
		}
		if c.Leader != nil && c.Leader.Name != o.Name {
			return Plan{Reason: fmt.Sprintf("leader %s has no member key; waiting", c.Leader.Name), State: "stopped"}
		}
		return Plan{Reason: "no leader; starting PostgreSQL read-only so this member can race for leadership",
			Actions: []Action{{Kind: StartStandby}}, State: "starting"}
	}
	src := sourceOf(leader)
	if src == nil {
		return Plan{Reason: fmt.Sprintf("leader %s has no usable conn_url; waiting", leader.Name), State: "stopped"}
	}
	if diverged, why := hasDiverged(o, leader); diverged {
		return decideDiverged(o, src, why)
	}
	if o.Memory.StartFailures >= maxStartFailures {
		// Something in the data directory keeps PostgreSQL from starting
		// (a timeline it cannot follow, WAL it cannot find): rewinding or
		// cloning is the way out, not starting it again forever.
		return decideDiverged(o, src, fmt.Sprintf("PostgreSQL failed to start as a standby %d times in a row", o.Memory.StartFailures))
	}
	return Plan{Reason: fmt.Sprintf("starting as a standby of leader %s", leader.Name),
		Actions: []Action{{Kind: StartStandby, Source: src}}, State: "starting"}
}

// maxStartFailures is how many failed starts as a standby in a row make a
// member rewind or re-clone instead of trying again.
const maxStartFailures = 3

// decideDiverged chooses how a member whose WAL cannot follow the leader
// comes back: pg_rewind when allowed and not failed already (or not
// already tried without streaming afterwards); otherwise a fresh clone
// if the configuration allows removing the data directory; otherwise it
// stays stopped and says why. It never loops.
func decideDiverged(o Observation, src *Source, why string) Plan {
	stop := func(reason, state string) Plan {
		p := Plan{Reason: reason, State: state, StayStopped: true}
		if o.PG.Running {
			p.Actions = []Action{{Kind: Stop, Mode: "fast"}}
		}
		return p
	}
	if o.Settings.UsePgRewind && o.Memory.RewindFailed == "" && !o.Memory.Rewound {
		return Plan{Reason: fmt.Sprintf("%s; rewinding with pg_rewind from %s", why, src.Name),
			Actions: []Action{{Kind: Rewind, Source: src}}, State: "rewinding"}
	}
	switch {
	case o.Memory.RewindFailed != "" && o.Settings.RemoveOnRewindFailure,
		o.Memory.Rewound && o.Settings.RemoveOnRewindFailure,
		!o.Settings.UsePgRewind && o.Settings.RemoveOnDiverged:
		return Plan{Reason: fmt.Sprintf("%s; removing the data directory and cloning from %s (allowed by remove_data_directory_on_*)", why, src.Name),
			Actions: []Action{{Kind: Reclone, Source: src}}, State: "creating replica"}
	case o.Memory.RewindFailed != "":
		return stop(fmt.Sprintf("%s; pg_rewind failed (%s) and remove_data_directory_on_rewind_failure is off: staying stopped", why, o.Memory.RewindFailed), "rewind failed")
	case o.Memory.Rewound:
		return stop(fmt.Sprintf("%s even after pg_rewind, and remove_data_directory_on_rewind_failure is off: staying stopped", why), "rewind failed")
	default:
		return stop(fmt.Sprintf("%s; use_pg_rewind is off and remove_data_directory_on_diverged_timelines is off: staying stopped", why), "diverged")
	}
}

// hasDiverged decides whether a stopped instance can stream from leader
// as it is. A former standby can (PostgreSQL follows timeline switches
// that happened after its position); a former primary only if it shut
// down cleanly before the point where the leader's timeline forked off.
func hasDiverged(o Observation, leader *dcs.Member) (bool, string) {
	cd := o.Control
	if cd == nil {
		return false, ""
	}
	switch cd.State {
	case "shut down in recovery", "in archive recovery":
		return false, ""
	}
	if leader.Timeline == 0 || cd.CheckpointTLI >= leader.Timeline {
		return false, "" // same timeline: nothing forked
	}
	if cd.State != "shut down" {
		return true, fmt.Sprintf("this former primary stopped uncleanly (%s) on timeline %d while the leader is on timeline %d", cd.State, cd.CheckpointTLI, leader.Timeline)
	}
	if !o.SwitchpointKnown {
		return true, fmt.Sprintf("could not read where timeline %d ended on the leader", cd.CheckpointTLI)
	}
	if cd.CheckpointLSN >= o.Switchpoint {
		return true, fmt.Sprintf("local WAL (checkpoint at %s) goes past the leader's fork point %s",
			dcs.FormatLSN(cd.CheckpointLSN), dcs.FormatLSN(o.Switchpoint))
	}
	return false, ""
}

func decideStandby(o Observation) Plan {
	c := o.Cluster
	if holdsLeader(o) {
		return Plan{Reason: "this member holds the leader key; promoting", Actions: []Action{act(Promote)}, State: "promoting"}
	}
	if leader := otherLeader(o); leader != nil {
		src := sourceOf(leader)
		if src == nil {
			return plan(fmt.Sprintf("leader %s has no usable conn_url; waiting", leader.Name))
		}
		want := fmt.Sprintf("%s:%d", src.Host, src.Port)
		if o.Memory.Upstream != want {
			return plan(fmt.Sprintf("following new leader %s", leader.Name), Action{Kind: Follow, Source: src})
		}
		if !o.PG.Streaming && o.WALGone != "" {
			why := fmt.Sprintf("%s no longer has the WAL this standby needs (%s)", leader.Name, o.WALGone)
			if o.Settings.RemoveOnRewindFailure || o.Settings.RemoveOnDiverged {
				return Plan{Reason: why + "; removing the data directory and cloning again (allowed by remove_data_directory_on_*)",
					Actions: []Action{{Kind: Reclone, Source: src}}, State: "creating replica"}
			}
			return Plan{Reason: why + "; remove_data_directory_on_rewind_failure is off: staying stopped",
				Actions: []Action{{Kind: Stop, Mode: "fast"}}, State: "WAL missing", StayStopped: true}
		}
		if !o.PG.Streaming && !o.Memory.NotStreamingSince.IsZero() && o.Settings.StreamingGrace > 0 &&
			o.Now.Sub(o.Memory.NotStreamingSince) >= o.Settings.StreamingGrace && leader.Timeline > o.PG.Timeline {
			return decideDiverged(o, src, fmt.Sprintf("not streaming from %s for %s and its timeline %d is ahead of ours (%d): our WAL diverged",
				leader.Name, o.Now.Sub(o.Memory.NotStreamingSince).Round(100e6), leader.Timeline, o.PG.Timeline))
		}
		return plan(fmt.Sprintf("streaming from leader %s", leader.Name))
	}
	if c.Leader != nil && c.Leader.Name == o.Name {
		// Our name but not our lease (or our belief expired): it will expire.
		return plan("leader key carries our name from an earlier lease; waiting for it to expire")
	}
	if c.Leader != nil {
		return plan(fmt.Sprintf("leader %s has no member key; waiting", c.Leader.Name))
	}
	if p, ok := decideStandbyRequest(o); ok {
		return p
	}
	if o.Paused {
		return plan("the leader key is free, but maintenance mode allows no automatic failover")
	}
	if f := pendingRequest(o); f != nil && f.Leader != "" {
		// A switchover without a candidate: the healthiest races, but only
		// with everything the old primary wrote.
		if st := c.Status; st != nil && o.PG.WALPosition <= st.Optime {
			p := plan(fmt.Sprintf("switchover: waiting to receive the old primary's WAL up to its shutdown checkpoint %s", dcs.FormatLSN(st.Optime)))
			p.WakeAt = o.Now.Add(50 * time.Millisecond)
			return p
		}
	}
	if ok, why := healthiest(o); !ok {
		return plan("leader key is free but this member may not take it: " + why)
	}
	return plan("leader key is free and this member is the healthiest; racing for it", act(AcquireLeader))
}

// clusterTimeline is the newest timeline the history key knows of (0 when
// none): the last promotion ended timeline N and started N+1.
func clusterTimeline(c *dcs.Cluster) int {
	tl := 0
	for _, h := range c.HistoryEntries {
		tl = max(tl, h.Timeline+1)
	}
	return tl
}

// healthiest decides whether this standby may race for the leader key.
func healthiest(o Observation) (bool, string) {
	if o.Settings.NoFailover {
		return false, "tagged nofailover"
	}
	if o.LeaseID == 0 || !o.Now.Before(o.LeaderUntil) {
		return false, "our etcd lease is not fresh"
	}
	if ok, why := mayPromote(o, o.Name); !ok {
		return false, why
	}
	if tl := clusterTimeline(o.Cluster); o.Settings.CheckTimeline && tl > 0 && o.PG.Timeline > 0 && o.PG.Timeline < tl {
		return false, fmt.Sprintf("on timeline %d, older than the cluster's timeline %d (history key)", o.PG.Timeline, tl)
	}
	my := o.PG.WALPosition
	if st := o.Cluster.Status; st != nil && o.Settings.MaximumLagOnFailover >= 0 && st.Optime-my > o.Settings.MaximumLagOnFailover {
		return false, fmt.Sprintf("%d bytes behind the last known leader position %s (maximum_lag_on_failover %d)",
			st.Optime-my, dcs.FormatLSN(st.Optime), o.Settings.MaximumLagOnFailover)
	}
	for _, p := range o.Peers {
		if !p.Reachable || p.Name == o.Name {
			continue
		}
		if p.Running && p.Primary {
			return false, fmt.Sprintf("member %s still runs PostgreSQL as a primary", p.Name)
		}
		if ok, _ := mayPromote(o, p.Name); !ok {
			continue // it may not be promoted: its WAL does not compete
		}
		if p.Timeline > o.PG.Timeline && p.Timeline > 0 && o.PG.Timeline > 0 {
			return false, fmt.Sprintf("member %s is on a later timeline (%d > %d)", p.Name, p.Timeline, o.PG.Timeline)
		}
		if p.WAL > my {
			return false, fmt.Sprintf("member %s has more WAL (%s > %s)", p.Name, dcs.FormatLSN(p.WAL), dcs.FormatLSN(my))
		}
	}
	return true, ""
}

func decidePrimary(o Observation) Plan {
	c := o.Cluster
	if holdsLeader(o) {
		if p, ok := decideLeaderRequest(o); ok {
			return p
		}
		return leaderUpkeep(o)
	}
	if ourStaleLeaderKey(o) {
		return plan("the leader key carries our name under an earlier lease; rebinding it to ours", act(ReclaimLeader))
	}
	if leader := otherLeader(o); leader != nil || (c.Leader != nil && c.Leader.Name != o.Name) {
		name := c.Leader.Name
		if o.Paused {
			return plan(fmt.Sprintf("maintenance mode: PostgreSQL runs as primary while %s holds the leader key; not demoting it", name))
		}
		return Plan{Reason: fmt.Sprintf("PostgreSQL runs as primary but %s holds the leader key: demoting at once", name),
			Actions: []Action{{Kind: Stop, Mode: "immediate"}}, State: "stopping"}
	}
	// No leader key, or our name with an expired belief.
	if o.Paused && c.Leader == nil && o.LeaseID != 0 && o.Now.Before(o.LeaderUntil) {
		return plan("maintenance mode: the running primary takes the free leader key", act(AcquireLeader))
	}
	if o.Memory.WasLeader && o.LeaseID != 0 && o.Now.Before(o.LeaderUntil) {
		return plan("the leader key vanished while our lease is fresh; taking it back", act(AcquireLeader))
	}
	return Plan{Reason: "PostgreSQL runs as primary without a valid leader key: demoting at once",
		Actions: []Action{{Kind: Stop, Mode: "immediate"}}, State: "stopping"}
}

func localSysID(o Observation) string {
	if o.PG.SystemID != "" {
		return o.PG.SystemID
	}
	if o.Control != nil {
		return o.Control.SystemID
	}
	return ""
}

// cloneSource picks where an empty member copies its data from: a running
// streaming member tagged clonefrom if any, else the leader.
func cloneSource(o Observation) *Source {
	c := o.Cluster
	for i := range c.Members {
		m := &c.Members[i]
		if m.Name == o.Name || c.Leader == nil || m.Name == c.Leader.Name {
			continue
		}
		if cf, _ := m.Tags["clonefrom"].(bool); cf && m.State == "running" {
			if s := sourceOf(m); s != nil {
				return s
			}
		}
	}
	if leader := otherLeader(o); leader != nil && leader.State == "running" {
		return sourceOf(leader)
	}
	return nil
}

func sourceOf(m *dcs.Member) *Source {
	host, port, err := dcs.ParseConnURL(m.ConnURL)
	if err != nil || host == "" || port == 0 {
		return nil
	}
	return &Source{Name: m.Name, ConnInfo: postgres.ConnInfo{Host: host, Port: port}}
}
