// Package status holds the member's status as the HA loop last published it.
// The REST API and metrics read it from memory; nothing here does I/O.
package status

import (
	"sync/atomic"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// Node is one published snapshot. It is immutable once published.
type Node struct {
	Name    string
	Scope   string
	Version string // pgwarden version, reported as patroni.version

	// State is the member state in Patroni's words: "running", "stopped",
	// "starting", "stopping", "crashed", "restarting", "creating replica",
	// "initializing new cluster", "running custom bootstrap script",
	// "start failed", "sysid mismatch", ...
	State string
	// Role is "primary", "replica", "demoted" or "uninitialized".
	Role string

	PG postgres.State // last observation of the local instance

	// IsLeader: this node held the leader key at its last renewal, and
	// LeaderUntil is the monotonic instant before which that still holds
	// (last successful lease renewal start + ttl - safety margin).
	IsLeader    bool
	LeaderUntil time.Time

	Cluster     *dcs.Cluster // last snapshot, nil before the first
	DCSLastSeen time.Time    // wall clock of the last successful DCS read
	Published   time.Time    // when this snapshot was published (monotonic)
	TTL         time.Duration
	MaximumLag  int64
	Tags        config.Tags
	Paused      bool
	// PendingRestart: PostgreSQL needs a restart for a changed parameter.
	PendingRestart bool
	// ScheduledRestart is the restart waiting for its time, nil when none.
	ScheduledRestart *ScheduledRestart
}

// ScheduledRestart is a restart asked for a later time (POST /restart with
// "schedule"), with the conditions it was asked with.
type ScheduledRestart struct {
	At                  time.Time
	PostmasterStartTime time.Time // when the restart was scheduled; a restart since cancels it
	RestartPending      bool
	Role                string
	PostgresVersion     int
}

// IsRunningPrimary reports whether the node may answer 200 on /primary at
// instant now: it holds an unexpired leader belief and PostgreSQL runs as a
// primary that accepts connections.
func (n *Node) IsRunningPrimary(now time.Time) bool {
	if n == nil || !n.IsLeader || !now.Before(n.LeaderUntil) {
		return false
	}
	if now.Sub(n.Published) > n.TTL {
		return false
	}
	return n.PG.Running && n.PG.Accepting && !n.PG.InRecovery
}

// Board is the place the loop publishes to and readers load from.
type Board struct{ p atomic.Pointer[Node] }

// Publish replaces the current snapshot.
func (b *Board) Publish(n *Node) { b.p.Store(n) }

// Load returns the current snapshot, or nil before the first publish.
func (b *Board) Load() *Node { return b.p.Load() }
