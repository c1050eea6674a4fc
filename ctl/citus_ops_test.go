package ctl

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// citusHosts are the members of the sample Citus cluster and their hosts.
var citusHosts = map[string]string{
	"coord1": "10.0.0.11", "coord2": "10.0.0.12", "coord3": "10.0.0.13",
	"work1-1": "10.0.1.11", "work1-2": "10.0.1.12",
	"work2-1": "10.0.2.11", "work2-2": "10.0.2.12", "work2-3": "10.0.2.13",
}

// citusFake is the sample Citus cluster with a fake REST API per member.
type citusFake struct {
	citusFiles
	members map[string]*fakeMember
}

func newCitusFake(t *testing.T) *citusFake {
	t.Helper()
	c := &citusFake{members: map[string]*fakeMember{}}
	replace := map[string]string{}
	for name, host := range citusHosts {
		f := newFakeMember(t, name)
		c.members[name] = f
		replace["http://"+host+":8008/patroni"] = f.apiURL()
	}
	c.citusFiles = citusCluster(t, replace)
	return c
}

func (c *citusFake) key(k string) string { return c.ns + "demo/" + k }

// calls lists the unsafe requests every member got, as "member METHOD
// /path", by member name.
func (c *citusFake) calls() []string {
	var out []string
	names := make([]string, 0, len(c.members))
	for name := range c.members {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, r := range c.members[name].unsafeRequests() {
			out = append(out, name+" "+r.Method+" "+r.Path)
		}
	}
	return out
}

func (c *citusFake) reset() {
	for _, f := range c.members {
		f.mu.Lock()
		f.reqs = nil
		f.mu.Unlock()
	}
}

// pyTimestamp is patronictl's timestamp() at the start of a line.
var pyTimestamp = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ `)

// citusOpCases are commands that call the members, run with --force or
// without any prompt: each is run by pgwardenctl and, when installed, by
// patronictl 3.0.2, whose outputs, exit codes and calls must be the same.
var citusOpCases = []struct {
	name  string
	args  []string
	reply map[string]string // member -> answer (status 200)
	code  int
	calls []string
	err   string
}{
	{
		name:  "switchover in a group",
		args:  []string{"switchover", "--group", "1", "--candidate", "work1-2", "--force"},
		reply: map[string]string{"work1-1": `Successfully switched over to "work1-2"`},
		calls: []string{"work1-1 POST /switchover"},
	},
	{
		name:  "failover in a group",
		args:  []string{"failover", "demo", "--group", "2", "--candidate", "work2-1", "--force"},
		reply: map[string]string{"work2-2": `Successfully failed over to "work2-1"`},
		calls: []string{"work2-2 POST /failover"},
	},
	{
		name: "switchover without a group",
		args: []string{"switchover", "--candidate", "work1-2", "--force"},
		code: 1,
		err:  "Error: For Citus clusters the --group must me specified\n",
	},
	{
		name: "failover without a group",
		args: []string{"failover", "--candidate", "work1-2", "--force"},
		code: 1,
		err:  "Error: For Citus clusters the --group must me specified\n",
	},
	{
		name:  "reload a group",
		args:  []string{"reload", "demo", "--group", "2", "--force"},
		calls: []string{"work2-1 POST /reload", "work2-2 POST /reload", "work2-3 POST /reload"},
	},
	{
		name: "reload every group",
		args: []string{"reload", "demo", "--force"},
		calls: []string{"coord1 POST /reload", "coord2 POST /reload", "coord3 POST /reload",
			"work1-1 POST /reload", "work1-2 POST /reload",
			"work2-1 POST /reload", "work2-2 POST /reload", "work2-3 POST /reload"},
	},
	{
		name:  "restart the replicas of a group",
		args:  []string{"restart", "demo", "--group", "1", "--role", "replica", "--force"},
		calls: []string{"work1-2 POST /restart"},
	},
	{
		name:  "restart the leaders of every group",
		args:  []string{"restart", "demo", "--role", "leader", "--force"},
		calls: []string{"coord1 POST /restart", "work1-1 POST /restart", "work2-2 POST /restart"},
	},
	{
		name: "schedule a restart in a paused group",
		args: []string{"restart", "demo", "--group", "2", "--scheduled", "2026-11-30T10:00:00+00:00", "--force"},
		code: 1,
		err:  "Error: Can't schedule restart in the paused state\n",
	},
	{
		name:  "reinit a worker named without its group",
		args:  []string{"reinit", "demo", "work1-2", "--force"},
		calls: []string{"work1-2 POST /reinitialize"},
	},
	{
		name:  "flush the switchover of a group",
		args:  []string{"flush", "demo", "switchover", "--group", "1"},
		calls: []string{"work1-1 DELETE /switchover"},
	},
	{
		name: "flush switchover without a group: the coordinator's",
		args: []string{"flush", "demo", "switchover"},
	},
	{
		name:  "pause the file's group",
		args:  []string{"pause"},
		calls: []string{"coord1 PATCH /config"},
	},
	{
		name:  "pause a group",
		args:  []string{"pause", "--group", "1"},
		calls: []string{"work1-1 PATCH /config"},
	},
	{
		name:  "resume a group",
		args:  []string{"resume", "demo", "--group", "2"},
		calls: []string{"work2-2 PATCH /config"},
	},
	{
		name: "resume the file's group, not paused",
		args: []string{"resume"},
		code: 1,
		err:  "Error: Cluster is not paused\n",
	},
	{
		name: "remove without a group",
		args: []string{"remove", "demo"},
		code: 1,
		err:  "Error: For Citus clusters the --group must me specified\n",
	},
}

func (c *citusFake) setReplies(reply map[string]string) {
	for name, f := range c.members {
		text, ok := reply[name]
		if !ok {
			text = "OK"
		}
		f.setReply(func(request) (int, string) { return http.StatusOK, text })
	}
}

func TestCitusOperations(t *testing.T) {
	c := newCitusFake(t)
	for _, tc := range citusOpCases {
		t.Run(tc.name, func(t *testing.T) {
			c.reset()
			c.setReplies(tc.reply)
			r := run(t, c.cfg, nil, tc.args...)
			if r.code != tc.code || r.err != tc.err {
				t.Fatalf("exit code %d, stderr %q; want %d, %q\nstdout:\n%s", r.code, r.err, tc.code, tc.err, r.out)
			}
			if got := c.calls(); !reflect.DeepEqual(got, tc.calls) {
				t.Errorf("calls %q, want %q", got, tc.calls)
			}
			golden(t, "citus-op-"+scopeRe.ReplaceAllString(strings.ToLower(tc.name), "-")+".txt", r.out)
		})
	}
}

// TestCitusOperationsMatchPatronictl runs the same commands with
// patronictl 3.0.2 against the same fake members: same output (but for
// the time of day), exit code, error and calls.
func TestCitusOperationsMatchPatronictl(t *testing.T) {
	c := newCitusFake(t)
	for _, tc := range citusOpCases {
		t.Run(tc.name, func(t *testing.T) {
			c.reset()
			c.setReplies(tc.reply)
			p := runPatronictl(t, c.cfg, "", tc.args...)
			pcalls := c.calls()
			c.reset()
			r := run(t, c.cfg, nil, tc.args...)
			if p.code != r.code || p.err != r.err {
				t.Errorf("patronictl: exit code %d, stderr %q; pgwardenctl: %d, %q", p.code, p.err, r.code, r.err)
			}
			if got := c.calls(); !reflect.DeepEqual(got, pcalls) {
				t.Errorf("pgwardenctl calls %q, patronictl %q", got, pcalls)
			}
			if pout, out := pyTimestamp.ReplaceAllString(p.out, "TIME "), pyTimestamp.ReplaceAllString(r.out, "TIME "); pout != out {
				t.Errorf("patronictl:\n%s\npgwardenctl:\n%s", pout, out)
			}
		})
	}
}

func TestCitusSwitchoverAsksForGroup(t *testing.T) {
	for _, tc := range []struct {
		name, stdin, err, golden string
	}{
		{"group answered", "2\n\nwork2-1\n\ny\n", "", "citus-switchover-asks-group.txt"},
		{"not a number, asked again", "two\n2\n\nwork2-1\n\ny\n", "Error: 'two' is not a valid integer.\n", "citus-switchover-asks-group-again.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCitusFake(t)
			c.members["work2-2"].setReply(func(request) (int, string) { return 200, `Successfully switched over to "work2-1"` })
			r := run(t, c.cfg, strings.NewReader(tc.stdin), "switchover")
			r.mustSucceed(t)
			if r.err != tc.err {
				t.Errorf("stderr %q, want %q", r.err, tc.err)
			}
			golden(t, tc.golden, r.out)
			oneRequest(t, c.members["work2-2"], "POST", "/switchover", map[string]any{"leader": "work2-2", "candidate": "work2-1"})
			if calls := c.calls(); len(calls) != 1 {
				t.Errorf("calls %q", calls)
			}
		})
	}
}

// TestCitusSwitchoverFallsBackToDCS: the failover key is written in the
// group's folder when its leader's REST API does not answer.
func TestCitusSwitchoverFallsBackToDCS(t *testing.T) {
	c := newCitusFake(t)
	c.members["work1-1"].srv.Close()
	r := run(t, c.cfg, nil, "switchover", "--group", "1", "--candidate", "work1-2", "--force")
	r.mustSucceed(t)
	v, ok := get(t, c.key("1/failover"))
	if !ok || !strings.Contains(v, `"member":"work1-2"`) {
		t.Errorf("1/failover = %q (%v)", v, ok)
	}
	if _, ok := get(t, c.key("0/failover")); ok {
		t.Error("the coordinator got a failover key")
	}
}

func TestCitusEditConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		changed string // the group whose config changes
	}{
		{"the file's group", nil, "0"},
		{"a group", []string{"--group", "1"}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCitusFake(t)
			before := map[string]string{}
			for _, g := range []string{"0", "1", "2"} {
				before[g], _ = get(t, c.key(g+"/config"))
			}
			r := run(t, c.cfg, nil, append([]string{"edit-config", "--force", "--quiet", "--set", "loop_wait=5"}, tc.args...)...)
			r.mustSucceed(t)
			for _, g := range []string{"0", "1", "2"} {
				v, _ := get(t, c.key(g+"/config"))
				loop := decodeJSON(t, v)["loop_wait"]
				if g == tc.changed && loop != float64(5) || g != tc.changed && v != before[g] {
					t.Errorf("group %s config: %s", g, v)
				}
			}
		})
	}
}

func TestCitusRemoveGroup(t *testing.T) {
	c := newCitusFake(t)
	r := run(t, c.cfg, strings.NewReader("demo\nYes I am aware\nwork2-2\n"), "remove", "demo", "--group", "2")
	r.mustSucceed(t)
	golden(t, "citus-remove-group2.txt", r.out)
	for g, want := range map[string]bool{"0": true, "1": true, "2": false} {
		if n := countKeys(t, c.key(g+"/")); (n > 0) != want {
			t.Errorf("group %s has %d keys left", g, n)
		}
	}
}

// TestCitusSettings: the citus section of the daemon's file, of a file for
// the tool only, and PGWARDEN_CITUS_GROUP.
func TestCitusSettings(t *testing.T) {
	c := newCitusFake(t)
	daemon := func(group int) string {
		return fmt.Sprintf("name: coord1\nrestapi:\n  listen: 127.0.0.1:8008\npostgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n"+
			"citus:\n  group: %d\n  database: citus\n", group)
	}
	for _, tc := range []struct {
		name, extra string
		env         map[string]string
		pausing     string // the member that gets PATCH /config
	}{
		{"daemon file, group 1", daemon(1), nil, "work1-1"},
		{"tool file, group 0", citusConfig, nil, "coord1"},
		{"tool file, group from the environment", citusConfig, map[string]string{"PGWARDEN_CITUS_GROUP": "1"}, "work1-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.reset()
			c.setReplies(nil)
			cfg := writeConfig(t, c.ns, "demo", tc.extra)
			s, err := loadSettings(globalFlags{configFile: cfg, configFileSet: true}, func(k string) (string, bool) {
				v, ok := tc.env[k]
				return v, ok
			})
			if err != nil || !s.Citus || s.CitusGroup == nil {
				t.Fatalf("settings: %+v, %v", s, err)
			}
			a := &App{Lookup: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, Now: func() time.Time { return fixedNow }}
			var out strings.Builder
			a.Stdout, a.Stderr = &out, &out
			if code := a.Run(t.Context(), []string{"-c", cfg, "pause"}); code != 0 {
				t.Fatalf("pause: exit code %d\n%s", code, out.String())
			}
			if calls := c.calls(); !reflect.DeepEqual(calls, []string{tc.pausing + " PATCH /config"}) {
				t.Errorf("calls %q", calls)
			}
		})
	}
	// Without a citus section the cluster is a plain one.
	r := run(t, c.plain, nil, "list")
	r.mustSucceed(t)
	if !strings.HasPrefix(r.out, "+ Cluster: demo (uninitialized) ") {
		t.Errorf("list without citus section:\n%s", r.out)
	}
}
