package ha

import (
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// Observation is everything Decide may look at, gathered by the loop.
type Observation struct {
	Now  time.Time // monotonic instant of the observation
	Name string    // this member

	// Cluster is the DCS snapshot; nil when etcd could not be read.
	Cluster *dcs.Cluster
	// LeaseID is this member's current etcd lease (0: none).
	LeaseID int64
	// LeaderUntil is the instant before which a leader key bound to our
	// lease is certain to still exist: the start of the last successful
	// lease renewal plus ttl, less a safety margin.
	LeaderUntil time.Time

	PG           postgres.State
	DataDirEmpty bool
	// Control is pg_controldata of a stopped instance (nil when running,
	// empty or unreadable).
	Control *postgres.ControlData
	// Switchpoint is where the leader's history says our timeline ended
	// (gathered only when a stopped former primary must rejoin a leader on
	// a later timeline). SwitchpointKnown is false when it was not asked
	// or could not be read.
	Switchpoint      int64
	SwitchpointKnown bool

	// Peers are the other members' own answers (GET /patroni), asked only
	// when the leader key is free and this member could race for it.
	Peers []Peer

	Settings Settings
	Memory   Memory

	// Paused: the dynamic configuration says pause: true (maintenance
	// mode), or said so at the last read while etcd cannot be read.
	Paused bool

	// Slots are the local server's replication slots (read on a running
	// primary only; SlotsKnown false otherwise).
	Slots      []postgres.Slot
	SlotsKnown bool
	// RetainSlots are members whose slots the leader keeps although they
	// have no member key now (gone for less than member_slots_ttl).
	RetainSlots []string
	// WALGone is the server log line saying the upstream no longer has the
	// WAL this standby needs ("" when there is none since it last
	// streamed).
	WALGone string
}

// Peer is another member's answer about itself.
type Peer struct {
	Name      string
	Reachable bool
	Running   bool
	Primary   bool // runs PostgreSQL as a primary
	Timeline  int
	WAL       int64 // primary: current LSN; replica: max(received, replayed)
}

// Settings are the effective configuration values the decision uses.
type Settings struct {
	TTL                  time.Duration
	LoopWait             time.Duration
	RetryTimeout         time.Duration
	MaximumLagOnFailover int64
	NoFailover           bool
	CloneFrom            bool
	MaxPrimaryRestarts   int           // failed in-place restarts before giving up the leader key
	StreamingGrace       time.Duration // how long a standby may fail to stream before it is re-cloned

	SynchronousMode       bool
	SynchronousModeStrict bool
	SynchronousNodeCount  int
	UseSlots              bool
	PermanentSlots        []string // physical slot names from the configuration's slots
	UsePgRewind           bool
	// RemoveOnRewindFailure and RemoveOnDiverged allow deleting the data
	// directory to clone it again after pg_rewind failed, or when it
	// diverged and pg_rewind may not be used.
	RemoveOnRewindFailure bool
	RemoveOnDiverged      bool
	MemberSlotsTTL        time.Duration
	CheckTimeline         bool
}

// Memory is what the loop remembers between cycles about its own actions.
type Memory struct {
	// WasLeader: this member held the leader key at the end of the last cycle.
	WasLeader bool
	// PrimaryRestarts counts consecutive in-place restart attempts of a
	// crashed primary.
	PrimaryRestarts int
	// Upstream is the "host:port" this standby was configured to stream
	// from ("" for none).
	Upstream string
	// NotStreamingSince is when this standby was first seen running but
	// not streaming from its configured upstream (zero while streaming).
	NotStreamingSince time.Time
	// SysIDMismatch is set once the data directory was found to belong to
	// another cluster.
	SysIDMismatch bool

	// LeaderlessSince is when the leader key was first seen missing (zero
	// while there is a leader). A switchover or failover request names
	// who takes over only for a ttl after that; then anyone may race.
	LeaderlessSince time.Time
	// Demoted: this member stopped its PostgreSQL itself to hand over to
	// a switchover candidate; it may start it again as a standby even in
	// maintenance mode.
	Demoted bool
	// ScheduledRestart is a restart asked for a later time (nil: none).
	ScheduledRestart *ScheduledRestart
	// Reinit: an operator asked to wipe the data directory and clone it
	// again (POST /reinitialize).
	Reinit bool

	// SSN is synchronous_standby_names as this daemon last set it and saw
	// PostgreSQL apply (SSNKnown false before the first time).
	SSN      string
	SSNKnown bool
	// RewindFailed holds why the last pg_rewind failed ("" when it did
	// not); Rewound is set after a rewind until the standby streams.
	RewindFailed string
	Rewound      bool
	// StayStopped, when set, is why PostgreSQL stays stopped until an
	// operator reinitializes this member; StayStoppedState its state.
	StayStopped      string
	StayStoppedState string
	// StartFailures counts consecutive failed starts as a standby.
	StartFailures int
}

// ScheduledRestart is a restart waiting for its time, with the conditions
// it was asked with (checked when it runs).
type ScheduledRestart struct {
	At              time.Time
	RestartPending  bool
	Role            string // "primary", "replica" or "" for any
	PostgresVersion int    // restart only if server_version_num is below; 0 any
	Timeout         time.Duration
	AskedAt         time.Time // a PostgreSQL (re)start after this cancels nothing; kept for /patroni
}
