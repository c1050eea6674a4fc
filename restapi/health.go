package restapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

// kind is what a health endpoint checks.
type kind uint8

const (
	kindRoot           kind = iota // "/": /primary's status code with the status document
	kindPrimary                    // /primary, /master, /read-write
	kindLeader                     // /leader
	kindStandbyLeader              // /standby-leader, /standby_leader
	kindReplica                    // /replica
	kindReadOnly                   // /read-only
	kindReadOnlySync               // /read-only-sync, /read-only-synchronous
	kindReadOnlyQuorum             // /read-only-quorum
	kindSync                       // /sync, /synchronous
	kindQuorum                     // /quorum
	kindAsync                      // /async, /asynchronous
	kindHealth                     // /health
	kindLiveness                   // /liveness
	kindReadiness                  // /readiness
)

// statusOnly reports whether the endpoint answers a bare status line even
// to GET (Patroni's /liveness and /readiness do).
func (k kind) statusOnly() bool { return k == kindLiveness || k == kindReadiness }

// ignoresTags reports whether ?tag_<key>= filters are ignored, as Patroni
// does for the leader endpoints.
func (k kind) ignoresTags() bool {
	switch k {
	case kindRoot, kindPrimary, kindLeader, kindStandbyLeader:
		return true
	}
	return false
}

// defaultMaximumLag is Patroni's maximum_lag_on_failover default, used by
// /readiness when the published status carries none.
const defaultMaximumLag = 1 << 20

// healthQuery is the parsed query string of a health check.
type healthQuery struct {
	maxLag           int64 // ?lag=, valid when hasLag
	hasLag           bool
	writeMode        bool   // /readiness?mode=write: lag of the received rather than replayed WAL
	replicationState string // ?replication_state=
	tags             []tagFilter
}

type tagFilter struct{ key, value string }

// parseHealthQuery parses raw like Python's parse_qs as Patroni uses it:
// the first value of each key counts and empty values are ignored.
func parseHealthQuery(raw string) (healthQuery, error) {
	var q healthQuery
	values, _ := url.ParseQuery(raw) // keep what parsed, as parse_qs does
	for key, vals := range values {
		v := firstNonEmpty(vals)
		if v == "" {
			continue
		}
		switch {
		case key == "lag":
			lag, err := parseLag(v)
			if err != nil {
				return q, err
			}
			q.maxLag, q.hasLag = lag, true
		case key == "mode":
			q.writeMode = v == "write"
		case key == "replication_state":
			q.replicationState = v
		case strings.HasPrefix(key, "tag_"):
			q.tags = append(q.tags, tagFilter{key: key[len("tag_"):], value: v})
		}
	}
	return q, nil
}

func firstNonEmpty(vals []string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// serveHealth answers a health endpoint. GET carries the member status
// document (as Patroni's health checks do); HEAD and OPTIONS, and /liveness
// and /readiness for every method, answer the status line only.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, k kind) {
	var q healthQuery
	if r.URL.RawQuery != "" {
		var err error
		if q, err = parseHealthQuery(r.URL.RawQuery); err != nil {
			plainError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	n := s.board.Load()
	now := s.now()
	code := decide(k, n, now, &q)
	if r.Method != http.MethodGet || k.statusOnly() {
		w.WriteHeader(code)
		return
	}
	s.writeStatus(w, code, n)
}

// decide computes the status code of health endpoint k for snapshot n at
// instant now. A nil snapshot (nothing published yet) fails every check.
func decide(k kind, n *status.Node, now time.Time, q *healthQuery) int {
	if n == nil {
		return http.StatusServiceUnavailable
	}
	ok := false
	switch k {
	case kindRoot, kindPrimary, kindLeader:
		// Patroni answers /leader like /primary outside standby clusters,
		// which pgwarden does not have.
		ok = n.IsRunningPrimary(now)
	case kindStandbyLeader:
		ok = false // no standby clusters yet
	case kindReplica:
		ok = replicaOK(n, now, q)
	case kindReadOnly:
		ok = n.IsRunningPrimary(now) || replicaOK(n, now, q)
	case kindReadOnlySync:
		ok = n.IsRunningPrimary(now) || (isSyncStandby(n) && replicaOK(n, now, q))
	case kindReadOnlyQuorum:
		ok = n.IsRunningPrimary(now) // no quorum commit in pgwarden
	case kindSync:
		ok = isSyncStandby(n) && replicaOK(n, now, q)
	case kindQuorum:
		ok = false // no quorum commit in pgwarden
	case kindAsync:
		// Patroni only answers this while the DCS is known.
		ok = n.Cluster != nil && !isSyncStandby(n) && replicaOK(n, now, q)
	case kindHealth:
		ok = stateOf(n) == "running"
	case kindLiveness:
		ok = live(n, now)
	case kindReadiness:
		ok = ready(n, now, q)
	}
	if ok && !k.ignoresTags() && len(q.tags) > 0 {
		ok = tagsMatch(n.Tags, q.tags)
	}
	if ok {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// isSyncStandby: synchronous mode is on and the sync key names this
// member.
func isSyncStandby(n *status.Node) bool {
	c := n.Cluster
	return c != nil && c.SyncState.Names(n.Name) && syncModeOn(c)
}

// syncModeOn reads synchronous_mode from the dynamic configuration.
func syncModeOn(c *dcs.Cluster) bool {
	if c == nil {
		return false
	}
	switch v := c.Config["synchronous_mode"].(type) {
	case bool:
		return v
	case string:
		return v == "on" || v == "true"
	}
	return false
}

// fresh reports whether the snapshot is recent enough to vouch for.
func fresh(n *status.Node, now time.Time) bool { return now.Sub(n.Published) <= n.TTL }

// replicaOK is Patroni's replica check: PostgreSQL running as a replica, no
// noloadbalance tag, not lagging beyond ?lag, in ?replication_state; and,
// pgwarden's addition, a snapshot no older than ttl.
func replicaOK(n *status.Node, now time.Time, q *healthQuery) bool {
	if stateOf(n) != "running" || !n.PG.InRecovery || n.Tags.NoLoadBalance || !fresh(n, now) {
		return false
	}
	if q.hasLag {
		if opt := leaderOptime(n.Cluster); opt > 0 && opt-n.PG.ReplayedLSN > q.maxLag {
			return false
		}
	}
	if q.replicationState != "" && q.replicationState != replicationStateOf(n) {
		return false
	}
	return true
}

// live is Patroni's liveness: the HA loop ran within ttl on a running
// primary, within twice ttl elsewhere; always live while paused.
func live(n *status.Node, now time.Time) bool {
	if n.Paused {
		return true
	}
	limit := n.TTL
	if !(n.PG.Running && roleOf(n) == "primary") {
		limit *= 2
	}
	return now.Sub(n.Published) <= limit
}

// ready is Patroni's readiness: the leader is ready; a replica is ready
// when it streams and its lag (replayed, or received with ?mode=write)
// behind the leader's last position is within ?lag or
// maximum_lag_on_failover.
func ready(n *status.Node, now time.Time, q *healthQuery) bool {
	if n.IsRunningPrimary(now) {
		return true
	}
	if stateOf(n) != "running" || replicationStateOf(n) != "streaming" || n.Cluster == nil {
		return false
	}
	loc := n.PG.ReplayedLSN
	if q.writeMode {
		loc = receivedOf(n)
	}
	limit := n.MaximumLag
	if q.hasLag {
		limit = q.maxLag
	} else if limit <= 0 {
		limit = defaultMaximumLag
	}
	return leaderOptime(n.Cluster)-loc <= limit
}

// tagsMatch applies ?tag_<key>=<value> filters as Patroni does: a tag the
// member does not have fails, non-string values compare in lower case.
func tagsMatch(t config.Tags, filters []tagFilter) bool {
	for _, f := range filters {
		v, ok := tagValue(t, f.key)
		if !ok || v == nil {
			return false
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case bool:
			s = strconv.FormatBool(x)
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
			if !strings.ContainsAny(s, ".eE") {
				s += ".0" // Python's str(1.0)
			}
		default:
			s = strings.ToLower(fmt.Sprint(x))
		}
		if s != f.value {
			return false
		}
	}
	return true
}

// tagValue looks a tag up in the tags as written, falling back to the
// normalised boolean tags when the raw map is absent.
func tagValue(t config.Tags, key string) (any, bool) {
	if t.Raw != nil {
		v, ok := t.Raw[key]
		return v, ok
	}
	m := boolTags(t)
	v, ok := m[key]
	return v, ok
}

// boolTags renders the normalised boolean tags that are set.
func boolTags(t config.Tags) map[string]any {
	var m map[string]any
	set := func(k string, v bool) {
		if v {
			if m == nil {
				m = make(map[string]any, 4)
			}
			m[k] = true
		}
	}
	set("clonefrom", t.CloneFrom)
	set("nofailover", t.NoFailover)
	set("noloadbalance", t.NoLoadBalance)
	set("nosync", t.NoSync)
	return m
}

// errBadLag is wrapped by parseLag's errors.
var errBadLag = errors.New("bad lag value")
