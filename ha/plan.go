package ha

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// ActionKind is one kind of effect the loop knows how to perform.
type ActionKind int

const (
	// Bootstrap races for the initialize key; the winner runs initdb,
	// starts as primary, takes the leader key and records the system id.
	Bootstrap ActionKind = iota + 1
	// Clone copies the data directory from Source with pg_basebackup and
	// starts as its standby.
	Clone
	// Reclone stops PostgreSQL if it runs, moves the data directory aside
	// (never deletes it), then clones from Source.
	Reclone
	// AcquireLeader tries to create the leader key with our lease.
	AcquireLeader
	// ReclaimLeader rebinds a leader key holding our name to our lease
	// (after a daemon restart while PostgreSQL kept running).
	ReclaimLeader
	// ReleaseLeader deletes the leader key if it is ours.
	ReleaseLeader
	// WriteInitialize records our system identifier in the initialize key.
	WriteInitialize
	// Promote runs pg_promote().
	Promote
	// StartPrimary starts PostgreSQL configured as a primary.
	StartPrimary
	// StartStandby starts PostgreSQL as a standby of Source (nil: no
	// upstream, replay only).
	StartStandby
	// Follow points a running standby at Source.
	Follow
	// Stop stops PostgreSQL with Mode ("fast" or "immediate").
	Stop
	// Demote hands the primary over to a switchover candidate: CHECKPOINT
	// while still writable (so the shutdown checkpoint is short), stop
	// fast (the walsenders send every record, the shutdown checkpoint
	// included, before the postmaster exits), then in one etcd
	// transaction record the shutdown checkpoint in the status key and
	// delete the leader key.
	Demote
	// ClearFailover writes {} to the failover key if it is still at
	// Revision (a request that was done, refused or went stale).
	ClearFailover
	// Restart restarts PostgreSQL in place in its current role (a
	// scheduled restart whose time has come); it checks the restart's
	// conditions first.
	Restart
	// Reinitialize stops PostgreSQL, removes the data directory and
	// clones it again from Source (operator request).
	Reinitialize
	// Rewind stops PostgreSQL if it runs, runs pg_rewind against Source
	// and starts as its standby.
	Rewind
	// CreateSlots and DropSlots create or drop the physical replication
	// slots Names.
	CreateSlots
	DropSlots
	// SetSyncKey writes Sync to the sync key if it is still at Revision.
	SetSyncKey
	// SetSyncNames sets synchronous_standby_names to Value and waits until
	// PostgreSQL applied it.
	SetSyncNames
)

var kindNames = map[ActionKind]string{
	Bootstrap: "bootstrap", Clone: "clone", Reclone: "reclone",
	AcquireLeader: "acquire-leader", ReclaimLeader: "reclaim-leader",
	ReleaseLeader: "release-leader", WriteInitialize: "write-initialize",
	Promote: "promote", StartPrimary: "start-primary",
	StartStandby: "start-standby", Follow: "follow", Stop: "stop",
	Demote: "demote", ClearFailover: "clear-failover", Restart: "restart",
	Reinitialize: "reinitialize", Rewind: "rewind", CreateSlots: "create-slots",
	DropSlots: "drop-slots", SetSyncKey: "set-sync-key", SetSyncNames: "set-synchronous-standby-names",
}

func (k ActionKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("action(%d)", int(k))
}

// Action is one effect with its parameters.
type Action struct {
	Kind   ActionKind
	Source *Source // Clone, Reclone, StartStandby, Follow
	Mode   string  // Stop
	// Revision is the failover key's mod revision (ClearFailover), or the
	// sync key's (SetSyncKey).
	Revision int64
	Names    []string       // CreateSlots, DropSlots
	Sync     *dcs.SyncState // SetSyncKey
	Value    string         // SetSyncNames
}

// Source is the member to clone from or stream from.
type Source struct {
	Name string
	postgres.ConnInfo
}

func (a Action) String() string {
	s := a.Kind.String()
	if a.Source != nil {
		s += fmt.Sprintf("(%s %s:%d)", a.Source.Name, a.Source.Host, a.Source.Port)
	}
	if a.Mode != "" {
		s += "(" + a.Mode + ")"
	}
	if len(a.Names) > 0 {
		s += "(" + strings.Join(a.Names, ",") + ")"
	}
	if a.Sync != nil {
		s += "(" + strings.Join(a.Sync.Standbys, ",") + ")"
	}
	if a.Kind == SetSyncNames {
		s += fmt.Sprintf("(%q)", a.Value)
	}
	return s
}

// Plan is the decision of one cycle: what to do, and why.
type Plan struct {
	Actions []Action
	Reason  string
	// State is the member state to report while/after acting, in
	// Patroni's words ("running", "stopped", "creating replica", ...);
	// empty: derive it from PostgreSQL.
	State string
	// WakeAt, when set, is when the loop must look again at the latest
	// (a scheduled switchover or restart).
	WakeAt time.Time
	// StayStopped: PostgreSQL must not be started again automatically
	// (its data cannot follow the leader and nothing may fix it); only an
	// operator's reinitialize ends this.
	StayStopped bool
}

func (p Plan) String() string {
	if len(p.Actions) == 0 {
		return "wait: " + p.Reason
	}
	names := make([]string, len(p.Actions))
	for i, a := range p.Actions {
		names[i] = a.String()
	}
	return strings.Join(names, ", ") + ": " + p.Reason
}

func plan(reason string, actions ...Action) Plan {
	return Plan{Reason: reason, Actions: actions}
}

func act(k ActionKind) Action { return Action{Kind: k} }
