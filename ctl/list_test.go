package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// patroni33Header turns a 3.0.2 sample table into what patronictl 3.1+
// prints: the system identifier in the title.
func patroni33Header(t *testing.T, sample, title string) string {
	t.Helper()
	lines := strings.Split(sample, "\n")
	rule := lines[2]
	lines[0] = rule[:1] + title + rule[1+len(title):]
	return strings.Join(lines, "\n")
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestListMatchesPatronictlSample(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, nil, "list")
	r.mustSucceed(t)
	want := patroni33Header(t, readTestdata(t, "patroni-3.0.2-patronictl-list.txt"), " Cluster: pbench (7713458569163569832) ")
	if r.out != want {
		t.Errorf("list:\n%s\nwant:\n%s", r.out, want)
	}

	// The same with the cluster name given and etcd from --dcs-url.
	r = run(t, "", nil, "--namespace", c.ns, "list", "pbench")
	r.mustSucceed(t)
	if r.out != want {
		t.Errorf("list pbench:\n%s\nwant:\n%s", r.out, want)
	}
}

func TestListAfterSwitchoverSample(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys-after-switchover.txt")
	r := run(t, c.cfg, nil, "list")
	r.mustSucceed(t)
	golden(t, "list-after-switchover.txt", r.out)
}

// extendedCluster has a stopped member, tags, a pending and a scheduled
// restart, maintenance mode and a scheduled switchover.
func extendedCluster(t *testing.T) *cluster {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	put(t, c.key("members/node1"), `{"conn_url":"postgres://127.0.0.1:5442/postgres","api_url":"`+c.members["node1"].apiURL()+`","state":"running","role":"replica","version":"0.1.0","tags":{"nofailover":true,"clonefrom":true},"pending_restart":true,"xlog_location":63963136,"replay_lsn":63963136,"receive_lsn":63963136,"replication_state":"streaming","timeline":1,"scheduled_restart":{"schedule":"2026-11-29T07:00:00+00:00","postgres_version":"15.5"}}`)
	put(t, c.key("members/node2"), `{"conn_url":"postgres://127.0.0.1:5443/postgres","api_url":"`+c.members["node2"].apiURL()+`","state":"stopped","role":"replica","version":"0.1.0","tags":{"replicatefrom":"node1"}}`)
	put(t, c.key("config"), `{"ttl":10,"loop_wait":2,"pause":true,"postgresql":{"parameters":{"max_connections":100}}}`)
	put(t, c.key("failover"), `{"leader":"node0","member":"node1","scheduled_at":"2026-11-29T06:19:09+00:00"}`)
	return c
}

func TestListFormats(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	for _, f := range []string{"json", "yaml", "tsv"} {
		r := run(t, c.cfg, nil, "list", "-f", f)
		r.mustSucceed(t)
		golden(t, "list-"+f+".txt", r.out)
	}
	r := run(t, c.cfg, nil, "list", "-f", "xml")
	if r.code != 2 || !strings.Contains(r.err, "xml") {
		t.Errorf("bad format: code %d, stderr %q", r.code, r.err)
	}
}

func TestListExtended(t *testing.T) {
	c := extendedCluster(t)
	for _, tc := range []struct{ golden, format string }{
		{"list-extended.txt", "pretty"},
		{"list-extended-json.txt", "json"},
		{"list-extended-tsv.txt", "tsv"},
	} {
		r := run(t, c.cfg, nil, "list", "-e", "-f", tc.format)
		r.mustSucceed(t)
		golden(t, tc.golden, r.out)
	}
	r := run(t, c.cfg, nil, "list", "-t")
	r.mustSucceed(t)
	if !strings.HasPrefix(r.out, "2026-11-29 05:19:15\n") {
		t.Errorf("--timestamp: %q", r.out)
	}
	// Columns that some member needs appear without -e.
	if !strings.Contains(r.out, "Pending restart") || !strings.Contains(r.out, "Maintenance mode: on") {
		t.Errorf("list:\n%s", r.out)
	}
}

func TestTopology(t *testing.T) {
	c := extendedCluster(t)
	r := run(t, c.cfg, nil, "topology")
	r.mustSucceed(t)
	golden(t, "topology.txt", r.out)
}

func TestListUninitializedAndNoLeader(t *testing.T) {
	ns := "/t-uninit/"
	put(t, ns+"pbench/members/a", `{"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"starting","role":"replica"}`)
	put(t, ns+"pbench/members/b", `{"conn_url":"postgres://10.0.0.2:5432/postgres","api_url":"http://10.0.0.2:8008/patroni","state":"running","role":"replica","xlog_location":5}`)
	r := run(t, "", nil, "--namespace", ns, "list", "pbench")
	r.mustSucceed(t)
	golden(t, "list-uninitialized.txt", r.out)
}

func TestHistory(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, nil, "history")
	r.mustSucceed(t)
	if want := readTestdata(t, "patroni-3.0.2-patronictl-history.txt"); r.out != want {
		t.Errorf("empty history:\n%s\nwant:\n%s", r.out, want)
	}
	c = newCluster(t, "patroni-3.0.2-etcd-keys-after-switchover.txt")
	for _, f := range []string{"pretty", "json", "yaml", "tsv"} {
		r := run(t, c.cfg, nil, "history", "-f", f)
		r.mustSucceed(t)
		golden(t, "history-"+f+".txt", r.out)
	}
}

func TestShowConfig(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	r := run(t, c.cfg, nil, "show-config")
	r.mustSucceed(t)
	// What patronictl (PyYAML) prints for the sample's config key.
	want := `loop_wait: 2
maximum_lag_on_failover: 1048576
postgresql:
  parameters:
    hot_standby: 'on'
    max_connections: 100
    max_replication_slots: 10
    max_wal_senders: 10
    shared_buffers: 64MB
    wal_keep_size: 256MB
  use_pg_rewind: true
  use_slots: true
retry_timeout: 4
synchronous_mode: true
ttl: 10

`
	if r.out != want {
		t.Errorf("show-config:\n%s\nwant:\n%s", r.out, want)
	}
}

func TestDSN(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "host=127.0.0.1 port=5441\n"},
		{[]string{"--member", "node2"}, "host=127.0.0.1 port=5443\n"},
		{[]string{"--role", "replica"}, "host=127.0.0.1 port=5442\n"},
	} {
		r := run(t, c.cfg, nil, append([]string{"dsn"}, tc.args...)...)
		r.mustSucceed(t)
		if r.out != tc.want {
			t.Errorf("dsn %v: %q, want %q", tc.args, r.out, tc.want)
		}
	}
	r := run(t, c.cfg, nil, "dsn", "--member", "nope")
	if r.code != 1 || r.err != "Error: Can not find a suitable member\n" {
		t.Errorf("dsn --member nope: %d %q", r.code, r.err)
	}
	r = run(t, c.cfg, nil, "dsn", "--member", "node1", "--role", "leader")
	if r.code != 1 || !strings.Contains(r.err, "mutually exclusive") {
		t.Errorf("dsn --member --role: %d %q", r.code, r.err)
	}
}

func TestVersion(t *testing.T) {
	c := newCluster(t, "patroni-3.0.2-etcd-keys.txt")
	for _, f := range c.members {
		f.setReply(func(request) (int, string) {
			return 200, `{"state":"running","server_version":150018,"patroni":{"version":"0.1.0","scope":"pbench"}}`
		})
	}
	r := run(t, c.cfg, nil, "version", "pbench", "node1")
	r.mustSucceed(t)
	if want := versionString() + "\n\nnode1: pgwarden 0.1.0 PostgreSQL 15.18\n"; r.out != want {
		t.Errorf("version: %q, want %q", r.out, want)
	}
}

func TestConfigFileErrors(t *testing.T) {
	r := run(t, "/nonexistent/pgwarden.yml", nil, "list")
	if r.code != 1 || !strings.Contains(r.err, "/nonexistent/pgwarden.yml not existing") {
		t.Errorf("missing file: %d %q", r.code, r.err)
	}
	// The daemon's own file is read through config.Load.
	dir := t.TempDir()
	p := filepath.Join(dir, "node.yml")
	text := "scope: daemonscope\nnamespace: /t-daemonfile/\nname: node1\nrestapi:\n  listen: 127.0.0.1:8008\netcd3:\n  host: " +
		strings.TrimPrefix(etcdURL, "http://") + "\npostgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/x\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	put(t, "/t-daemonfile/daemonscope/config", `{"ttl":30}`)
	r = run(t, p, nil, "show-config")
	r.mustSucceed(t)
	if r.out != "ttl: 30\n\n" {
		t.Errorf("show-config from the daemon's file: %q", r.out)
	}
}
