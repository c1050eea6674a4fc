package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

// handlePatroni answers /patroni: the member status document. Like
// Patroni, the status code is 200 whatever PostgreSQL's state (the document
// says it); only before the HA loop's first publication, when there is
// nothing to report, it is 503.
func (s *Server) handlePatroni(w http.ResponseWriter, r *http.Request) {
	n := s.board.Load()
	code := http.StatusOK
	if n == nil {
		code = http.StatusServiceUnavailable
	}
	if r.Method != http.MethodGet {
		w.WriteHeader(code)
		return
	}
	s.writeStatus(w, code, n)
}

// writeStatus sends the member status document of n with status code.
func (s *Server) writeStatus(w http.ResponseWriter, code int, n *status.Node) {
	writeJSON(w, code, func(b []byte) []byte { return appendStatus(b, n) })
}

// appendStatus appends the member status document in the shape and key
// order of Patroni's GET /patroni.
func appendStatus(b []byte, n *status.Node) []byte {
	b = append(b, '{')
	if n == nil {
		b = appendKey(b, "state")
		b = appendString(b, "starting")
		b = appendKey(b, "role")
		b = appendString(b, "uninitialized")
		b = appendKey(b, "cluster_unlocked")
		b = appendBool(b, true)
		b = appendKey(b, "dcs_last_seen")
		b = append(b, '0')
		return append(b, '}')
	}

	b = appendKey(b, "state")
	b = appendString(b, stateOf(n))
	if queried(n) {
		pg := &n.PG
		b = appendKey(b, "postmaster_start_time")
		if pg.StartTime.IsZero() {
			b = append(b, "null"...)
		} else {
			b = appendPyTime(b, pg.StartTime)
		}
		b = appendKey(b, "role")
		b = appendString(b, roleOf(n))
		b = appendKey(b, "server_version")
		b = appendInt(b, int64(pg.ServerVersion))
		b = appendKey(b, "xlog")
		b = append(b, '{')
		if pg.InRecovery {
			b = appendKey(b, "received_location")
			b = appendInt(b, receivedOf(n))
			b = appendKey(b, "replayed_location")
			b = appendInt(b, pg.ReplayedLSN)
			b = appendKey(b, "replayed_timestamp")
			if pg.ReplayedTime.IsZero() {
				b = append(b, "null"...)
			} else {
				b = appendPyTime(b, pg.ReplayedTime)
			}
			b = appendKey(b, "paused")
			b = appendBool(b, pg.ReplayPaused)
		} else {
			b = appendKey(b, "location")
			b = appendInt(b, pg.WALPosition)
		}
		b = append(b, '}')
		if pg.InRecovery && isSyncStandby(n) {
			b = appendKey(b, "sync_standby")
			b = appendBool(b, true)
		}
		b = appendKey(b, "timeline")
		if pg.Timeline > 0 {
			b = appendInt(b, int64(pg.Timeline))
		} else {
			b = append(b, "null"...)
		}
		if rs := replicationStateOf(n); rs != "" {
			b = appendKey(b, "replication_state")
			b = appendString(b, rs)
		}
		if len(pg.Replication) > 0 {
			b = appendKey(b, "replication")
			b = append(b, '[')
			for i := range pg.Replication {
				if i > 0 {
					b = append(b, ',')
				}
				rep := &pg.Replication[i]
				b = append(b, '{')
				b = appendKey(b, "usename")
				b = appendStringOrNull(b, rep.Usename)
				b = appendKey(b, "application_name")
				b = appendString(b, rep.ApplicationName)
				b = appendKey(b, "client_addr")
				b = appendStringOrNull(b, rep.ClientAddr)
				b = appendKey(b, "state")
				b = appendString(b, rep.State)
				b = appendKey(b, "sync_state")
				b = appendString(b, rep.SyncState)
				b = appendKey(b, "sync_priority")
				b = appendInt(b, int64(rep.SyncPriority))
				b = append(b, '}')
			}
			b = append(b, ']')
		}
	} else {
		b = appendKey(b, "role")
		b = appendString(b, roleOf(n))
	}
	if n.Paused {
		b = appendKey(b, "pause")
		b = appendBool(b, true)
	}
	if clusterUnlocked(n) {
		b = appendKey(b, "cluster_unlocked")
		b = appendBool(b, true)
	}
	b = appendKey(b, "dcs_last_seen")
	if n.DCSLastSeen.IsZero() {
		b = append(b, '0')
	} else {
		b = appendInt(b, n.DCSLastSeen.Unix())
	}
	if len(n.Tags.Raw) > 0 {
		b = appendKey(b, "tags")
		b = appendAny(b, n.Tags.Raw)
	} else if m := boolTags(n.Tags); m != nil {
		b = appendKey(b, "tags")
		b = appendAny(b, m)
	}
	if n.PG.SystemID != "" {
		b = appendKey(b, "database_system_identifier")
		b = appendString(b, n.PG.SystemID)
	}
	if n.PG.PendingRestart || n.PendingRestart {
		b = appendKey(b, "pending_restart")
		b = appendBool(b, true)
	}
	b = appendKey(b, "patroni")
	b = append(b, '{')
	b = appendKey(b, "version")
	b = appendString(b, n.Version)
	b = appendKey(b, "scope")
	b = appendString(b, n.Scope)
	b = appendKey(b, "name")
	b = appendString(b, n.Name)
	b = append(b, '}')
	if sr := n.ScheduledRestart; sr != nil {
		// Patroni shows the restart request without postmaster_start_time
		// (that one goes to the member key only).
		b = appendKey(b, "scheduled_restart")
		b = append(b, '{')
		b = appendKey(b, "schedule")
		b = appendString(b, dcs.FormatPyTime(sr.At))
		if sr.RestartPending {
			b = appendKey(b, "restart_pending")
			b = appendBool(b, true)
		}
		if sr.Role != "" {
			b = appendKey(b, "role")
			b = appendString(b, sr.Role)
		}
		if sr.PostgresVersion > 0 {
			b = appendKey(b, "postgres_version")
			b = appendInt(b, int64(sr.PostgresVersion))
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// handleCluster answers /cluster: the topology of the last DCS snapshot,
// in the shape of Patroni's cluster_as_json. 503 while no snapshot exists.
func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	n := s.board.Load()
	if n == nil || n.Cluster == nil {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		plainError(w, http.StatusServiceUnavailable, "the cluster state is not known yet")
		return
	}
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusOK)
		return
	}
	if s.citusGroups == nil {
		writeJSON(w, http.StatusOK, func(b []byte) []byte { return appendCluster(b, n) })
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), citusGroupsTimeout)
	defer cancel()
	groups, _, err := s.citusGroups(ctx)
	if err != nil {
		s.log.Warn("GET /cluster: reading the Citus groups failed", "error", err)
		plainError(w, http.StatusServiceUnavailable, "could not read the Citus groups: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, func(b []byte) []byte { return appendCitusCluster(b, n, groups) })
}

// citusGroupsTimeout bounds the read of every Citus group for GET /cluster.
const citusGroupsTimeout = 5 * time.Second

// appendCluster appends the /cluster document for n's cluster snapshot.
func appendCluster(b []byte, n *status.Node) []byte {
	b = append(b, '{')
	b = appendKey(b, "members")
	b = append(b, '[')
	b = appendMembers(b, n.Cluster, nil)
	b = append(b, ']')
	return appendClusterTail(b, n)
}

// appendCitusCluster appends the /cluster document of a member of a
// Citus cluster: the members of every group, sorted by group and name,
// each with its "group"; the other fields are those of the member's own
// cluster, as appendCluster writes them.
func appendCitusCluster(b []byte, n *status.Node, groups map[int]*dcs.Cluster) []byte {
	keys := make([]int, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.Sort(keys)
	b = append(b, '{')
	b = appendKey(b, "members")
	b = append(b, '[')
	for _, g := range keys {
		if c := groups[g]; c != nil {
			b = appendMembers(b, c, &g)
		}
	}
	b = append(b, ']')
	return appendClusterTail(b, n)
}

// appendMembers appends to a JSON list the member objects of cluster c,
// sorted by name, each member's role and lag computed against c's leader
// and optime; with group, each object ends with "group".
func appendMembers(b []byte, c *dcs.Cluster, group *int) []byte {
	leader := ""
	if c.Leader != nil {
		leader = c.Leader.Name
	}
	optime := leaderOptime(c)

	members := make([]*dcs.Member, len(c.Members))
	for i := range c.Members {
		members[i] = &c.Members[i]
	}
	slices.SortStableFunc(members, func(x, y *dcs.Member) int { return strings.Compare(x.Name, y.Name) })

	for _, m := range members {
		if b[len(b)-1] != '[' {
			b = append(b, ',')
		}
		isLeader := m.Name == leader
		role := "replica"
		if isLeader {
			role = "leader"
		} else if syncModeOn(c) && c.SyncState.Names(m.Name) {
			role = "sync_standby"
		}
		state := m.State
		if !isLeader && m.ReplicationState != "" {
			state = m.ReplicationState
		}
		b = append(b, '{')
		b = appendKey(b, "name")
		b = appendString(b, m.Name)
		b = appendKey(b, "role")
		b = appendString(b, role)
		b = appendKey(b, "state")
		b = appendString(b, state)
		b = appendKey(b, "api_url")
		b = appendStringOrNull(b, m.APIURL)
		if host, port, ok := hostPort(m.ConnURL); ok {
			b = appendKey(b, "host")
			b = appendString(b, host)
			b = appendKey(b, "port")
			b = appendInt(b, int64(port))
		}
		if m.Timeline != 0 {
			b = appendKey(b, "timeline")
			b = appendInt(b, int64(m.Timeline))
		}
		if m.PendingRestart {
			b = appendKey(b, "pending_restart")
			b = appendBool(b, true)
		}
		if raw, ok := m.Extra["scheduled_restart"]; ok {
			if v := compactRaw(raw); v != nil {
				b = appendKey(b, "scheduled_restart")
				b = append(b, v...)
			}
		}
		if len(m.Tags) > 0 {
			b = appendKey(b, "tags")
			b = appendAny(b, m.Tags)
		}
		if !isLeader {
			b = appendLag(b, "receive_", optional(m.ReceiveLSN), optime)
			b = appendLag(b, "replay_", optional(m.ReplayLSN), optime)
			b = appendLag(b, "", m.XLogLocation, optime)
		}
		if group != nil {
			b = appendKey(b, "group")
			b = appendInt(b, int64(*group))
		}
		b = append(b, '}')
	}
	return b
}

// appendClusterTail appends the fields of /cluster after the members, of
// n's own cluster, and closes the document.
func appendClusterTail(b []byte, n *status.Node) []byte {
	c := n.Cluster
	if n.Paused {
		b = appendKey(b, "pause")
		b = appendBool(b, true)
	}
	if f := c.FailoverRequest; f != nil && !f.ScheduledAt.IsZero() {
		b = appendKey(b, "scheduled_switchover")
		b = append(b, '{')
		b = appendKey(b, "at")
		b = appendString(b, dcs.FormatPyTime(f.ScheduledAt))
		if f.Leader != "" {
			b = appendKey(b, "from")
			b = appendString(b, f.Leader)
		}
		if f.Candidate != "" {
			b = appendKey(b, "to")
			b = appendString(b, f.Candidate)
		}
		b = append(b, '}')
	}
	b = appendKey(b, "scope")
	b = appendString(b, n.Scope)
	return append(b, '}')
}

// compactRaw returns a raw JSON value without insignificant whitespace,
// nil when it is not valid JSON.
func compactRaw(raw []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil || buf.Len() == 0 {
		return nil
	}
	return buf.Bytes()
}

func optional(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// appendLag appends <prefix>lag and <prefix>lsn of a replica, as Patroni:
// the lag behind the leader's optime (never negative) and the position as
// an LSN string; both "unknown" when the member did not report it.
func appendLag(b []byte, prefix string, lsn, optime int64) []byte {
	if lsn <= 0 {
		b = appendKey(b, prefix+"lsn")
		b = appendString(b, "unknown")
		b = appendKey(b, prefix+"lag")
		return appendString(b, "unknown")
	}
	b = appendKey(b, prefix+"lag")
	b = appendInt(b, max(optime-lsn, 0))
	b = appendKey(b, prefix+"lsn")
	return appendString(b, formatLSN(lsn))
}

// formatLSN renders a WAL position as PostgreSQL does: "0/4000050".
func formatLSN(lsn int64) string {
	u := uint64(lsn)
	return fmt.Sprintf("%X/%X", u>>32, u&0xFFFFFFFF)
}

// hostPort extracts PostgreSQL's host and port from a member's conn_url
// ("postgres://127.0.0.1:5441/postgres"); the port defaults to 5432.
func hostPort(connURL string) (string, int, bool) {
	if connURL == "" {
		return "", 0, false
	}
	u, err := url.Parse(connURL)
	if err != nil || u.Hostname() == "" {
		return "", 0, false
	}
	port := 5432
	if p := u.Port(); p != "" {
		v, err := strconv.Atoi(p)
		if err != nil {
			return "", 0, false
		}
		port = v
	}
	return u.Hostname(), port, true
}
