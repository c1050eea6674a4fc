package restapi

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
)

func TestRestart(t *testing.T) {
	at := time.Date(2026, 11, 29, 6, 19, 9, 0, time.UTC)
	cases := []struct {
		name     string
		body     string
		setup    func(o *fakeOps)
		code     int
		msg      string
		restart  *RestartRequest // the Restart call expected
		schedule *RestartRequest // the ScheduleRestart call expected
	}{
		{name: "no body", body: "", code: 200, msg: "restarted successfully", restart: &RestartRequest{}},
		{name: "empty object", body: "{}", code: 200, msg: "restarted successfully", restart: &RestartRequest{}},
		{name: "message of the daemon", body: "{}", setup: func(o *fakeOps) { o.restartMsg = "restarted successfully after 3s" },
			code: 200, msg: "restarted successfully after 3s", restart: &RestartRequest{}},
		{name: "conditions not met", body: `{"restart_pending": true}`,
			setup: func(o *fakeOps) { o.restartOK, o.restartMsg = false, "restart conditions are not satisfied" },
			code:  503, msg: "restart conditions are not satisfied", restart: &RestartRequest{RestartPending: true}},
		{name: "failed without message", body: "", setup: func(o *fakeOps) { o.restartOK = false },
			code: 503, msg: "restart failed", restart: &RestartRequest{}},
		{name: "all filters", body: `{"restart_pending": true, "role": "master", "postgres_version": "15.3", "timeout": "30s"}`,
			code: 200, msg: "restarted successfully",
			restart: &RestartRequest{RestartPending: true, Role: "primary", PostgresVersion: 150003, Timeout: 30 * time.Second}},
		{name: "replica, old version style", body: `{"role": "replica", "postgres_version": "9.6.24", "timeout": 45}`,
			code: 200, msg: "restarted successfully",
			restart: &RestartRequest{Role: "replica", PostgresVersion: 90624, Timeout: 45 * time.Second}},
		{name: "standby leader, major only", body: `{"role": "standby_leader", "postgres_version": "15", "timeout": "2min"}`,
			code: 200, msg: "restarted successfully",
			restart: &RestartRequest{Role: "standby_leader", PostgresVersion: 150000, Timeout: 2 * time.Minute}},
		{name: "server_version_num", body: `{"postgres_version": "150003", "restart_pending": "false"}`,
			code: 200, msg: "restarted successfully", restart: &RestartRequest{PostgresVersion: 150003}},
		{name: "scheduled", body: `{"schedule": "` + future + `", "role": "replica", "restart_pending": true}`,
			code: 202, msg: "Restart scheduled", schedule: &RestartRequest{Schedule: at, Role: "replica", RestartPending: true}},
		{name: "already scheduled", body: `{"schedule": "` + future + `"}`, setup: func(o *fakeOps) { o.scheduleOK = false },
			code: 409, msg: "Another restart is already scheduled", schedule: &RestartRequest{Schedule: at}},

		{name: "scheduled while paused", body: `{"schedule": "` + future + `"}`,
			setup: func(o *fakeOps) { o.c.Config["pause"] = true },
			code:  500, msg: "Can't schedule restart in the paused state"},
		{name: "at once while paused", body: `{}`, setup: func(o *fakeOps) { o.c.Config["pause"] = true },
			code: 200, msg: "restarted successfully", restart: &RestartRequest{}},
		{name: "schedule in the past", body: `{"schedule": "` + past + `"}`, code: 422, msg: "Cannot schedule restart in the past"},
		{name: "schedule without zone", body: `{"schedule": "2026-11-29 06:19"}`, code: 400,
			msg: "Timezone information is mandatory for the scheduled restart"},
		{name: "schedule garbage", body: `{"schedule": "soon"}`, code: 422,
			msg: "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"},
		{name: "bad role", body: `{"role": "leader"}`, code: 400,
			msg: "PostgreSQL role should be either primary, standby_leader, or replica"},
		{name: "bad version format", body: `{"postgres_version": "9.6"}`, code: 400,
			msg: "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"},
		{name: "bad version", body: `{"postgres_version": "a.b.c"}`, code: 400, msg: "Invalid PostgreSQL version: a.b.c"},
		{name: "zero timeout", body: `{"timeout": "0"}`, code: 400, msg: "Timeout should be a positive number of seconds"},
		{name: "negative timeout", body: `{"timeout": -5}`, code: 400, msg: "Timeout should be a positive number of seconds"},
		{name: "timeout garbage", body: `{"timeout": "forever"}`, code: 400, msg: "Timeout should be a positive number of seconds"},
		{name: "restart_pending garbage", body: `{"restart_pending": "perhaps"}`, code: 400, msg: "restart_pending should be a boolean"},
		{name: "unknown filter", body: `{"role": "replica", "when": "now"}`, code: 400,
			msg: "Unknown filter for the scheduled restart: when"},
		{name: "malformed", body: `{"role": }`, code: 400,
			msg: "the request body is not valid JSON: invalid character '}' looking for beginning of value"},
		{name: "not an object", body: `"now"`, code: 400, msg: "the request body must be a JSON object, got a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops := newFakeOps(opsCluster())
			if tc.setup != nil {
				tc.setup(ops)
			}
			expect(t, send(newOpsServer(t, ops, nil), http.MethodPost, "/restart", tc.body), tc.code, tc.msg)
			checkCalls(t, "Restart", ops.restarts, tc.restart)
			checkCalls(t, "ScheduleRestart", ops.schedules, tc.schedule)
		})
	}
}

func checkCalls(t *testing.T, name string, got []RestartRequest, want *RestartRequest) {
	t.Helper()
	switch {
	case want == nil && len(got) != 0:
		t.Errorf("%s called with %+v", name, got)
	case want != nil && (len(got) != 1 || !got[0].Schedule.Equal(want.Schedule)):
		t.Errorf("%s calls %+v, want one with %+v", name, got, *want)
	case want != nil:
		g, w := got[0], *want
		g.Schedule, w.Schedule = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s(%+v), want %+v", name, got[0], *want)
		}
	}
}

func TestRestartPausedFromPublishedStatus(t *testing.T) {
	// When DCS cannot be read, the published status says whether paused.
	ops := newFakeOps(opsCluster())
	ops.clusterErr = errFake
	s := newOpsServer(t, ops, nil)
	n := primaryNode()
	n.Paused = true
	s.board.Publish(n)
	expect(t, send(s, http.MethodPost, "/restart", `{"schedule": "`+future+`"}`), 500, "Can't schedule restart in the paused state")
}

func TestDeleteRestart(t *testing.T) {
	ops := newFakeOps(opsCluster())
	s := newOpsServer(t, ops, nil)
	expect(t, send(s, http.MethodDelete, "/restart", ""), http.StatusOK, "scheduled restart deleted")
	ops.cancelOK = false
	expect(t, send(s, http.MethodDelete, "/restart", ""), http.StatusNotFound, "no restarts are scheduled")
	if ops.cancels != 2 {
		t.Errorf("CancelRestart called %d times", ops.cancels)
	}
}

func TestReinitialize(t *testing.T) {
	cases := []struct {
		body    string
		refusal string
		code    int
		msg     string
		force   []bool
	}{
		{"", "", 200, "reinitialize started", []bool{false}},
		{`{}`, "", 200, "reinitialize started", []bool{false}},
		{`{"force": true}`, "", 200, "reinitialize started", []bool{true}},
		{`{"force": "yes"}`, "", 200, "reinitialize started", []bool{true}},
		{`{"force": false}`, "I am the leader, can not reinitialize", 503, "I am the leader, can not reinitialize", []bool{false}},
		{`{"force": `, "", 400, "the request body is not valid JSON: unexpected EOF", nil},
		{`[true]`, "", 400, "the request body must be a JSON object, got an array", nil},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			ops := newFakeOps(opsCluster())
			ops.reinitRefusal = tc.refusal
			expect(t, send(newOpsServer(t, ops, nil), http.MethodPost, "/reinitialize", tc.body), tc.code, tc.msg)
			if !reflect.DeepEqual(ops.reinits, tc.force) {
				t.Errorf("Reinitialize calls %v, want %v", ops.reinits, tc.force)
			}
		})
	}
}

func TestReload(t *testing.T) {
	ops := newFakeOps(opsCluster())
	s := newOpsServer(t, ops, nil)
	expect(t, send(s, http.MethodPost, "/reload", ""), http.StatusAccepted, "reload scheduled")
	ops.reloadErr = errors.New("config.yml: line 3: bad indentation")
	expect(t, send(s, http.MethodPost, "/reload", ""), http.StatusInternalServerError, "config.yml: line 3: bad indentation")
	if ops.reloads != 2 {
		t.Errorf("Reload called %d times", ops.reloads)
	}
}

func TestPostgresVersionToInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{"9.5.3", 90503, false}, {"9.3.13", 90313, false}, {"10.1", 100001, false}, {"15.3", 150003, false},
		{"17", 170000, false}, {"150003", 150003, false},
		{"9.6", 0, true}, {"9", 0, true}, {"1.2.3.4", 0, true}, {"a.b.c", 0, true}, {"15.", 0, true},
	} {
		got, msg := postgresVersionToInt(tc.in)
		if (msg != "") != tc.bad || got != tc.want {
			t.Errorf("postgresVersionToInt(%q) = %d %q", tc.in, got, msg)
		}
	}
}

// Every operation endpoint is behind basic authentication when it is
// configured, and works with the right credentials.
func TestOperationsRequireAuth(t *testing.T) {
	routes := []struct {
		method, path, body string
		setup              func(c *dcs.Cluster)
		code               int
	}{
		{http.MethodPost, "/switchover", `{"leader":"node0","candidate":"node2","scheduled_at":"` + future + `"}`, nil, 202},
		{http.MethodPost, "/failover", `{"candidate":"node2"}`, nil, 503}, // nothing moves the leader in the fake
		{http.MethodDelete, "/switchover", "", func(c *dcs.Cluster) {
			c.FailoverRequest = &dcs.Failover{Leader: "node0", ScheduledAt: t0.Add(time.Hour)}
			c.FailoverRevision = 3
		}, 200},
		{http.MethodPost, "/restart", "", nil, 200},
		{http.MethodDelete, "/restart", "", nil, 200},
		{http.MethodPost, "/reinitialize", "", nil, 200},
		{http.MethodPost, "/reload", "", nil, 202},
		{http.MethodPatch, "/config", `{"ttl": 30}`, nil, 200},
		{http.MethodPut, "/config", `{"ttl": 30}`, nil, 200},
	}
	auth := authConfig()
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			c := opsCluster()
			if rt.setup != nil {
				rt.setup(c)
			}
			ops := newFakeOps(c)
			s := newOpsServer(t, ops, auth)
			s.pollWindow = 20 * time.Millisecond
			rec := send(s, rt.method, rt.path, rt.body)
			expect(t, rec, http.StatusUnauthorized, "authentication required\n")
			rec = send(s, rt.method, rt.path, rt.body, "Authorization", basicHeader("admin", "wrong"))
			expect(t, rec, http.StatusUnauthorized, "wrong credentials\n")
			if ops.clusterN+ops.wakes+ops.reloads+ops.cancels+len(ops.restarts)+len(ops.reinits) != 0 {
				t.Fatal("an operation ran without authentication")
			}
			rec = send(s, rt.method, rt.path, rt.body, "Authorization", basicHeader("admin", "s3cret"))
			if rec.Code != rt.code {
				t.Errorf("with credentials: %d %q, want %d", rec.Code, rec.Body, rt.code)
			}
			// Without Ops the route exists but cannot work.
			bare := New(Options{Auth: auth})
			expect(t, send(bare, rt.method, rt.path, rt.body, "Authorization", basicHeader("admin", "s3cret")),
				http.StatusServiceUnavailable, "operations are not available")
			expect(t, send(bare, rt.method, rt.path, rt.body), http.StatusUnauthorized, "authentication required\n")
		})
	}
	// The read-only ones need no credentials.
	s := newOpsServer(t, newFakeOps(opsCluster()), auth)
	for _, path := range []string{"/config", "/history"} {
		if rec := send(s, http.MethodGet, path, ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d %q", path, rec.Code, rec.Body)
		}
		expect(t, send(New(Options{Auth: auth}), http.MethodGet, path, ""), http.StatusServiceUnavailable, "operations are not available")
	}
}
