package restapi

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// handleRestart answers POST /restart as Patroni's do_POST_restart: the
// optional body holds the conditions of the restart (restart_pending,
// role, postgres_version), a timeout, and a schedule for a later restart.
func (s *Server) handleRestart(w http.ResponseWriter, r *http.Request) {
	req, berr := readJSONObject(w, r, true)
	if berr != nil {
		writeMessage(w, berr.code, berr.msg)
		return
	}
	ctx := r.Context()
	rawSchedule, hasSchedule := req["schedule"]
	if hasSchedule && s.pausedNow(r) {
		// Patroni answers this one with its default status code, 500.
		writeMessage(w, http.StatusInternalServerError, "Can't schedule restart in the paused state")
		return
	}

	var rr RestartRequest
	code, msg := 0, ""
	fail := func(c int, m string) {
		if msg == "" {
			code, msg = c, m
		}
	}
	if hasSchedule {
		t, c, m := s.parseSchedule(rawSchedule, "restart")
		if m != "" {
			fail(c, m)
		}
		rr.Schedule = t
	}
	if v, ok := req["role"]; ok {
		switch v {
		case "primary", "master":
			rr.Role = "primary"
		case "replica", "standby_leader":
			rr.Role = v.(string)
		default:
			fail(http.StatusBadRequest, "PostgreSQL role should be either primary, standby_leader, or replica")
		}
	}
	if v, ok := req["postgres_version"]; ok {
		n, m := postgresVersionToInt(v)
		if m != "" {
			fail(http.StatusBadRequest, m)
		}
		rr.PostgresVersion = n
	}
	if v, ok := req["timeout"]; ok {
		secs, ok := parseSeconds(v)
		if !ok || secs <= 0 {
			fail(http.StatusBadRequest, "Timeout should be a positive number of seconds")
		}
		rr.Timeout = time.Duration(secs) * time.Second
	}
	if v, ok := req["restart_pending"]; ok {
		b, ok := parseBool(v)
		if !ok && v != nil {
			fail(http.StatusBadRequest, "restart_pending should be a boolean")
		}
		rr.RestartPending = b
	}
	unknown := make([]string, 0)
	for k := range req {
		switch k {
		case "schedule", "role", "postgres_version", "timeout", "restart_pending":
		default:
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	if len(unknown) > 0 {
		fail(http.StatusBadRequest, "Unknown filter for the scheduled restart: "+unknown[0])
	}
	if msg != "" {
		writeMessage(w, code, msg)
		return
	}

	if !hasSchedule {
		ok, m := s.ops.Restart(ctx, rr)
		switch {
		case ok && m == "":
			m = "restarted successfully"
		case !ok && m == "":
			m = "restart failed"
		}
		if ok {
			writeMessage(w, http.StatusOK, m)
		} else {
			writeMessage(w, http.StatusServiceUnavailable, m)
		}
		return
	}
	if s.ops.ScheduleRestart(rr) {
		writeMessage(w, http.StatusAccepted, "Restart scheduled")
	} else {
		writeMessage(w, http.StatusConflict, "Another restart is already scheduled")
	}
}

// pausedNow reports whether the cluster is in maintenance mode, from a
// fresh snapshot (as Patroni reads one) or, when DCS cannot be read, from
// what the HA loop last published.
func (s *Server) pausedNow(r *http.Request) bool {
	if c, err := s.ops.Cluster(r.Context()); err == nil && c != nil {
		return clusterPaused(c)
	}
	if n := s.board.Load(); n != nil {
		return n.Paused
	}
	return false
}

// handleDeleteRestart answers DELETE /restart: drop the scheduled restart.
func (s *Server) handleDeleteRestart(w http.ResponseWriter, r *http.Request) {
	if s.ops.CancelRestart() {
		writeMessage(w, http.StatusOK, "scheduled restart deleted")
		return
	}
	writeMessage(w, http.StatusNotFound, "no restarts are scheduled")
}

// handleReinitialize answers POST /reinitialize; the optional body may
// say {"force": true}.
func (s *Server) handleReinitialize(w http.ResponseWriter, r *http.Request) {
	req, berr := readJSONObject(w, r, true)
	if berr != nil {
		writeMessage(w, berr.code, berr.msg)
		return
	}
	if why := s.ops.Reinitialize(r.Context(), truthy(req["force"])); why != "" {
		writeMessage(w, http.StatusServiceUnavailable, why)
		return
	}
	writeMessage(w, http.StatusOK, "reinitialize started")
}

// handleReload answers POST /reload: re-read the configuration file.
func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := s.ops.Reload(); err != nil {
		writeMessage(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeMessage(w, http.StatusAccepted, "reload scheduled")
}

// postgresVersionToInt reads a PostgreSQL version the way Patroni's
// postgres_version_to_int does ("9.6.3" is 90603, "15.3" is 150003), and
// also a bare major version ("15": 150000) or a server_version_num
// ("150003"). The message says why v is refused.
func postgresVersionToInt(v any) (int, string) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return 0, fmt.Sprintf("Invalid PostgreSQL version: %v", v)
	}
	parts := strings.Split(s, ".")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return 0, "Invalid PostgreSQL version: " + s
		}
		nums[i] = n
	}
	bad := "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: " + s
	if len(nums) == 1 {
		switch n := nums[0]; {
		case n >= 10 && n < 100:
			return n * 10000, ""
		case n >= 90000:
			return n, ""
		}
		return 0, bad
	}
	if len(nums) > 3 || len(nums) == 2 && nums[0] < 10 {
		return 0, bad
	}
	if len(nums) == 2 {
		nums = []int{nums[0], 0, nums[1]}
	}
	var b strings.Builder
	for _, n := range nums {
		fmt.Fprintf(&b, "%02d", n)
	}
	n, err := strconv.Atoi(b.String())
	if err != nil {
		return 0, bad
	}
	return n, ""
}

// secondsRe is a number with an optional unit, as Patroni's parse_int
// reads timeouts ("30", "30s", "2min", "1.5h").
var secondsRe = regexp.MustCompile(`^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([a-zA-Z]*)\s*$`)

// parseSeconds reads a timeout in seconds: a number, or a string with an
// optional unit (ms, s, min, h, d), rounded to whole seconds.
func parseSeconds(v any) (int64, bool) {
	var f float64
	switch v := v.(type) {
	case json.Number:
		x, err := v.Float64()
		if err != nil {
			return 0, false
		}
		f = x
	case float64:
		f = v
	case int:
		f = float64(v)
	case string:
		m := secondsRe.FindStringSubmatch(v)
		if m == nil {
			return 0, false
		}
		x, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, false
		}
		switch m[2] {
		case "", "s":
		case "ms":
			x /= 1000
		case "min":
			x *= 60
		case "h":
			x *= 3600
		case "d":
			x *= 86400
		default:
			return 0, false
		}
		f = x
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return 0, false
	}
	return int64(math.Round(f)), true
}
