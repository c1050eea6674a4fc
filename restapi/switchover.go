package restapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
)

const (
	actionSwitchover = "switchover"
	actionFailover   = "failover"
)

// titleOf is "Switchover" or "Failover" (Python's str.title()).
func titleOf(action string) string { return strings.ToUpper(action[:1]) + action[1:] }

// handleFailover answers POST /switchover and POST /failover as Patroni's
// do_POST_failover: validate the request, check on a fresh snapshot that
// the operation is possible (412 otherwise), write the failover key, and
// either answer 202 for a scheduled switchover or wait for the leader key
// to move.
func (s *Server) handleFailover(w http.ResponseWriter, r *http.Request, action string) {
	req, berr := readJSONObject(w, r, false)
	if berr != nil {
		writeMessage(w, berr.code, berr.msg)
		return
	}
	leader, msg := stringField(req, "leader")
	candidate, msg2 := stringField(req, "candidate")
	if msg == "" {
		msg = msg2
	}
	if candidate == "" {
		var msg3 string
		candidate, msg3 = stringField(req, "member")
		if msg == "" {
			msg = msg3
		}
	}
	if msg != "" {
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	rawAt, scheduled := req["scheduled_at"]
	if rawAt == nil || rawAt == "" || rawAt == false { // Python: "if scheduled_at" is false for these
		scheduled = false
	}

	ctx := r.Context()
	c, err := s.ops.Cluster(ctx)
	if err != nil {
		writeMessage(w, http.StatusServiceUnavailable, "failed to read the cluster state from DCS: "+err.Error())
		return
	}
	s.log.Info("received "+action+" request", "leader", leader, "candidate", candidate, "scheduled_at", rawAt)
	paused := clusterPaused(c)

	code := http.StatusBadRequest
	switch {
	case action == actionFailover && candidate == "":
		msg = "Failover could be performed only to a specific candidate"
	case action == actionSwitchover && leader == "":
		msg = "Switchover could be performed only from a specific leader"
	}
	var at time.Time
	if msg == "" && scheduled {
		switch {
		case action == actionFailover:
			msg = "Failover can't be scheduled"
		case paused:
			msg = "Can't schedule switchover in the paused state"
		default:
			at, code, msg = s.parseSchedule(rawAt, action)
		}
	}
	if f := c.FailoverRequest; msg == "" && f != nil && !f.ScheduledAt.IsZero() {
		code = http.StatusConflict
		msg = "a switchover is already scheduled at " + dcs.FormatPyTime(f.ScheduledAt) + "; cancel it first (DELETE /switchover)"
	}
	if msg == "" && paused && candidate == "" {
		msg = "Switchover is possible only to a specific candidate in a paused state"
	}
	if action == actionFailover && leader != "" {
		// Patroni performs a switchover when a failover names the leader.
		action = actionSwitchover
	}
	if msg == "" && leader == candidate {
		msg = "Switchover target and source are the same"
	}
	settings := settingsOf(c)
	if msg == "" && !scheduled {
		why := failoverImpossible(c, settings, leader, candidate, action)
		// In synchronous mode a standby becomes synchronous a few moments
		// after bootstrap or a previous switchover: wait for it, bounded,
		// rather than refuse at once.
		if waitsForSync(why) {
			deadline := time.Now().Add(s.syncWindow())
			for waitsForSync(why) && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
				fresh, err := s.ops.Cluster(ctx)
				if err != nil {
					continue
				}
				c, settings = fresh, settingsOf(fresh)
				why = failoverImpossible(c, settings, leader, candidate, action)
			}
		}
		if why != "" {
			code, msg = http.StatusPreconditionFailed, why
		}
	}
	if msg != "" {
		writeMessage(w, code, msg)
		return
	}

	ok, err := s.ops.SetFailover(ctx, &dcs.Failover{Leader: leader, Candidate: candidate, ScheduledAt: at}, 0)
	if err != nil || !ok {
		if err != nil {
			s.log.Warn("writing the failover key", "err", err)
		}
		writeMessage(w, http.StatusServiceUnavailable, "failed to write failover key into DCS")
		return
	}
	s.ops.Wake()
	if scheduled {
		writeMessage(w, http.StatusAccepted, titleOf(action)+" scheduled")
		return
	}
	oldLeader := ""
	if c.Leader != nil {
		oldLeader = c.Leader.Name
	}
	code, msg = s.pollFailover(ctx, settings.loopWait, oldLeader, candidate, action)
	writeMessage(w, code, msg)
}

// waitsForSync: the refusal is only that no (or not this) standby is
// synchronous yet.
func waitsForSync(why string) bool {
	return why == "candidate name does not match with sync_standby" || strings.HasSuffix(why, "can not find sync_standby")
}

// syncWindow bounds the wait for a synchronous standby.
func (s *Server) syncWindow() time.Duration {
	if s.syncWait > 0 {
		return s.syncWait
	}
	return defaultSyncWait
}

// stringField reads an optional string member of a request; a message
// when it is there but not a string.
func stringField(req map[string]any, key string) (string, string) {
	v, ok := req[key]
	if !ok || v == nil {
		return "", ""
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Sprintf("%q must be a string, got %s", key, jsonKind(v))
	}
	return str, ""
}

// pollFailover waits for the leader key to name someone other than
// oldLeader, as Patroni's poll_failover_result (but polling every
// pollInterval rather than every second): 200 when it does, 503 when the
// failover key is cleared first (the leader's loop gave up) or when the
// window passes. The end of ctx ends the wait.
func (s *Server) pollFailover(ctx context.Context, loopWait time.Duration, oldLeader, candidate, action string) (int, string) {
	window := s.pollWindow
	if window <= 0 {
		// Patroni's bound, but the answer must leave before the server's
		// write timeout cuts the connection.
		window = min(2*max(minPollWindow, loopWait), maxPollWindow)
	}
	interval := s.pollInterval
	if interval <= 0 {
		interval = defaultPollInterval
	}
	unknown := fmt.Sprintf("%s status unknown after %s seconds; operation may still be in progress",
		titleOf(action), strconv.FormatFloat(window.Seconds(), 'f', -1, 64))
	deadline := time.NewTimer(window)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	past := action[:len(action)-4] + "ed" // "switched", "failed"
	for {
		select {
		case <-ctx.Done():
			return http.StatusServiceUnavailable, unknown
		case <-deadline.C:
			return http.StatusServiceUnavailable, unknown
		case <-tick.C:
		}
		c, err := s.ops.Cluster(ctx)
		if err != nil {
			s.log.Debug("polling the "+action+" result", "err", err)
			continue
		}
		if c.Leader != nil && c.Leader.Name != "" && c.Leader.Name != oldLeader {
			if candidate == "" || candidate == c.Leader.Name {
				return http.StatusOK, fmt.Sprintf("Successfully %s over to %q", past, c.Leader.Name)
			}
			return http.StatusOK, fmt.Sprintf("%s over to %q instead of %q", titleOf(past), c.Leader.Name, candidate)
		}
		if c.FailoverRequest.Empty() {
			return http.StatusServiceUnavailable, titleOf(action) + " failed"
		}
	}
}

// handleDeleteSwitchover answers DELETE /switchover: it clears a scheduled
// switchover, with compare-and-swap on the failover key's revision.
func (s *Server) handleDeleteSwitchover(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := s.ops.Cluster(ctx)
	if err != nil {
		writeMessage(w, http.StatusServiceUnavailable, "failed to read the cluster state from DCS: "+err.Error())
		return
	}
	f := c.FailoverRequest
	if f.Empty() || f.ScheduledAt.IsZero() {
		writeMessage(w, http.StatusNotFound, "no switchover is scheduled")
		return
	}
	rev := c.FailoverRevision
	if rev == 0 {
		rev = f.ModRevision
	}
	ok, err := s.ops.SetFailover(ctx, nil, rev)
	switch {
	case err != nil:
		s.log.Warn("clearing the failover key", "err", err)
		writeMessage(w, http.StatusServiceUnavailable, "failed to write failover key into DCS")
	case !ok:
		writeMessage(w, http.StatusConflict, "the failover key changed meanwhile; the scheduled switchover was not deleted")
	default:
		writeMessage(w, http.StatusOK, "scheduled switchover deleted")
	}
}

// parseSchedule reads a schedule as Patroni's parse_schedule: 422 when it
// cannot be read or lies in the past, 400 when it has no time zone.
func (s *Server) parseSchedule(v any, action string) (time.Time, int, string) {
	str, ok := v.(string)
	if !ok {
		return time.Time{}, http.StatusUnprocessableEntity, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
	}
	t, err := dcs.ParseTime(str)
	if err != nil {
		if zoneless(str) {
			return time.Time{}, http.StatusBadRequest, "Timezone information is mandatory for the scheduled " + action
		}
		return time.Time{}, http.StatusUnprocessableEntity, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
	}
	if t.Before(s.now()) {
		return time.Time{}, http.StatusUnprocessableEntity, "Cannot schedule " + action + " in the past"
	}
	return t, 0, ""
}

// zoneless reports whether s is a date and time without a time zone.
func zoneless(s string) bool {
	s = strings.TrimSpace(s)
	for _, layout := range []string{
		"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999",
		"2006-01-02T15:04", "2006-01-02 15:04",
	} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// dynamicSettings are the parts of the dynamic configuration the
// operation checks use.
type dynamicSettings struct {
	maxLag   int64
	loopWait time.Duration
	syncMode bool // synchronous_mode on, not quorum, not a standby cluster
}

func settingsOf(c *dcs.Cluster) dynamicSettings {
	st := dynamicSettings{maxLag: config.DefaultMaximumLagOnFailover, loopWait: config.DefaultLoopWait}
	if c == nil || c.Config == nil {
		return st
	}
	if d, err := config.DynamicFromMap(c.Config); err == nil {
		st.maxLag, st.loopWait = d.MaximumLagOnFailover, d.LoopWait
	}
	st.syncMode = truthy(c.Config["synchronous_mode"]) && !standbyCluster(c.Config)
	return st
}

// standbyCluster is Patroni's is_standby_cluster: a standby_cluster
// section with a host, port or restore_command.
func standbyCluster(cfg map[string]any) bool {
	sc, ok := cfg["standby_cluster"].(map[string]any)
	if !ok {
		return false
	}
	for _, k := range []string{"host", "port", "restore_command"} {
		if pyTruthy(sc[k]) {
			return true
		}
	}
	return false
}

// clusterPaused is Patroni's is_paused on the snapshot's config.
func clusterPaused(c *dcs.Cluster) bool {
	return c != nil && c.Config != nil && truthy(c.Config["pause"])
}

// pyTruthy is Python's bool() of a decoded JSON value.
func pyTruthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case float64:
		return v != 0
	case int:
		return v != 0
	case json.Number:
		f, err := v.Float64()
		return err != nil || f != 0
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// syncMatches reports whether name is one of the synchronous standbys of
// the sync key (case-insensitively, as PostgreSQL compares
// synchronous_standby_names), as Patroni's SyncState.matches.
func syncMatches(raw json.RawMessage, name string) bool {
	if name == "" || len(raw) == 0 {
		return false
	}
	var st struct {
		Leader      any `json:"leader"`
		SyncStandby any `json:"sync_standby"`
	}
	if json.Unmarshal(raw, &st) != nil {
		return false
	}
	leader, _ := st.Leader.(string)
	standbys, _ := st.SyncStandby.(string)
	if leader == "" {
		return false
	}
	for _, s := range strings.Split(standbys, ",") {
		if s = strings.TrimSpace(s); s != "" && strings.EqualFold(s, name) {
			return true
		}
	}
	return false
}

// nofailover is Patroni's Tags.nofailover on a member key's tags: the
// nofailover tag when set, else failover_priority <= 0.
func nofailover(tags map[string]any) bool {
	if v, ok := tags["nofailover"]; ok && v != nil {
		return pyTruthy(v)
	}
	if v, ok := tags["failover_priority"]; ok && v != nil {
		if p, ok := wholeNumber(v); ok {
			return p <= 0
		}
	}
	return false
}

// wholeNumber reads an integer from a decoded JSON number or a numeric
// string.
func wholeNumber(v any) (int64, bool) {
	switch v := v.(type) {
	case float64:
		if v == math.Trunc(v) {
			return int64(v), true
		}
	case int:
		return int64(v), true
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return i, true
		}
	}
	return 0, false
}

// failoverImpossible is Patroni's is_failover_possible on a fresh
// snapshot, judged from the member keys rather than by asking each member:
// "" when the operation may go ahead, the reason otherwise.
func failoverImpossible(c *dcs.Cluster, st dynamicSettings, leader, candidate, action string) string {
	if leader != "" && (c.Leader == nil || c.Leader.Name != leader) {
		return "leader name does not match"
	}
	if candidate != "" {
		if action == actionSwitchover && st.syncMode && !syncMatches(c.Sync, candidate) {
			return "candidate name does not match with sync_standby"
		}
		m := c.Member(candidate)
		if m == nil {
			return "candidate does not exists"
		}
		if c.Leader != nil && c.Leader.Name == candidate {
			return fmt.Sprintf("candidate %q is already the leader", candidate)
		}
		if why := failoverLimitation(c, m, st.maxLag); why != "" {
			return fmt.Sprintf("candidate %q %s", candidate, why)
		}
		return ""
	}
	var members []*dcs.Member
	if st.syncMode {
		for i := range c.Members {
			if syncMatches(c.Sync, c.Members[i].Name) {
				members = append(members, &c.Members[i])
			}
		}
		if len(members) == 0 {
			return action + " is not possible: can not find sync_standby"
		}
	} else {
		for i := range c.Members {
			m := &c.Members[i]
			if c.Leader == nil || (m.Name != c.Leader.Name && m.APIURL != "") {
				members = append(members, m)
			}
		}
		if len(members) == 0 {
			return action + " is not possible: cluster does not have members except leader"
		}
	}
	for _, m := range members {
		if c.Leader != nil && m.Name == c.Leader.Name {
			continue
		}
		if failoverLimitation(c, m, st.maxLag) == "" {
			return ""
		}
	}
	return action + " is not possible: no good candidates have been found"
}

// failoverLimitation is why member m cannot be promoted, "" when it can:
// its member key must say running, it must not be tagged nofailover, and
// its WAL position must be within maxLag bytes of the leader's last
// known position.
func failoverLimitation(c *dcs.Cluster, m *dcs.Member, maxLag int64) string {
	if m.State != "running" {
		state := m.State
		if state == "" {
			state = "unknown"
		}
		return fmt.Sprintf("is not running (state: %s)", state)
	}
	if nofailover(m.Tags) {
		return "is tagged nofailover"
	}
	if optime := leaderOptime(c); optime > 0 {
		pos := m.XLogLocation
		if m.ReceiveLSN != nil && *m.ReceiveLSN > 0 {
			pos = *m.ReceiveLSN
		}
		if lag := optime - pos; lag > maxLag {
			return fmt.Sprintf("is lagging %d bytes behind the leader (maximum_lag_on_failover %d)", lag, maxLag)
		}
	}
	return ""
}
