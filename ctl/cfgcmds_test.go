package ctl

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
)

func TestEditConfigSetForce(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, nil, "edit-config", "--force",
		"--set", "ttl=20", "-s", "postgresql.use_slots=", "--pg", "max_connections=200", "-p", "hot_standby=off",
		"-p", "pg_stat_statements.track=all", "--set", "synchronous_mode=on")
	r.mustSucceed(t)
	v, _ := get(t, c.key("config"))
	got := decodeJSON(t, v)
	want := decodeJSON(t, `{"ttl":20,"loop_wait":2,"retry_timeout":4,"maximum_lag_on_failover":1048576,"synchronous_mode":true,
		"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":200,"shared_buffers":"64MB","wal_keep_size":"256MB",
		"max_wal_senders":10,"max_replication_slots":10,"hot_standby":false,"pg_stat_statements.track":"all"}}}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config key:\n%s\nwant %v", v, want)
	}
	wantDiff := `--- 
+++ 
@@ -2,14 +2,14 @@
 maximum_lag_on_failover: 1048576
 postgresql:
   parameters:
-    hot_standby: 'on'
-    max_connections: 100
+    hot_standby: false
+    max_connections: 200
     max_replication_slots: 10
     max_wal_senders: 10
+    pg_stat_statements.track: all
     shared_buffers: 64MB
     wal_keep_size: 256MB
   use_pg_rewind: true
-  use_slots: true
 retry_timeout: 4
 synchronous_mode: true
-ttl: 10
+ttl: 20
Configuration changed
`
	if r.out != wantDiff {
		t.Errorf("output:\n%s\nwant:\n%s", r.out, wantDiff)
	}

	r = run(t, c.cfg, nil, "edit-config", "--force", "--set", "ttl=20")
	r.mustSucceed(t)
	if r.out != "Not changed\n" {
		t.Errorf("same value: %q", r.out)
	}
	r = run(t, c.cfg, nil, "edit-config", "--force", "--set", "ttl")
	if r.code != 1 || r.err != "Error: Invalid parameter setting ttl\n" {
		t.Errorf("bad pair: code %d stderr %q", r.code, r.err)
	}
}

func TestEditConfigAskNo(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	before, _ := get(t, c.key("config"))
	r := run(t, c.cfg, strings.NewReader("n\n"), "edit-config", "-s", "loop_wait=3")
	r.mustSucceed(t)
	if !strings.Contains(r.out, "-loop_wait: 2\n+loop_wait: 3\n") || !strings.HasSuffix(r.out, "Apply these changes? [y/N]: \n") {
		t.Errorf("output:\n%s", r.out)
	}
	if after, _ := get(t, c.key("config")); after != before {
		t.Errorf("config changed to %s", after)
	}
	// "y" applies.
	r = run(t, c.cfg, strings.NewReader("y\n"), "edit-config", "-s", "loop_wait=3")
	r.mustSucceed(t)
	if v, _ := get(t, c.key("config")); decodeJSON(t, v)["loop_wait"] != float64(3) {
		t.Errorf("config key %s", v)
	}
}

func TestEditConfigConcurrentChange(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	// Someone else writes the key while the user reads the diff.
	in := &stdinThen{r: bufio.NewReader(strings.NewReader("y\n")), fn: func() { put(t, c.key("config"), `{"ttl":30}`) }}
	r := run(t, c.cfg, in, "edit-config", "-s", "ttl=20")
	if r.code != 1 || r.err != "Error: Config modification aborted due to concurrent changes\n" {
		t.Errorf("code %d stderr %q", r.code, r.err)
	}
	if v, _ := get(t, c.key("config")); v != `{"ttl":30}` {
		t.Errorf("config key %s", v)
	}
}

func TestEditConfigApplyReplace(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, strings.NewReader("ttl: 15\npostgresql:\n  parameters:\n    work_mem: 8MB\n    max_connections: null\n"), "edit-config", "--apply", "-", "--force", "-q")
	r.mustSucceed(t)
	v, _ := get(t, c.key("config"))
	params := decodeJSON(t, v)["postgresql"].(map[string]any)["parameters"].(map[string]any)
	if decodeJSON(t, v)["ttl"] != float64(15) || params["work_mem"] != "8MB" || params["max_connections"] != nil {
		t.Errorf("config key %s", v)
	}
	// From stdin without --force nothing is written.
	r = run(t, c.cfg, strings.NewReader("ttl: 16\n"), "edit-config", "--apply", "-")
	r.mustSucceed(t)
	if !strings.HasSuffix(r.out, "Use --force option to apply changes\n") {
		t.Errorf("output:\n%s", r.out)
	}
	r = run(t, c.cfg, strings.NewReader("ttl: 16\nloop_wait: 5\n"), "edit-config", "--replace", "-", "--force")
	r.mustSucceed(t)
	if v, _ := get(t, c.key("config")); v != `{"loop_wait":5,"ttl":16}` {
		t.Errorf("replaced config key %s", v)
	}

	r = run(t, c.cfg, nil, "--namespace", "/nothing-here/", "edit-config", "-s", "ttl=1")
	if r.code != 1 || r.err != "Error: The config key does not exist in the cluster pbench\n" {
		t.Errorf("no config key: code %d stderr %q", r.code, r.err)
	}
}

func TestRemove(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	prefix := c.ns + "pbench/"
	n := countKeys(t, prefix)
	for _, tc := range []struct{ stdin, err string }{
		{"other\n", "Error: Cluster names specified do not match\n"},
		{"pbench\nyes\n", "Error: You did not exactly type \"Yes I am aware\"\n"},
		{"pbench\nYes I am aware\nnode1\n", "Error: You did not specify the current leader of the cluster\n"},
		{"pbench\n", "Aborted!\n"},
	} {
		r := run(t, c.cfg, strings.NewReader(tc.stdin), "remove", "pbench")
		if r.code != 1 || r.err != tc.err {
			t.Errorf("stdin %q: code %d stderr %q, want %q", tc.stdin, r.code, r.err, tc.err)
		}
		if got := countKeys(t, prefix); got != n {
			t.Fatalf("%d keys left of %d", got, n)
		}
	}
	r := run(t, c.cfg, strings.NewReader("pbench\nYes I am aware\nnode0\n"), "remove", "pbench")
	r.mustSucceed(t)
	for _, p := range []string{
		"Please confirm the cluster name to remove: \n",
		"You are about to remove all information in DCS for pbench, please type: \"Yes I am aware\": \n",
		"This cluster currently is healthy. Please specify the leader name to continue: \n",
	} {
		if !strings.Contains(r.out, p) {
			t.Errorf("output lacks %q:\n%s", p, r.out)
		}
	}
	if got := countKeys(t, prefix); got != 0 {
		t.Errorf("%d keys left", got)
	}
	if r := run(t, c.cfg, nil, "remove"); r.code != 2 {
		t.Errorf("remove without a name: code %d", r.code)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	for in, want := range map[string]any{
		"on": true, "Off": false, "yes": true, "NO": false, "true": true, "200": int64(200), "1.5": 1.5,
		"'on'": "on", "64MB": "64MB", "": nil, "~": nil, "[a, 1]": []any{"a", int64(1)}, "{a: on}": map[string]any{"a": true},
	} {
		got, err := loadYAML(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("loadYAML(%q) = %#v, %v; want %#v", in, got, err, want)
		}
	}
	for in, want := range map[any]string{
		"on": "'on'", "64MB": "64MB", "": "''", "100": "'100'", "2026-11-29": "'2026-11-29'", "*": "'*'",
		"a: b": "'a: b'", "it's": "it's", "x\ny": `"x\ny"`, "1.0": "'1.0'", "null": "'null'",
		float64(0.5): "0.5", float64(1e20): "1.0e+20", int64(7): "7", true: "true", nil: "null",
	} {
		if got := yamlScalar(in); got != want {
			t.Errorf("yamlScalar(%#v) = %s, want %s", in, got, want)
		}
	}
	doc := map[string]any{"b": []any{"x", map[string]any{"k": 1.0, "j": []any{}}}, "a": map[string]any{}}
	want := "a: {}\nb:\n- x\n- j: []\n  k: 1\n"
	if got := dumpYAML(doc); got != want {
		t.Errorf("dumpYAML:\n%s\nwant:\n%s", got, want)
	}
	back, err := loadYAML(want)
	if err != nil || !sameConfig(back, doc) {
		t.Errorf("round trip: %#v %v", back, err)
	}
}

func TestParseDCSURL(t *testing.T) {
	for in, want := range map[string][2]string{
		"http://10.0.0.1:2379":            {"http://10.0.0.1:2379", ""},
		"etcd3://db:2399/customnamespace": {"http://db:2399", "/customnamespace"},
		"localhost":                       {"http://localhost:2379", ""},
		"https://a:1,https://b:2":         {"https://a:1,https://b:2", ""},
	} {
		eps, ns, err := parseDCSURL(in)
		if err != nil || strings.Join(eps, ",") != want[0] || ns != want[1] {
			t.Errorf("parseDCSURL(%q) = %v %q %v", in, eps, ns, err)
		}
	}
	if _, _, err := parseDCSURL("zookeeper://z:2181"); err == nil {
		t.Error("zookeeper accepted")
	}
}
