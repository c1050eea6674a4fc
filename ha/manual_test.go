package ha

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// Decisions about operator requests: the failover key, maintenance mode,
// scheduled restarts and reinitialize.
func TestDecideOperations(t *testing.T) {
	const wal = 100 << 20
	streaming := func(name string, port int, pos int64) dcs.Member {
		m := member(name, port, 1, "replica")
		m.XLogLocation, m.ReceiveLSN, m.ReplicationState = pos, &pos, "streaming"
		return m
	}
	me := member("node1", 5441, 1, "primary")
	n2, n3 := streaming("node2", 5442, wal), streaming("node3", 5443, wal)
	n2old := member("node2", 5442, 1, "replica") // stopped former primary
	n2old.State = "stopped"

	// leaderWith: node1 is the primary holding the key, with request f.
	leaderWith := func(f *dcs.Failover, ms ...dcs.Member) Observation {
		if len(ms) == 0 {
			ms = []dcs.Member{me, n2, n3}
		}
		c := cluster("node1", ourLease, ms...)
		c.FailoverRequest, c.FailoverRevision = f, 7
		return obs(c, primaryPG(wal))
	}
	// standbyWith: node1 is a streaming standby, the leader key is free
	// after node2 handed over at optime.
	standbyWith := func(f *dcs.Failover, myWAL, optime int64, ms ...dcs.Member) Observation {
		if len(ms) == 0 {
			ms = []dcs.Member{streaming("node1", 5441, myWAL), n2old, n3}
		}
		c := cluster("", 0, ms...)
		c.FailoverRequest, c.FailoverRevision = f, 7
		c.Status = &dcs.Status{Optime: optime}
		return obs(c, standbyPG(myWAL, false))
	}
	nofail := n2
	nofail.Tags = map[string]any{"nofailover": true}
	lagging := streaming("node2", 5442, wal-(2<<20))
	down := n2
	down.State = "stopped"

	cases := []struct {
		name   string
		obs    func() Observation
		want   []ActionKind
		reason string
		wakeIn time.Duration // expected WakeAt - Now, when set
		state  string
	}{
		{name: "switchover to a healthy candidate: demote",
			obs:  func() Observation { return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2"}) },
			want: []ActionKind{Demote}, reason: "switchover to node2", state: "stopping"},
		{name: "switchover without candidate, a standby is eligible: demote",
			obs:  func() Observation { return leaderWith(&dcs.Failover{Leader: "node1"}) },
			want: []ActionKind{Demote}, reason: "healthiest standby"},
		{name: "failover request (no leader named) to a healthy candidate while we lead: demote",
			obs:  func() Observation { return leaderWith(&dcs.Failover{Candidate: "node3"}) },
			want: []ActionKind{Demote}, reason: "node3"},
		{name: "request to move away from another leader: cleared",
			obs:  func() Observation { return leaderWith(&dcs.Failover{Leader: "node9", Candidate: "node2"}) },
			want: []ActionKind{ClearFailover}, reason: "node9"},
		{name: "candidate is already the leader: cleared",
			obs:  func() Observation { return leaderWith(&dcs.Failover{Candidate: "node1"}) },
			want: []ActionKind{ClearFailover}, reason: "already the leader"},
		{name: "unknown candidate: cleared",
			obs:  func() Observation { return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "nosuch"}) },
			want: []ActionKind{ClearFailover}, reason: "no member key"},
		{name: "candidate tagged nofailover: cleared",
			obs: func() Observation {
				return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2"}, me, nofail, n3)
			},
			want: []ActionKind{ClearFailover}, reason: "nofailover"},
		{name: "candidate lagging beyond maximum_lag_on_failover: cleared",
			obs: func() Observation {
				return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2"}, me, lagging, n3)
			},
			want: []ActionKind{ClearFailover}, reason: "lags"},
		{name: "candidate not running: cleared",
			obs: func() Observation {
				return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2"}, me, down, n3)
			},
			want: []ActionKind{ClearFailover}, reason: "state"},
		{name: "no candidate and no eligible standby: cleared",
			obs:  func() Observation { return leaderWith(&dcs.Failover{Leader: "node1"}, me, down, nofail) },
			want: []ActionKind{ClearFailover}, reason: "no other member"},
		{name: "scheduled in the future: wait, wake at its time",
			obs: func() Observation {
				return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2", ScheduledAt: t0.Add(90 * time.Second)})
			},
			reason: "scheduled", wakeIn: 90 * time.Second},
		{name: "scheduled time has come: demote",
			obs: func() Observation {
				return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2", ScheduledAt: t0.Add(-time.Second)})
			},
			want: []ActionKind{Demote}},
		{name: "scheduled time long missed: cleared as stale",
			obs: func() Observation {
				return leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2", ScheduledAt: t0.Add(-time.Minute)})
			},
			want: []ActionKind{ClearFailover}, reason: "missed"},
		{name: "scheduled switchover in maintenance mode: not run",
			obs: func() Observation {
				o := leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2", ScheduledAt: t0.Add(-time.Second)})
				o.Paused = true
				return o
			},
			reason: "maintenance"},
		{name: "maintenance mode, switchover without candidate: cleared",
			obs: func() Observation {
				o := leaderWith(&dcs.Failover{Leader: "node1"})
				o.Paused = true
				return o
			},
			want: []ActionKind{ClearFailover}, reason: "needs a candidate"},
		{name: "maintenance mode, switchover with candidate: demote",
			obs: func() Observation {
				o := leaderWith(&dcs.Failover{Leader: "node1", Candidate: "node2"})
				o.Paused = true
				return o
			},
			want: []ActionKind{Demote}},

		{name: "candidate with the shutdown checkpoint: takes the leader key",
			obs: func() Observation {
				return standbyWith(&dcs.Failover{Leader: "node2", Candidate: "node1"}, wal+200, wal+100)
			},
			want: []ActionKind{AcquireLeader}, reason: "named by the switchover"},
		{name: "candidate still missing the shutdown checkpoint: waits briefly",
			obs: func() Observation {
				return standbyWith(&dcs.Failover{Leader: "node2", Candidate: "node1"}, wal+100, wal+100)
			},
			reason: "shutdown checkpoint", wakeIn: 50 * time.Millisecond},
		{name: "failover (no leader named) to us: no checkpoint to wait for",
			obs:  func() Observation { return standbyWith(&dcs.Failover{Candidate: "node1"}, wal, wal+100) },
			want: []ActionKind{AcquireLeader}},
		{name: "another live candidate is named: do not race",
			obs: func() Observation {
				return standbyWith(&dcs.Failover{Leader: "node2", Candidate: "node3"}, wal+200, wal+100)
			},
			reason: "in progress"},
		{name: "the named candidate is gone: the healthiest races",
			obs: func() Observation {
				return standbyWith(&dcs.Failover{Leader: "node2", Candidate: "node3"}, wal+200, wal+100, streaming("node1", 5441, wal+200), n2old)
			},
			want: []ActionKind{AcquireLeader}, reason: "healthiest"},
		{name: "the member that handed over does not race",
			obs: func() Observation {
				o := standbyWith(&dcs.Failover{Leader: "node1"}, wal+200, wal+100)
				return o
			},
			reason: "handed over"},
		{name: "request older than a ttl without a leader: ignored, the healthiest races",
			obs: func() Observation {
				o := standbyWith(&dcs.Failover{Leader: "node2", Candidate: "node3"}, wal+200, wal+100)
				o.Memory.LeaderlessSince = t0.Add(-6 * time.Second)
				return o
			},
			want: []ActionKind{AcquireLeader}},
		{name: "switchover without candidate: standbys wait for the shutdown checkpoint",
			obs:    func() Observation { return standbyWith(&dcs.Failover{Leader: "node2"}, wal+100, wal+100) },
			reason: "shutdown checkpoint"},
		{name: "maintenance mode, free leader key: no automatic failover",
			obs: func() Observation {
				o := standbyWith(nil, wal+200, wal+100)
				o.Paused = true
				return o
			},
			reason: "maintenance"},
		{name: "maintenance mode, manual failover to us: allowed",
			obs: func() Observation {
				o := standbyWith(&dcs.Failover{Candidate: "node1"}, wal+200, wal+100)
				o.Paused = true
				return o
			},
			want: []ActionKind{AcquireLeader}},

		{name: "maintenance mode, PostgreSQL stopped on the leader: release the key, no restart",
			obs: func() Observation {
				o := obs(cluster("node1", ourLease, me, n2), postgres.State{})
				o.Paused = true
				return o
			},
			want: []ActionKind{ReleaseLeader}, reason: "without restarting"},
		{name: "maintenance mode, stopped standby: not started",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, member("node2", 5442, 1, "primary")), postgres.State{})
				o.Paused = true
				return o
			},
			reason: "not started automatically", state: "stopped"},
		{name: "maintenance mode, stopped after our own switchover demotion: started as standby",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, member("node2", 5442, 1, "primary")), postgres.State{})
				o.Paused, o.Memory.Demoted = true, true
				return o
			},
			want: []ActionKind{StartStandby}},
		{name: "demoted, leader key still free: wait for the candidate",
			obs: func() Observation {
				c := cluster("", 0, member("node1", 5441, 1, "replica"), n2)
				c.FailoverRequest = &dcs.Failover{Leader: "node1", Candidate: "node2"}
				o := obs(c, postgres.State{})
				o.Memory.Demoted = true
				return o
			},
			reason: "waiting for the new leader", state: "stopped"},
		{name: "maintenance mode, primary while another holds the key: not demoted",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, me, member("node2", 5442, 1, "primary")), primaryPG(wal))
				o.Paused = true
				return o
			},
			reason: "not demoting"},
		{name: "maintenance mode, running primary, free key: takes it",
			obs: func() Observation {
				o := obs(cluster("", 0, me, n2), primaryPG(wal))
				o.Paused = true
				return o
			},
			want: []ActionKind{AcquireLeader}},
		{name: "maintenance mode, etcd unreachable, lease run out: PostgreSQL left alone",
			obs: func() Observation {
				o := obs(nil, primaryPG(wal))
				o.Paused, o.Memory.WasLeader, o.LeaderUntil = true, true, t0.Add(-time.Second)
				return o
			},
			reason: "maintenance"},

		{name: "scheduled restart due: restart",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, member("node2", 5442, 1, "primary")), standbyPG(wal, true))
				o.Memory.Upstream = "127.0.0.1:5442"
				o.Memory.ScheduledRestart = &ScheduledRestart{At: t0.Add(-time.Second)}
				return o
			},
			want: []ActionKind{Restart}, state: "restarting"},
		{name: "scheduled restart later: wake at its time",
			obs: func() Observation {
				o := leaderWith(nil)
				o.Memory.ScheduledRestart = &ScheduledRestart{At: t0.Add(30 * time.Second)}
				return o
			},
			wakeIn: 30 * time.Second},
		{name: "scheduled restart in maintenance mode: not run",
			obs: func() Observation {
				o := leaderWith(nil)
				o.Paused = true
				o.Memory.ScheduledRestart = &ScheduledRestart{At: t0.Add(-time.Second)}
				return o
			}},
		{name: "reinitialize requested on a standby: reinitialize from the leader",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, member("node2", 5442, 1, "primary")), standbyPG(wal, true))
				o.Memory.Reinit = true
				return o
			},
			want: []ActionKind{Reinitialize}, state: "creating replica"},
		{name: "a standby that failed to start three times: rewind instead of starting again",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, member("node2", 5442, 1, "primary")), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "shut down in recovery", CheckpointTLI: 1}
				o.Memory.StartFailures = 3
				return o
			},
			want: []ActionKind{Rewind}, reason: "failed to start"},
		{name: "a standby on a timeline older than the history key's: does not race",
			obs: func() Observation {
				o := standbyWith(nil, wal+200, wal+100)
				o.Cluster.HistoryEntries = []dcs.HistoryEntry{{Timeline: 1, LSN: 10}}
				o.Settings.CheckTimeline = true
				return o
			},
			reason: "older than the cluster's timeline 2"},
		{name: "the leader no longer has our WAL, removal not allowed: stop and stay stopped",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, member("node2", 5442, 1, "primary")), standbyPG(wal, false))
				o.Memory.Upstream = "127.0.0.1:5442"
				o.WALGone = "FATAL: requested WAL segment 000000010000000000000003 has already been removed"
				return o
			},
			want: []ActionKind{Stop}, reason: "no longer has the WAL", state: "WAL missing"},
		{name: "the leader no longer has our WAL, removal allowed: re-clone",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, member("node2", 5442, 1, "primary")), standbyPG(wal, false))
				o.Memory.Upstream = "127.0.0.1:5442"
				o.WALGone = "FATAL: requested WAL segment 000000010000000000000003 has already been removed"
				o.Settings.RemoveOnRewindFailure = true
				return o
			},
			want: []ActionKind{Reclone}},
		{name: "reinitialize requested on the leader: ignored",
			obs: func() Observation {
				o := leaderWith(nil)
				o.Memory.Reinit = true
				return o
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.obs()
			p := Decide(o)
			got := kinds(p)
			if len(got) != len(tc.want) {
				t.Fatalf("actions = %v, want %v (plan: %s)", got, tc.want, p)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("actions = %v, want %v (plan: %s)", got, tc.want, p)
				}
			}
			if tc.reason != "" && !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", p.Reason, tc.reason)
			}
			if tc.state != "" && p.State != tc.state {
				t.Errorf("state = %q, want %q", p.State, tc.state)
			}
			if tc.wakeIn != 0 && !p.WakeAt.Equal(o.Now.Add(tc.wakeIn)) {
				t.Errorf("wake at %v, want now + %s", p.WakeAt, tc.wakeIn)
			}
			for _, a := range p.Actions {
				if a.Kind == ClearFailover && a.Revision != 7 {
					t.Errorf("clear-failover with revision %d, want the key's 7", a.Revision)
				}
			}
		})
	}
}

func TestDataProblem(t *testing.T) {
	for msg, want := range map[string]bool{
		`could not bind IPv4 address "127.0.0.1": Address already in use`:                 false,
		`FATAL:  invalid value for parameter "shared_buffers"`:                            false,
		`FATAL:  requested timeline 3 is not a child of this server's history`:            true,
		`FATAL:  could not locate a valid checkpoint record`:                              true,
		`FATAL:  requested WAL segment 000000010000000000000003 has already been removed`: true,
	} {
		if got := dataProblem(errors.New(msg)); got != want {
			t.Errorf("dataProblem(%q) = %v, want %v", msg, got, want)
		}
	}
}
