package restapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
)

const (
	future = "2026-11-29T06:19:09+00:00" // an hour after t0
	past   = "2026-11-29T05:00:00+00:00"
)

// takeOver makes the fake's HA loops hand the leader key to name on the
// third poll after the failover key was written, and clear the key.
func takeOver(name string) func(c *dcs.Cluster, n int) {
	return func(c *dcs.Cluster, n int) {
		switch {
		case n == 2:
			c.Leader = nil
		case n >= 3:
			c.Leader = &dcs.Leader{Name: name, ModRevision: 30}
			c.FailoverRequest = nil
		}
	}
}

func TestSwitchoverRefusals(t *testing.T) {
	cases := []struct {
		name    string
		path    string
		body    string
		cluster func(c *dcs.Cluster)
		code    int
		msg     string
	}{
		// the body
		{name: "malformed JSON", path: "/switchover", body: `{"leader": "node0",`, code: 400,
			msg: "the request body is not valid JSON: unexpected EOF"},
		{name: "not an object", path: "/switchover", body: `["node0"]`, code: 400,
			msg: "the request body must be a JSON object, got an array"},
		{name: "no body", path: "/switchover", body: "", code: 400,
			msg: "the request body must be a JSON object, got nothing"},
		{name: "empty object", path: "/failover", body: `{}`, code: 400,
			msg: "the request body must be a non-empty JSON object"},
		{name: "trailing data", path: "/switchover", body: `{"leader":"node0"} {}`, code: 400,
			msg: "the request body is not valid JSON: unexpected data after the top-level value"},
		{name: "leader not a string", path: "/switchover", body: `{"leader": 1}`, code: 400,
			msg: `"leader" must be a string, got a number`},

		// what Patroni checks before reading the cluster
		{name: "failover without candidate", path: "/failover", body: `{"leader":"node0"}`, code: 400,
			msg: "Failover could be performed only to a specific candidate"},
		{name: "switchover without leader", path: "/switchover", body: `{"candidate":"node2"}`, code: 400,
			msg: "Switchover could be performed only from a specific leader"},
		{name: "scheduled failover", path: "/failover", body: `{"candidate":"node2","scheduled_at":"` + future + `"}`, code: 400,
			msg: "Failover can't be scheduled"},
		{name: "scheduled while paused", path: "/switchover", body: `{"leader":"node0","candidate":"node2","scheduled_at":"` + future + `"}`,
			cluster: func(c *dcs.Cluster) { c.Config["pause"] = true }, code: 400,
			msg: "Can't schedule switchover in the paused state"},
		{name: "schedule without zone", path: "/switchover", body: `{"leader":"node0","scheduled_at":"2026-11-29T06:19:09"}`, code: 400,
			msg: "Timezone information is mandatory for the scheduled switchover"},
		{name: "schedule unparsable", path: "/switchover", body: `{"leader":"node0","scheduled_at":"tomorrow"}`, code: 422,
			msg: "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"},
		{name: "schedule not a string", path: "/switchover", body: `{"leader":"node0","scheduled_at":12}`, code: 422,
			msg: "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"},
		{name: "schedule in the past", path: "/switchover", body: `{"leader":"node0","scheduled_at":"` + past + `"}`, code: 422,
			msg: "Cannot schedule switchover in the past"},
		{name: "paused without candidate", path: "/switchover", body: `{"leader":"node0"}`,
			cluster: func(c *dcs.Cluster) { c.Config["pause"] = "on" }, code: 400,
			msg: "Switchover is possible only to a specific candidate in a paused state"},
		{name: "target is source", path: "/switchover", body: `{"leader":"node0","candidate":"node0"}`, code: 400,
			msg: "Switchover target and source are the same"},

		// checks on the fresh snapshot
		{name: "wrong leader", path: "/switchover", body: `{"leader":"node1","candidate":"node2"}`, code: 412,
			msg: "leader name does not match"},
		{name: "no leader key", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) { c.Leader = nil }, code: 412, msg: "leader name does not match"},
		{name: "failover naming a wrong leader", path: "/failover", body: `{"leader":"node1","candidate":"node2"}`, code: 412,
			msg: "leader name does not match"},
		{name: "unknown candidate", path: "/switchover", body: `{"leader":"node0","candidate":"node9"}`, code: 412,
			msg: "candidate does not exists"},
		{name: "member spelling", path: "/failover", body: `{"member":"node9"}`, code: 412,
			msg: "candidate does not exists"},
		{name: "candidate is the leader", path: "/failover", body: `{"candidate":"node0"}`, code: 412,
			msg: `candidate "node0" is already the leader`},
		{name: "candidate nofailover", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) { c.Members[2].Tags = map[string]any{"nofailover": true} }, code: 412,
			msg: `candidate "node2" is tagged nofailover`},
		{name: "candidate failover_priority 0", path: "/failover", body: `{"candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) { c.Members[2].Tags = map[string]any{"failover_priority": 0.0} }, code: 412,
			msg: `candidate "node2" is tagged nofailover`},
		{name: "candidate stopped", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) { c.Members[2].State = "stopped" }, code: 412,
			msg: `candidate "node2" is not running (state: stopped)`},
		{name: "candidate lagging", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) { c.Status.Optime = sampleLSN + 2<<20 }, code: 412,
			msg: `candidate "node2" is lagging 2097152 bytes behind the leader (maximum_lag_on_failover 1048576)`},
		{name: "candidate lagging, own limit", path: "/failover", body: `{"candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) {
				c.Config["maximum_lag_on_failover"] = 1000.0
				c.Members[2].ReceiveLSN = i64(sampleLSN - 1001)
			}, code: 412,
			msg: `candidate "node2" is lagging 1001 bytes behind the leader (maximum_lag_on_failover 1000)`},
		{name: "candidate lagging behind leader member key", path: "/switchover", body: `{"leader":"node0","candidate":"node1"}`,
			cluster: func(c *dcs.Cluster) {
				c.Status = nil
				c.Members[0].XLogLocation = sampleLSN + 3<<20
				c.Members[1].ReceiveLSN = nil
			}, code: 412,
			msg: `candidate "node1" is lagging 3145728 bytes behind the leader (maximum_lag_on_failover 1048576)`},
		{name: "candidate not synchronous", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) {
				c.Config["synchronous_mode"] = true
				c.Sync = json.RawMessage(`{"leader":"node0","sync_standby":"node1"}`)
			}, code: 412, msg: "candidate name does not match with sync_standby"},
		{name: "no sync standby", path: "/switchover", body: `{"leader":"node0"}`,
			cluster: func(c *dcs.Cluster) {
				c.Config["synchronous_mode"] = true
				c.Sync = json.RawMessage(`{"leader":"node0","sync_standby":null}`)
			}, code: 412, msg: "switchover is not possible: can not find sync_standby"},
		{name: "only the leader", path: "/switchover", body: `{"leader":"node0"}`,
			cluster: func(c *dcs.Cluster) { c.Members = c.Members[:1] }, code: 412,
			msg: "switchover is not possible: cluster does not have members except leader"},
		{name: "no good candidates", path: "/switchover", body: `{"leader":"node0"}`,
			cluster: func(c *dcs.Cluster) {
				c.Members[1].Tags = map[string]any{"nofailover": true}
				c.Members[2].State = "starting"
			}, code: 412, msg: "switchover is not possible: no good candidates have been found"},
		{name: "no good candidates, lagging", path: "/switchover", body: `{"leader":"node0"}`,
			cluster: func(c *dcs.Cluster) { c.Status.Optime = sampleLSN + 2<<20 }, code: 412,
			msg: "switchover is not possible: no good candidates have been found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := opsCluster()
			if tc.cluster != nil {
				tc.cluster(c)
			}
			ops := newFakeOps(c)
			s := newOpsServer(t, ops, nil)
			expect(t, send(s, http.MethodPost, tc.path, tc.body), tc.code, tc.msg)
			if len(ops.failoverWrites) != 0 || ops.wakes != 0 {
				t.Errorf("refused request wrote %v, woke %d times", ops.failoverWrites, ops.wakes)
			}
		})
	}
}

func TestSwitchoverScheduled(t *testing.T) {
	ops := newFakeOps(opsCluster())
	s := newOpsServer(t, ops, nil)
	// A scheduled switchover is not checked against the cluster, as in
	// Patroni: the leader's loop checks it when the time comes.
	rec := send(s, http.MethodPost, "/switchover", `{"leader":"node0","member":"node2","scheduled_at":"2026-11-29T07:19:09+01:00"}`)
	expect(t, rec, http.StatusAccepted, "Switchover scheduled")
	if len(ops.failoverWrites) != 1 || ops.wakes != 1 {
		t.Fatalf("writes %v, wakes %d", ops.failoverWrites, ops.wakes)
	}
	got := ops.failoverWrites[0]
	want := time.Date(2026, 11, 29, 6, 19, 9, 0, time.UTC)
	if got.Leader != "node0" || got.Candidate != "node2" || !got.ScheduledAt.Equal(want) || ops.failoverRevs[0] != 0 {
		t.Errorf("wrote %+v (rev %d)", got, ops.failoverRevs[0])
	}
	data, _ := got.MarshalJSON()
	if string(data) != `{"leader":"node0","member":"node2","scheduled_at":"2026-11-29T07:19:09+01:00"}` {
		t.Errorf("failover key %s", data)
	}

	// Patroni overwrites a scheduled switchover with a new one; we refuse
	// any request while one is scheduled, so none is lost unnoticed.
	rec = send(s, http.MethodPost, "/switchover", `{"leader":"node0","scheduled_at":"`+future+`"}`)
	expect(t, rec, http.StatusConflict, "a switchover is already scheduled at 2026-11-29T07:19:09+01:00; cancel it first (DELETE /switchover)")
	rec = send(s, http.MethodPost, "/switchover", `{"leader":"node0","candidate":"node1"}`)
	expect(t, rec, http.StatusConflict, "a switchover is already scheduled at 2026-11-29T07:19:09+01:00; cancel it first (DELETE /switchover)")
	if len(ops.failoverWrites) != 1 {
		t.Errorf("writes %v", ops.failoverWrites)
	}
}

func TestSwitchoverPoll(t *testing.T) {
	cases := []struct {
		name    string
		path    string
		body    string
		cluster func(c *dcs.Cluster)
		script  func(c *dcs.Cluster, n int)
		code    int
		msg     string
		write   dcs.Failover
	}{
		{name: "switched", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			script: takeOver("node2"), code: 200, msg: `Successfully switched over to "node2"`,
			write: dcs.Failover{Leader: "node0", Candidate: "node2"}},
		{name: "switched to any", path: "/switchover", body: `{"leader":"node0"}`,
			script: takeOver("node1"), code: 200, msg: `Successfully switched over to "node1"`,
			write: dcs.Failover{Leader: "node0"}},
		{name: "switched elsewhere", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			script: takeOver("node1"), code: 200, msg: `Switched over to "node1" instead of "node2"`,
			write: dcs.Failover{Leader: "node0", Candidate: "node2"}},
		{name: "failed over", path: "/failover", body: `{"candidate":"node2"}`,
			script: takeOver("node2"), code: 200, msg: `Successfully failed over to "node2"`,
			write: dcs.Failover{Candidate: "node2"}},
		{name: "failed over without a leader", path: "/failover", body: `{"candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) { c.Leader = nil },
			script:  takeOver("node2"), code: 200, msg: `Successfully failed over to "node2"`,
			write: dcs.Failover{Candidate: "node2"}},
		{name: "failover naming the leader is a switchover", path: "/failover", body: `{"leader":"node0","candidate":"node2"}`,
			script: takeOver("node2"), code: 200, msg: `Successfully switched over to "node2"`,
			write: dcs.Failover{Leader: "node0", Candidate: "node2"}},
		{name: "paused with candidate", path: "/switchover", body: `{"leader":"node0","candidate":"node1"}`,
			cluster: func(c *dcs.Cluster) { c.Config["pause"] = true },
			script:  takeOver("node1"), code: 200, msg: `Successfully switched over to "node1"`,
			write: dcs.Failover{Leader: "node0", Candidate: "node1"}},
		{name: "synchronous candidate", path: "/switchover", body: `{"leader":"node0","candidate":"node1"}`,
			cluster: func(c *dcs.Cluster) {
				c.Config["synchronous_mode"] = true
				c.Sync = json.RawMessage(`{"leader":"node0","sync_standby":"NODE1"}`)
			},
			script: takeOver("node1"), code: 200, msg: `Successfully switched over to "node1"`,
			write: dcs.Failover{Leader: "node0", Candidate: "node1"}},
		{name: "lag within a raised limit", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			cluster: func(c *dcs.Cluster) {
				c.Status.Optime = sampleLSN + 2<<20
				c.Config["maximum_lag_on_failover"] = 4194304.0
			},
			script: takeOver("node2"), code: 200, msg: `Successfully switched over to "node2"`,
			write: dcs.Failover{Leader: "node0", Candidate: "node2"}},
		{name: "key cleared", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			script: func(c *dcs.Cluster, n int) {
				if n == 3 {
					c.FailoverRequest = nil
				}
			}, code: 503, msg: "Switchover failed",
			write: dcs.Failover{Leader: "node0", Candidate: "node2"}},
		{name: "failover key cleared", path: "/failover", body: `{"candidate":"node2"}`,
			script: func(c *dcs.Cluster, n int) { c.FailoverRequest = nil },
			code:   503, msg: "Failover failed",
			write: dcs.Failover{Candidate: "node2"}},
		{name: "nothing happens", path: "/switchover", body: `{"leader":"node0","candidate":"node2"}`,
			script: func(c *dcs.Cluster, n int) {},
			code:   503, msg: "Switchover status unknown after 0.3 seconds; operation may still be in progress",
			write: dcs.Failover{Leader: "node0", Candidate: "node2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := opsCluster()
			if tc.cluster != nil {
				tc.cluster(c)
			}
			ops := newFakeOps(c)
			ops.afterFailover = tc.script
			s := newOpsServer(t, ops, nil)
			expect(t, send(s, http.MethodPost, tc.path, tc.body), tc.code, tc.msg)
			if len(ops.failoverWrites) != 1 || ops.wakes != 1 {
				t.Fatalf("writes %v, wakes %d", ops.failoverWrites, ops.wakes)
			}
			if got := *ops.failoverWrites[0]; got != tc.write || ops.failoverRevs[0] != 0 {
				t.Errorf("wrote %+v (rev %d), want %+v", got, ops.failoverRevs[0], tc.write)
			}
		})
	}
}

func TestSwitchoverPollEndsWithRequest(t *testing.T) {
	ops := newFakeOps(opsCluster())
	ops.afterFailover = func(c *dcs.Cluster, n int) {}
	s := newOpsServer(t, ops, nil)
	s.pollWindow = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	rec := sendCtx(ctx, s, http.MethodPost, "/switchover", `{"leader":"node0","candidate":"node2"}`)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("poll went on %v after the request ended", took)
	}
	expect(t, rec, http.StatusServiceUnavailable, "Switchover status unknown after 60 seconds; operation may still be in progress")
}

func TestSwitchoverPollWindow(t *testing.T) {
	// Patroni's window, 2*max(10s, loop_wait), within the write timeout.
	ops := newFakeOps(opsCluster())
	s := newOpsServer(t, ops, nil)
	s.pollWindow = 0
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		loopWait time.Duration
		want     string
	}{{2 * time.Second, "20"}, {12 * time.Second, "24"}, {time.Minute, "30"}} {
		_, msg := s.pollFailover(ctx, tc.loopWait, "node0", "", actionSwitchover)
		if want := "Switchover status unknown after " + tc.want + " seconds; operation may still be in progress"; msg != want {
			t.Errorf("loop_wait %v: %q, want %q", tc.loopWait, msg, want)
		}
	}
}

func TestSwitchoverDCSFailures(t *testing.T) {
	t.Run("write fails", func(t *testing.T) {
		ops := newFakeOps(opsCluster())
		ops.failoverErr = errFake
		expect(t, send(newOpsServer(t, ops, nil), http.MethodPost, "/switchover", `{"leader":"node0","candidate":"node2"}`),
			http.StatusServiceUnavailable, "failed to write failover key into DCS")
		if ops.wakes != 0 {
			t.Error("woke the loop after a failed write")
		}
	})
	t.Run("write refused", func(t *testing.T) {
		ops := newFakeOps(opsCluster())
		ops.failoverRefuse = true
		expect(t, send(newOpsServer(t, ops, nil), http.MethodPost, "/switchover", `{"leader":"node0","scheduled_at":"`+future+`"}`),
			http.StatusServiceUnavailable, "failed to write failover key into DCS")
	})
	t.Run("read fails", func(t *testing.T) {
		ops := newFakeOps(opsCluster())
		ops.clusterErr = errFake
		expect(t, send(newOpsServer(t, ops, nil), http.MethodPost, "/switchover", `{"leader":"node0","candidate":"node2"}`),
			http.StatusServiceUnavailable, "failed to read the cluster state from DCS: etcd is down")
	})
}

func TestDeleteSwitchover(t *testing.T) {
	scheduled := func(c *dcs.Cluster) {
		c.FailoverRequest = &dcs.Failover{Leader: "node0", Candidate: "node2", ScheduledAt: time.Date(2026, 11, 29, 6, 19, 9, 0, time.UTC), ModRevision: 17}
		c.FailoverRevision = 17
	}
	t.Run("scheduled", func(t *testing.T) {
		c := opsCluster()
		scheduled(c)
		ops := newFakeOps(c)
		expect(t, send(newOpsServer(t, ops, nil), http.MethodDelete, "/switchover", ""), http.StatusOK, "scheduled switchover deleted")
		if len(ops.failoverWrites) != 1 || ops.failoverWrites[0] != nil || ops.failoverRevs[0] != 17 {
			t.Errorf("writes %v revs %v, want one clear at revision 17", ops.failoverWrites, ops.failoverRevs)
		}
	})
	t.Run("none", func(t *testing.T) {
		ops := newFakeOps(opsCluster())
		expect(t, send(newOpsServer(t, ops, nil), http.MethodDelete, "/switchover", ""), http.StatusNotFound, "no switchover is scheduled")
	})
	t.Run("immediate request", func(t *testing.T) {
		c := opsCluster()
		c.FailoverRequest = &dcs.Failover{Leader: "node0"}
		c.FailoverRevision = 17
		ops := newFakeOps(c)
		expect(t, send(newOpsServer(t, ops, nil), http.MethodDelete, "/switchover", ""), http.StatusNotFound, "no switchover is scheduled")
		if len(ops.failoverWrites) != 0 {
			t.Error("cleared an immediate request")
		}
	})
	t.Run("conflict", func(t *testing.T) {
		c := opsCluster()
		scheduled(c)
		ops := newFakeOps(c)
		ops.failoverRefuse = true
		expect(t, send(newOpsServer(t, ops, nil), http.MethodDelete, "/switchover", ""), http.StatusConflict,
			"the failover key changed meanwhile; the scheduled switchover was not deleted")
	})
	t.Run("write fails", func(t *testing.T) {
		c := opsCluster()
		scheduled(c)
		ops := newFakeOps(c)
		ops.failoverErr = errFake
		expect(t, send(newOpsServer(t, ops, nil), http.MethodDelete, "/switchover", ""), http.StatusServiceUnavailable,
			"failed to write failover key into DCS")
	})
}

// In synchronous mode a switchover to a standby that is not synchronous
// yet waits (bounded) for the sync key to name it, then goes ahead.
func TestSwitchoverWaitsForSyncStandby(t *testing.T) {
	c := opsCluster()
	c.Config = map[string]any{"synchronous_mode": true, "loop_wait": 2, "ttl": 10, "retry_timeout": 4}
	c.Sync = json.RawMessage(`{"leader":"node0","sync_standby":null}`)
	ops := newFakeOps(c)
	s := newOpsServer(t, ops, nil)
	s.syncWait = 5 * time.Second
	go func() {
		time.Sleep(300 * time.Millisecond)
		ops.mu.Lock()
		ops.c.Sync = json.RawMessage(`{"leader":"node0","sync_standby":"node2"}`)
		ops.mu.Unlock()
	}()
	start := time.Now()
	rec := send(s, http.MethodPost, "/switchover", `{"leader":"node0","candidate":"node2"}`)
	if len(ops.failoverWrites) != 1 {
		t.Fatalf("answer %d %q; failover key writes %v", rec.Code, rec.Body.String(), ops.failoverWrites)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("wrote the failover key after %s, before the standby was synchronous", waited)
	}
	// Never synchronous: refused once the wait is over.
	c2 := opsCluster()
	c2.Config = map[string]any{"synchronous_mode": true}
	c2.Sync = json.RawMessage(`{"leader":"node0","sync_standby":null}`)
	ops2 := newFakeOps(c2)
	s2 := newOpsServer(t, ops2, nil)
	expect(t, send(s2, http.MethodPost, "/switchover", `{"leader":"node0","candidate":"node2"}`), http.StatusPreconditionFailed, "candidate name does not match with sync_standby")
}
