package ctl

import (
	"encoding/base64"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

var adminAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:secret"))

// oneRequest checks that f got exactly one unsafe request, as given.
func oneRequest(t *testing.T, f *fakeMember, method, path string, body map[string]any) {
	t.Helper()
	reqs := f.unsafeRequests()
	if len(reqs) != 1 {
		t.Fatalf("%s got %d requests, want 1: %+v", f.name, len(reqs), reqs)
	}
	r := reqs[0]
	if r.Method != method || r.Path != path {
		t.Errorf("%s got %s %s, want %s %s", f.name, r.Method, r.Path, method, path)
	}
	if r.Auth != adminAuth {
		t.Errorf("%s: Authorization %q, want %q", f.name, r.Auth, adminAuth)
	}
	if body != nil {
		if r.ContentType != "application/json" {
			t.Errorf("Content-Type %q", r.ContentType)
		}
		if got := decodeJSON(t, r.Body); !reflect.DeepEqual(got, body) {
			t.Errorf("%s body %s, want %v", f.name, r.Body, body)
		}
	}
}

func noRequests(t *testing.T, c *cluster, names ...string) {
	t.Helper()
	for _, n := range names {
		if reqs := c.members[n].unsafeRequests(); len(reqs) != 0 {
			t.Errorf("%s got requests: %+v", n, reqs)
		}
	}
}

func TestSwitchoverForce(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c.members["node0"].setReply(func(request) (int, string) { return 200, `Successfully switched over to "node2"` })
	r := run(t, c.cfg, nil, "switchover", "--candidate", "node2", "--force")
	r.mustSucceed(t)
	oneRequest(t, c.members["node0"], "POST", "/switchover", map[string]any{"leader": "node0", "candidate": "node2"})
	noRequests(t, c, "node1", "node2")
	want := "Current cluster topology\n" + patroni33Header(t, readTestdata(t, "patroni-3.0.2-patronictl-list.txt"), " Cluster: pbench (7713458569163569832) ") +
		"2026-11-29 05:19:15.17927 Successfully switched over to \"node2\"\n" +
		patroni33Header(t, readTestdata(t, "patroni-3.0.2-patronictl-list.txt"), " Cluster: pbench (7713458569163569832) ")
	if r.out != want {
		t.Errorf("switchover output:\n%s\nwant:\n%s", r.out, want)
	}
}

func TestSwitchoverInteractive(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c.members["node0"].setReply(func(request) (int, string) { return 200, `Successfully switched over to "node1"` })
	// Primary [node0]: <enter>, Candidate: node1, When: <enter> (now), sure: y
	r := run(t, c.cfg, strings.NewReader("\nnode1\n\ny\n"), "switchover")
	r.mustSucceed(t)
	for _, p := range []string{
		"Primary [node0]: \n",
		"Candidate ['node1', 'node2'] []: \n",
		"When should the switchover take place (e.g. 2026-11-29T06:19 )  [now]: \n",
		"Are you sure you want to switchover cluster pbench, demoting current leader node0? [y/N]: \n",
		`Successfully switched over to "node1"`,
	} {
		if !strings.Contains(r.out, p) {
			t.Errorf("output lacks %q:\n%s", p, r.out)
		}
	}
	oneRequest(t, c.members["node0"], "POST", "/switchover", map[string]any{"leader": "node0", "candidate": "node1"})

	// Answering no aborts without a request.
	c2 := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r = run(t, c2.cfg, strings.NewReader("\nnode1\n\nn\n"), "switchover")
	if r.code != 1 || r.err != "Error: Aborting switchover\n" {
		t.Errorf("abort: code %d stderr %q", r.code, r.err)
	}
	noRequests(t, c2, "node0", "node1", "node2")
}

func TestSwitchoverScheduled(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c.members["node0"].setReply(func(request) (int, string) { return 202, "Switchover scheduled" })
	r := run(t, c.cfg, nil, "switchover", "--primary", "node0", "--candidate", "node2", "--scheduled", "2026-11-29T06:19:09+00:00", "--force")
	r.mustSucceed(t)
	oneRequest(t, c.members["node0"], "POST", "/switchover",
		map[string]any{"leader": "node0", "candidate": "node2", "scheduled_at": "2026-11-29T06:19:09+00:00"})
	if !strings.Contains(r.out, "2026-11-29 05:19:15.17927 Switchover scheduled\n") {
		t.Errorf("output:\n%s", r.out)
	}
}

func TestSwitchoverErrors(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c.members["node0"].setReply(func(request) (int, string) { return 412, "leader name does not match" })
	r := run(t, c.cfg, nil, "switchover", "--candidate", "node2", "--force")
	if r.code != 1 || r.err != "Switchover failed, details: 412, leader name does not match\n" {
		t.Errorf("412: code %d stderr %q", r.code, r.err)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--leader", "node1", "--force"}, "Error: Member node1 is not the leader of cluster pbench\n"},
		{[]string{"--candidate", "node0", "--force"}, "Error: Member node0 is already the leader of cluster pbench\n"},
		{[]string{"--candidate", "nope", "--force"}, "Error: Member nope does not exist in cluster pbench or is tagged as nofailover\n"},
		{[]string{"--candidate", "node1", "--scheduled", "tomorrow", "--force"}, "Error: Unable to parse scheduled timestamp (tomorrow). It should be in an unambiguous format (e.g. ISO 8601)\n"},
	} {
		r := run(t, c.cfg, nil, append([]string{"switchover"}, tc.args...)...)
		if r.code != 1 || r.err != tc.err {
			t.Errorf("switchover %v: code %d stderr %q, want %q", tc.args, r.code, r.err, tc.err)
		}
	}
	if n := len(c.members["node0"].unsafeRequests()); n != 1 {
		t.Errorf("node0 got %d requests, want 1", n)
	}

	// No leader: refused.
	put(t, c.key("leader"), "")
	if _, err := etcdCli.Delete(t.Context(), c.key("leader")); err != nil {
		t.Fatal(err)
	}
	r = run(t, c.cfg, nil, "switchover", "--force")
	if r.code != 1 || r.err != "Error: This cluster has no leader\n" {
		t.Errorf("no leader: code %d stderr %q", r.code, r.err)
	}
}

func TestSwitchoverFallsBackToDCS(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c.members["node0"].srv.Close() // the leader's REST API is down
	r := run(t, c.cfg, nil, "switchover", "--candidate", "node1", "--force")
	r.mustSucceed(t)
	if !strings.Contains(r.out, "Could not switchover using Patroni api, falling back to DCS") {
		t.Errorf("output:\n%s", r.out)
	}
	v, _ := get(t, c.key("failover"))
	if v != `{"leader":"node0","member":"node1"}` {
		t.Errorf("failover key %q", v)
	}
}

func TestFailover(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c.members["node0"].setReply(func(request) (int, string) { return 200, `Successfully failed over to "node2"` })
	r := run(t, c.cfg, nil, "failover", "--candidate", "node2", "--force")
	r.mustSucceed(t)
	oneRequest(t, c.members["node0"], "POST", "/failover", map[string]any{"candidate": "node2"})

	r = run(t, c.cfg, nil, "failover", "--force")
	if r.code != 1 || r.err != "Error: Failover could be performed only to a specific candidate\n" {
		t.Errorf("no candidate: code %d stderr %q", r.code, r.err)
	}
	// An asynchronous candidate in synchronous mode asks first.
	r = run(t, c.cfg, strings.NewReader("y\nn\n"), "failover", "--candidate", "node1")
	if r.code != 1 || !strings.Contains(r.out, "Are you sure you want to failover to the asynchronous node node1? [y/N]: ") ||
		!strings.Contains(r.out, "Are you sure you want to failover cluster pbench, demoting current leader node0? [y/N]: ") {
		t.Errorf("async candidate: code %d\n%s\n%s", r.code, r.out, r.err)
	}

	// Without a leader the request goes to the candidate.
	if _, err := etcdCli.Delete(t.Context(), c.key("leader")); err != nil {
		t.Fatal(err)
	}
	c.members["node2"].setReply(func(request) (int, string) { return 503, "Failover failed" })
	r = run(t, c.cfg, nil, "failover", "--candidate", "node2", "--force")
	if r.code != 1 || r.err != "Failover failed, details: 503, Failover failed\n" {
		t.Errorf("failover without leader: code %d stderr %q", r.code, r.err)
	}
	oneRequest(t, c.members["node2"], "POST", "/failover", map[string]any{"candidate": "node2"})
}

func TestRestart(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, nil, "restart", "pbench", "node1", "--force")
	r.mustSucceed(t)
	oneRequest(t, c.members["node1"], "POST", "/restart", map[string]any{})
	noRequests(t, c, "node0", "node2")
	if !strings.HasSuffix(r.out, "Success: restart on member node1\n") {
		t.Errorf("output:\n%s", r.out)
	}

	// The cluster name may be left out when the file gives it.
	c.members["node2"].setReply(func(request) (int, string) { return 503, "restart failed" })
	r = run(t, c.cfg, nil, "restart", "node2", "--force", "--pg-version", "15.5", "--timeout", "30")
	if r.code != 1 || r.err != "Failed: restart for member node2, status code=503, (restart failed)\n" {
		t.Errorf("503: code %d stderr %q", r.code, r.err)
	}
	oneRequest(t, c.members["node2"], "POST", "/restart", map[string]any{"postgres_version": "15.5", "timeout": "30"})

	// Interactive: all members, scheduled, confirmed.
	c2 := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	for _, f := range c2.members {
		f.setReply(func(request) (int, string) { return 202, "Restart scheduled" })
	}
	r = run(t, c2.cfg, strings.NewReader("2026-11-29T07:00+00:00\ny\n\n"), "restart", "pbench")
	r.mustSucceed(t)
	for _, p := range []string{
		"When should the restart take place (e.g. 2026-11-29T06:19)  [now]: \n",
		"Are you sure you want to schedule restart of members node0, node1, node2 at 2026-11-29 07:00:00+00:00? [y/N]: \n",
		"Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)  []: \n",
		"Success: restart scheduled on member node0\n",
	} {
		if !strings.Contains(r.out, p) {
			t.Errorf("output lacks %q:\n%s", p, r.out)
		}
	}
	for _, n := range []string{"node0", "node1", "node2"} {
		oneRequest(t, c2.members[n], "POST", "/restart", map[string]any{"schedule": "2026-11-29T07:00:00+00:00"})
	}

	// --role replica --pending: only members with pending_restart.
	c3 := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	put(t, c3.key("members/node2"), `{"conn_url":"postgres://127.0.0.1:5443/postgres","api_url":"`+c3.members["node2"].apiURL()+`","state":"running","role":"replica","pending_restart":true,"xlog_location":67108944,"timeline":1}`)
	r = run(t, c3.cfg, nil, "restart", "pbench", "--role", "replica", "--pending", "--force")
	r.mustSucceed(t)
	oneRequest(t, c3.members["node2"], "POST", "/restart", map[string]any{"restart_pending": true})
	noRequests(t, c3, "node0", "node1")

	r = run(t, c3.cfg, nil, "restart", "pbench", "nope", "--force")
	if r.code != 1 || r.err != "Error: No any among provided members\n" {
		t.Errorf("unknown member: code %d stderr %q", r.code, r.err)
	}
}

func TestReinit(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	f := c.members["node1"]
	polls := 0
	f.setReply(func(r request) (int, string) {
		if r.Method == http.MethodGet {
			polls++
			if polls < 3 {
				return 503, `{"state":"creating replica"}`
			}
			return 200, `{"state":"running"}`
		}
		return 200, "reinitialize started"
	})
	r := run(t, c.cfg, nil, "reinit", "pbench", "node1", "--force", "--wait")
	r.mustSucceed(t)
	oneRequest(t, f, "POST", "/reinitialize", map[string]any{"force": true})
	for _, p := range []string{"Success: reinitialize for member node1\n", "Waiting for reinitialize to complete on: node1\n", "Reinitialize is completed on: node1\n"} {
		if !strings.Contains(r.out, p) {
			t.Errorf("output lacks %q:\n%s", p, r.out)
		}
	}

	// The leader is not a candidate; a refusal is an error.
	r = run(t, c.cfg, nil, "reinit", "pbench", "node0", "--force")
	if r.code != 1 || r.err != "Error: No replica among provided members\n" {
		t.Errorf("reinit leader: code %d stderr %q", r.code, r.err)
	}
	c.members["node2"].setReply(func(request) (int, string) { return 503, "reinitialize already in progress" })
	r = run(t, c.cfg, strings.NewReader("y\nn\n"), "reinit", "pbench", "node2")
	if r.code != 1 || !strings.Contains(r.err, "Failed: reinitialize for member node2, status code=503, (reinitialize already in progress)") ||
		!strings.Contains(r.out, "Do you want to cancel it and reinitialize anyway? [y/N]: ") {
		t.Errorf("in progress: code %d\n%s\n%s", r.code, r.out, r.err)
	}
	oneRequest(t, c.members["node2"], "POST", "/reinitialize", map[string]any{"force": false})
}

func TestReload(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c.members["node0"].setReply(func(request) (int, string) { return 202, "reload scheduled" })
	c.members["node2"].setReply(func(request) (int, string) { return 500, "boom" })
	r := run(t, c.cfg, nil, "reload", "pbench", "--force")
	if r.code != 1 {
		t.Errorf("reload with one failure: code %d", r.code)
	}
	for _, p := range []string{
		"Reload request received for member node0 and will be processed within 2 seconds\n",
		"No changes to apply on member node1\n",
	} {
		if !strings.Contains(r.out, p) {
			t.Errorf("output lacks %q:\n%s", p, r.out)
		}
	}
	if r.err != "Failed: reload for member node2, status code=500, (boom)\n" {
		t.Errorf("stderr %q", r.err)
	}
	for _, n := range []string{"node0", "node1", "node2"} {
		oneRequest(t, c.members[n], "POST", "/reload", nil)
	}
}

func TestPauseResume(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, nil, "pause")
	r.mustSucceed(t)
	if r.out != "Success: cluster management is paused\n" {
		t.Errorf("pause: %q", r.out)
	}
	oneRequest(t, c.members["node0"], "PATCH", "/config", map[string]any{"pause": true})
	noRequests(t, c, "node1", "node2")

	r = run(t, c.cfg, nil, "resume")
	if r.code != 1 || r.err != "Error: Cluster is not paused\n" {
		t.Errorf("resume when not paused: code %d stderr %q", r.code, r.err)
	}

	// Paused: resume sends null; --wait polls GET /patroni.
	put(t, c.key("config"), `{"loop_wait":2,"pause":true}`)
	r = run(t, c.cfg, nil, "pause")
	if r.code != 1 || r.err != "Error: Cluster is already paused\n" {
		t.Errorf("pause when paused: code %d stderr %q", r.code, r.err)
	}
	c2 := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	put(t, c2.key("config"), `{"loop_wait":2,"pause":true}`)
	for _, f := range c2.members {
		f.setReply(func(r request) (int, string) {
			if r.Method == http.MethodGet {
				return 200, `{"state":"running"}`
			}
			return 200, "{}"
		})
	}
	c2.members["node0"].srv.Close() // the leader is unreachable: the next member is asked
	r = run(t, c2.cfg, nil, "resume", "--wait")
	if r.code != 1 || !strings.Contains(r.err, "node0 members didn't recognize pause state after 2 seconds") {
		t.Errorf("resume --wait with a dead member: code %d\n%s\n%s", r.code, r.out, r.err)
	}
	oneRequest(t, c2.members["node1"], "PATCH", "/config", map[string]any{"pause": nil})
	if !strings.Contains(r.out, "'resume' request sent, waiting until it is recognized by all nodes\n") {
		t.Errorf("output:\n%s", r.out)
	}

	// A refusal is reported.
	c3 := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	c3.members["node0"].setReply(func(request) (int, string) { return 401, "no auth header received" })
	r = run(t, c3.cfg, nil, "pause")
	if r.code != 1 || r.err != "Failed: pause cluster management status code=401, (no auth header received)\n" {
		t.Errorf("401: code %d stderr %q", r.code, r.err)
	}
}

func TestFlush(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, nil, "flush", "pbench", "switchover")
	r.mustSucceed(t)
	if r.out != "No pending scheduled switchover\n" {
		t.Errorf("no switchover: %q", r.out)
	}
	put(t, c.key("failover"), `{"leader":"node0","member":"node2","scheduled_at":"2026-11-29T06:19:09+00:00"}`)
	c.members["node0"].setReply(func(request) (int, string) { return 200, "scheduled switchover deleted" })
	r = run(t, c.cfg, nil, "flush", "pbench", "switchover")
	r.mustSucceed(t)
	if r.out != "Success: scheduled switchover deleted\n" {
		t.Errorf("flush switchover: %q", r.out)
	}
	oneRequest(t, c.members["node0"], "DELETE", "/switchover", nil)

	// flush restart: only members with a scheduled restart are asked.
	put(t, c.key("members/node1"), `{"conn_url":"postgres://127.0.0.1:5442/postgres","api_url":"`+c.members["node1"].apiURL()+`","state":"running","role":"replica","scheduled_restart":{"schedule":"2026-11-29T07:00:00+00:00"}}`)
	r = run(t, c.cfg, nil, "flush", "pbench", "restart", "--force")
	r.mustSucceed(t)
	oneRequest(t, c.members["node1"], "DELETE", "/restart", nil)
	if !strings.Contains(r.out, "Success: flush scheduled restart for member node1\n") || !strings.Contains(r.out, "No scheduled restart for member node2\n") {
		t.Errorf("flush restart:\n%s", r.out)
	}
}
