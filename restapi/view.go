package restapi

import (
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

// The helpers below derive, from one snapshot, the values Patroni's
// get_postgresql_status computes with a query: they are shared by the
// health checks, the status document and the metrics so that all three
// always agree.

// queried reports whether the last observation reached PostgreSQL, which
// is when Patroni's status carries the positions, versions and timeline.
func queried(n *status.Node) bool { return n.PG.Running && n.PG.Accepting }

// stateOf is the member state as reported. Like Patroni, a member that
// believes PostgreSQL is running but could not query it says "unknown".
func stateOf(n *status.Node) string {
	st := n.State
	if st == "" {
		st = "unknown"
	}
	if st == "running" && !queried(n) {
		return "unknown"
	}
	return st
}

// roleOf is "primary" or "replica" as pg_is_in_recovery() says when
// PostgreSQL answered, else the role the HA loop published
// ("uninitialized" when none).
func roleOf(n *status.Node) string {
	if queried(n) {
		if n.PG.InRecovery {
			return "replica"
		}
		return "primary"
	}
	if n.Role == "" {
		return "uninitialized"
	}
	return n.Role
}

// replicationStateOf is "streaming" on a replica whose WAL receiver
// streams, "" otherwise (pgwarden does not restore from an archive).
func replicationStateOf(n *status.Node) string {
	if queried(n) && n.PG.InRecovery && n.PG.Streaming {
		return "streaming"
	}
	return ""
}

// receivedOf is a replica's received position, falling back to the
// replayed one as Patroni does when nothing was received (archive
// recovery).
func receivedOf(n *status.Node) int64 {
	if n.PG.ReceivedLSN != 0 {
		return n.PG.ReceivedLSN
	}
	return n.PG.ReplayedLSN
}

// clusterUnlocked reports whether nobody holds the leader key (or the
// cluster is not known).
func clusterUnlocked(n *status.Node) bool { return n.Cluster == nil || n.Cluster.Leader == nil }

// leaderOptime is the cluster's last known leader WAL position: the
// optime of the status key or, without one, the xlog_location the leader
// wrote in its member key. 0 when unknown.
func leaderOptime(c *dcs.Cluster) int64 {
	if c == nil {
		return 0
	}
	if c.Status != nil && c.Status.Optime > 0 {
		return c.Status.Optime
	}
	if m := c.LeaderMember(); m != nil {
		return m.XLogLocation
	}
	return 0
}
