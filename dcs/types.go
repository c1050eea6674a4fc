package dcs

import "encoding/json"

// Member is one member key (members/<name>), in Patroni's JSON format.
// Unknown fields written by other tools are kept in Extra so that a
// read-modify-write never drops them.
//
// The field order is the order in which Patroni 4.1.4 writes the keys
// (see MemberJSON); optional fields are left out when empty, as Patroni does.
type Member struct {
	Name string `json:"-"`

	ConnURL          string         `json:"conn_url"`
	APIURL           string         `json:"api_url"`
	State            string         `json:"state"`
	Role             string         `json:"role"` // "primary" or "replica" (Patroni 3 wrote "master": read both)
	Version          string         `json:"version"`
	Tags             map[string]any `json:"tags,omitempty"`
	PendingRestart   bool           `json:"pending_restart,omitempty"`
	XLogLocation     int64          `json:"xlog_location,omitempty"` // absent while PostgreSQL is not running
	ReplayLSN        *int64         `json:"replay_lsn,omitempty"`
	ReceiveLSN       *int64         `json:"receive_lsn,omitempty"`
	ReplicationState string         `json:"replication_state,omitempty"`
	Timeline         int            `json:"timeline,omitempty"`

	// Extra holds the raw values of keys this struct does not know
	// (e.g. Patroni's proxy_url, pending_restart_reason), written back
	// after the known ones, in key order.
	Extra map[string]json.RawMessage `json:"-"`

	// ModRevision and Lease are etcd metadata, not part of the JSON.
	ModRevision int64 `json:"-"`
	Lease       int64 `json:"-"`
}

// IsPrimary reports whether the member says it runs PostgreSQL as a primary
// (Patroni 4 "primary", Patroni 3 "master").
func (m *Member) IsPrimary() bool { return m.Role == "primary" || m.Role == "master" }

// Leader is the leader key: the plain member name, bound to its owner's lease.
type Leader struct {
	Name        string
	Lease       int64
	ModRevision int64
}

// Status is the status key: {"optime": <LSN as integer>, "slots": {...}}.
// Slots is always written as an object ({} when empty); Patroni 3 wrote
// only optime, which parses with Slots nil.
type Status struct {
	Optime      int64            `json:"optime"`
	Slots       map[string]int64 `json:"slots"`
	RetainSlots []string         `json:"retain_slots,omitempty"` // Patroni 4: member names whose slots are kept
}

// Cluster is a whole-cluster snapshot, read with one prefix read.
type Cluster struct {
	// Initialized is true when the initialize key exists; SystemID is its
	// value ("" while the bootstrapping node has not finished initdb yet).
	Initialized bool
	SystemID    string

	Leader  *Leader  // nil when the leader key does not exist
	Members []Member // sorted by name; garbled values are logged and skipped

	Config         map[string]any // parsed config key, nil when absent or garbled
	ConfigRevision int64          // mod revision of the config key (also when garbled), 0 when absent

	Status   *Status         // nil when absent or garbled
	Failover json.RawMessage // raw value of the failover key, nil when absent, empty or not JSON
	// FailoverRequest is the parsed failover key: nil when absent, {} or
	// garbled. FailoverRevision is the key's mod revision (0 when absent).
	FailoverRequest  *Failover
	FailoverRevision int64
	Sync             json.RawMessage // raw value of the sync key, nil when absent, empty or not JSON
	// SyncState is the parsed sync key (nil when absent or garbled);
	// SyncRevision its mod revision (0 when absent).
	SyncState    *SyncState
	SyncRevision int64
	History      json.RawMessage // raw value of the history key, nil when absent, empty or not JSON
	// HistoryEntries is the parsed history key (nil when absent or
	// garbled); HistoryRevision its mod revision (0 when absent).
	HistoryEntries  []HistoryEntry
	HistoryRevision int64

	Revision int64 // etcd header revision of the read
}

// Paused reports whether the dynamic configuration says pause: true
// (maintenance mode: no automatic failover, restart or demotion).
func (c *Cluster) Paused() bool {
	if c == nil || c.Config == nil {
		return false
	}
	p, _ := c.Config["pause"].(bool)
	return p
}

// Member returns the member with the given name, or nil.
func (c *Cluster) Member(name string) *Member {
	for i := range c.Members {
		if c.Members[i].Name == name {
			return &c.Members[i]
		}
	}
	return nil
}

// LeaderMember returns the member that holds the leader key, or nil.
func (c *Cluster) LeaderMember() *Member {
	if c == nil || c.Leader == nil {
		return nil
	}
	return c.Member(c.Leader.Name)
}
