package ha

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

var t0 = time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)

const (
	ourLease   = 0x111
	otherLease = 0x222
)

func member(name string, port, tl int, role string) dcs.Member {
	return dcs.Member{Name: name, ConnURL: "postgres://127.0.0.1:" + itoa(port) + "/postgres",
		APIURL: "http://127.0.0.1:" + itoa(port+1000) + "/patroni", State: "running", Role: role, Timeline: tl}
}

func itoa(i int) string { return strconv.Itoa(i) }

func cluster(leader string, lease int64, members ...dcs.Member) *dcs.Cluster {
	c := &dcs.Cluster{Initialized: true, SystemID: "7713459073105036598", Members: members}
	if leader != "" {
		c.Leader = &dcs.Leader{Name: leader, Lease: lease}
	}
	return c
}

func settings() Settings {
	return Settings{TTL: 5 * time.Second, LoopWait: time.Second, RetryTimeout: 2 * time.Second,
		MaximumLagOnFailover: 1 << 20, MaxPrimaryRestarts: 3, StreamingGrace: 10 * time.Second, UsePgRewind: true, UseSlots: true}
}

func primaryPG(wal int64) postgres.State {
	return postgres.State{Running: true, Accepting: true, Timeline: 1, WALPosition: wal, SystemID: "7713459073105036598"}
}

func standbyPG(wal int64, streaming bool) postgres.State {
	return postgres.State{Running: true, Accepting: true, InRecovery: true, Timeline: 1, WALPosition: wal,
		ReceivedLSN: wal, ReplayedLSN: wal, Streaming: streaming, SystemID: "7713459073105036598"}
}

// obs builds an observation of node1 with a fresh lease.
func obs(c *dcs.Cluster, pg postgres.State) Observation {
	return Observation{Now: t0, Name: "node1", Cluster: c, LeaseID: ourLease,
		LeaderUntil: t0.Add(3 * time.Second), PG: pg, Settings: settings(), Memory: Memory{SSNKnown: true}}
}

func kinds(p Plan) []ActionKind {
	var ks []ActionKind
	for _, a := range p.Actions {
		ks = append(ks, a.Kind)
	}
	return ks
}

func TestDecide(t *testing.T) {
	n1 := member("node1", 5441, 1, "replica")
	n2 := member("node2", 5442, 1, "primary")
	n3 := member("node3", 5443, 1, "replica")
	n2tl2 := member("node2", 5442, 2, "primary")

	cases := []struct {
		name   string
		obs    func() Observation
		want   []ActionKind
		reason string // substring of the plan's reason
		source string // expected source member, if any
		mode   string
		state  string
	}{
		{
			name: "uninitialized cluster, empty data dir: race to bootstrap",
			obs: func() Observation {
				o := obs(&dcs.Cluster{}, postgres.State{})
				o.DataDirEmpty = true
				return o
			},
			want: []ActionKind{Bootstrap}, reason: "racing to bootstrap", state: "initializing new cluster",
		},
		{
			name: "another member is bootstrapping: wait",
			obs: func() Observation {
				o := obs(&dcs.Cluster{Initialized: true}, postgres.State{})
				o.DataDirEmpty = true
				return o
			},
			reason: "bootstrapping",
		},
		{
			name: "initialized, empty data dir, leader running: clone from leader",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n2, n3), postgres.State{})
				o.DataDirEmpty = true
				return o
			},
			want: []ActionKind{Clone}, source: "node2", state: "creating replica",
		},
		{
			name: "initialized, empty data dir, a clonefrom replica: clone from it",
			obs: func() Observation {
				m3 := n3
				m3.Tags = map[string]any{"clonefrom": true}
				o := obs(cluster("node2", otherLease, n2, m3), postgres.State{})
				o.DataDirEmpty = true
				return o
			},
			want: []ActionKind{Clone}, source: "node3",
		},
		{
			name: "initialized, empty data dir, no leader: wait",
			obs: func() Observation {
				o := obs(cluster("", 0, n3), postgres.State{})
				o.DataDirEmpty = true
				return o
			},
			reason: "no leader to clone from",
		},
		{
			name: "healthy leader renews",
			obs: func() Observation {
				return obs(cluster("node1", ourLease, n1, n3), primaryPG(100))
			},
			reason: "holds the leader key",
		},
		{
			name: "leader key with our name under an old lease: reclaim",
			obs: func() Observation {
				return obs(cluster("node1", otherLease, n1, n3), primaryPG(100))
			},
			want: []ActionKind{ReclaimLeader},
		},
		{
			name: "primary while another member holds the key: demote at once",
			obs: func() Observation {
				return obs(cluster("node2", otherLease, n1, n2), primaryPG(100))
			},
			want: []ActionKind{Stop}, mode: "immediate", reason: "node2 holds the leader key",
		},
		{
			name: "primary, key gone, our lease belief expired (resumed after SIGSTOP): demote",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), primaryPG(100))
				o.Memory.WasLeader = true
				o.LeaderUntil = t0.Add(-time.Second)
				return o
			},
			want: []ActionKind{Stop}, mode: "immediate", reason: "without a valid leader key",
		},
		{
			name: "primary, key deleted while our lease is fresh: take it back",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), primaryPG(100))
				o.Memory.WasLeader = true
				return o
			},
			want: []ActionKind{AcquireLeader},
		},
		{
			name: "primary that never led (started with old data): demote",
			obs: func() Observation {
				return obs(cluster("", 0, n1, n3), primaryPG(100))
			},
			want: []ActionKind{Stop}, mode: "immediate",
		},
		{
			name: "etcd unreachable, leader with time left: keep primary",
			obs: func() Observation {
				o := obs(nil, primaryPG(100))
				o.Memory.WasLeader = true
				return o
			},
			reason: "staying primary",
		},
		{
			name: "etcd unreachable, leader lease about to expire: demote",
			obs: func() Observation {
				o := obs(nil, primaryPG(100))
				o.Memory.WasLeader = true
				o.Now = o.LeaderUntil
				return o
			},
			want: []ActionKind{Stop}, mode: "immediate", reason: "etcd is unreachable",
		},
		{
			name: "etcd unreachable, replica: keep as is",
			obs: func() Observation {
				return obs(nil, standbyPG(100, true))
			},
			reason: "keeping PostgreSQL",
		},
		{
			name: "replica following the leader: nothing to do",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2), standbyPG(100, true))
				o.Memory.Upstream = "127.0.0.1:5442"
				return o
			},
			reason: "streaming from leader node2",
		},
		{
			name: "replica configured for the old leader: follow the new one",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2), standbyPG(100, true))
				o.Memory.Upstream = "127.0.0.1:5443"
				return o
			},
			want: []ActionKind{Follow}, source: "node2",
		},
		{
			name: "leader free, we are healthiest: race",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.Peers = []Peer{{Name: "node3", Reachable: true, Running: true, Timeline: 1, WAL: 150}}
				return o
			},
			want: []ActionKind{AcquireLeader},
		},
		{
			name: "leader free, equal WAL with peer: race (etcd picks one)",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.Peers = []Peer{{Name: "node3", Reachable: true, Running: true, Timeline: 1, WAL: 200}}
				return o
			},
			want: []ActionKind{AcquireLeader},
		},
		{
			name: "leader free, a peer has more WAL: do not race",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.Peers = []Peer{{Name: "node3", Reachable: true, Running: true, Timeline: 1, WAL: 201}}
				return o
			},
			reason: "node3 has more WAL",
		},
		{
			name: "leader free, unreachable peer is ignored",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.Peers = []Peer{{Name: "node3", Reachable: false}}
				return o
			},
			want: []ActionKind{AcquireLeader},
		},
		{
			name: "leader free, a peer still runs as primary: do not race",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.Peers = []Peer{{Name: "node3", Reachable: true, Running: true, Primary: true, Timeline: 1, WAL: 100}}
				return o
			},
			reason: "still runs PostgreSQL as a primary",
		},
		{
			name: "leader free, a peer on a later timeline: do not race",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.Peers = []Peer{{Name: "node3", Reachable: true, Running: true, Timeline: 2, WAL: 100}}
				return o
			},
			reason: "later timeline",
		},
		{
			name: "leader free, nofailover tag: do not race",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.Settings.NoFailover = true
				return o
			},
			reason: "nofailover",
		},
		{
			name: "leader free, too far behind the last leader position: do not race",
			obs: func() Observation {
				c := cluster("", 0, n1, n3)
				c.Status = &dcs.Status{Optime: 200 + 2<<20}
				return obs(c, standbyPG(200, false))
			},
			reason: "maximum_lag_on_failover",
		},
		{
			name: "leader free, within maximum lag: race",
			obs: func() Observation {
				c := cluster("", 0, n1, n3)
				c.Status = &dcs.Status{Optime: 200 + 1000}
				return obs(c, standbyPG(200, false))
			},
			want: []ActionKind{AcquireLeader},
		},
		{
			name: "leader free, our lease is not fresh: do not race",
			obs: func() Observation {
				o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
				o.LeaderUntil = t0.Add(-time.Millisecond)
				return o
			},
			reason: "lease is not fresh",
		},
		{
			name: "won the race (key is ours, still in recovery): promote",
			obs: func() Observation {
				return obs(cluster("node1", ourLease, n1, n3), standbyPG(200, false))
			},
			want: []ActionKind{Promote},
		},
		{
			name: "standby with our name on a stale key: wait for expiry",
			obs: func() Observation {
				o := obs(cluster("node1", otherLease, n1, n3), standbyPG(200, false))
				return o
			},
			reason: "earlier lease",
		},
		{
			name: "leader's PostgreSQL crashed: restart in place",
			obs: func() Observation {
				return obs(cluster("node1", ourLease, n1, n3), postgres.State{})
			},
			want: []ActionKind{StartPrimary}, reason: "restart attempt 1 of 3", state: "restarting",
		},
		{
			name: "leader's PostgreSQL failed to restart 3 times: release the key",
			obs: func() Observation {
				o := obs(cluster("node1", ourLease, n1, n3), postgres.State{})
				o.Memory.PrimaryRestarts = 3
				return o
			},
			want: []ActionKind{ReleaseLeader}, state: "crashed",
		},
		{
			name: "stopped, no leader: start read-only to race",
			obs: func() Observation {
				return obs(cluster("", 0, n1, n3), postgres.State{})
			},
			want: []ActionKind{StartStandby},
		},
		{
			name: "stopped former standby, leader exists: start as its standby",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "shut down in recovery", CheckpointTLI: 1}
				return o
			},
			want: []ActionKind{StartStandby}, source: "node2",
		},
		{
			name: "stopped former primary, clean shutdown before the fork point: rejoin as standby",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "shut down", CheckpointTLI: 1, CheckpointLSN: 1000}
				o.Switchpoint, o.SwitchpointKnown = 1100, true
				return o
			},
			want: []ActionKind{StartStandby}, source: "node2",
		},
		{
			name: "stopped former primary, WAL past the fork point: rewind",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "shut down", CheckpointTLI: 1, CheckpointLSN: 1200}
				o.Switchpoint, o.SwitchpointKnown = 1100, true
				return o
			},
			want: []ActionKind{Rewind}, source: "node2", reason: "past the leader's fork point", state: "rewinding",
		},
		{
			name: "stopped former primary, crashed (unclean) on an older timeline: rewind",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "in production", CheckpointTLI: 1, CheckpointLSN: 1000}
				return o
			},
			want: []ActionKind{Rewind}, reason: "uncleanly",
		},
		{
			name: "diverged, use_pg_rewind off, removal allowed: re-clone",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "in production", CheckpointTLI: 1, CheckpointLSN: 1000}
				o.Settings.UsePgRewind, o.Settings.RemoveOnDiverged = false, true
				return o
			},
			want: []ActionKind{Reclone}, reason: "remove_data_directory", state: "creating replica",
		},
		{
			name: "diverged, use_pg_rewind off, removal not allowed: stays stopped",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "in production", CheckpointTLI: 1, CheckpointLSN: 1000}
				o.Settings.UsePgRewind = false
				return o
			},
			reason: "staying stopped", state: "diverged",
		},
		{
			name: "pg_rewind failed, removal allowed: re-clone",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "in production", CheckpointTLI: 1, CheckpointLSN: 1000}
				o.Memory.RewindFailed, o.Settings.RemoveOnRewindFailure = "boom", true
				return o
			},
			want: []ActionKind{Reclone},
		},
		{
			name: "pg_rewind failed, removal not allowed: stays stopped",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "in production", CheckpointTLI: 1, CheckpointLSN: 1000}
				o.Memory.RewindFailed = "boom"
				return o
			},
			reason: "pg_rewind failed (boom)", state: "rewind failed",
		},
		{
			name: "told to stay stopped: not started again",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "shut down in recovery", CheckpointTLI: 1}
				o.Memory.StayStopped, o.Memory.StayStoppedState = "pg_rewind failed", "rewind failed"
				return o
			},
			reason: "reinit", state: "rewind failed",
		},
		{
			name: "stopped former primary, same timeline as the leader: rejoin",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2), postgres.State{})
				o.Control = &postgres.ControlData{SystemID: "7713459073105036598", State: "in production", CheckpointTLI: 1}
				return o
			},
			want: []ActionKind{StartStandby},
		},
		{
			name: "standby not streaming past the grace with the leader ahead: rewind",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), standbyPG(200, false))
				o.Memory.Upstream = "127.0.0.1:5442"
				o.Memory.NotStreamingSince = t0.Add(-11 * time.Second)
				return o
			},
			want: []ActionKind{Rewind}, reason: "diverged",
		},
		{
			name: "still not streaming after a rewind, removal not allowed: stop and stay stopped",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), standbyPG(200, false))
				o.Memory.Upstream = "127.0.0.1:5442"
				o.Memory.NotStreamingSince = t0.Add(-11 * time.Second)
				o.Memory.Rewound = true
				return o
			},
			want: []ActionKind{Stop}, reason: "even after pg_rewind", state: "rewind failed",
		},
		{
			name: "standby not streaming within the grace: wait",
			obs: func() Observation {
				o := obs(cluster("node2", otherLease, n1, n2tl2), standbyPG(200, false))
				o.Memory.Upstream = "127.0.0.1:5442"
				o.Memory.NotStreamingSince = t0.Add(-5 * time.Second)
				return o
			},
			reason: "streaming from leader",
		},
		{
			name: "system identifier mismatch: do nothing",
			obs: func() Observation {
				pg := primaryPG(10)
				pg.SystemID = "42"
				return obs(cluster("node2", otherLease, n1, n2), pg)
			},
			reason: "differs", state: "sysid mismatch",
		},
		{
			name: "uninitialized key but we have data and run: take leadership",
			obs: func() Observation {
				return obs(&dcs.Cluster{}, primaryPG(10))
			},
			want: []ActionKind{AcquireLeader},
		},
		{
			name: "uninitialized key, we lead: record our system id",
			obs: func() Observation {
				return obs(&dcs.Cluster{Leader: &dcs.Leader{Name: "node1", Lease: ourLease}}, primaryPG(10))
			},
			want: []ActionKind{WriteInitialize},
		},
		{
			name: "running but not accepting yet: wait",
			obs: func() Observation {
				return obs(cluster("node2", otherLease, n1, n2), postgres.State{Running: true})
			},
			state: "starting",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(tc.obs())
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
			if tc.source != "" {
				var src string
				for _, a := range p.Actions {
					if a.Source != nil {
						src = a.Source.Name
					}
				}
				if src != tc.source {
					t.Errorf("source = %q, want %q", src, tc.source)
				}
			}
			if tc.mode != "" && p.Actions[0].Mode != tc.mode {
				t.Errorf("mode = %q, want %q", p.Actions[0].Mode, tc.mode)
			}
			if tc.state != "" && p.State != tc.state {
				t.Errorf("state = %q, want %q", p.State, tc.state)
			}
		})
	}
}
