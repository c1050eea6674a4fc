package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgwarden/pgwarden/launcher"
)

// Bootstrap yields one primary and two streaming replicas; a row written
// on the primary is read on both; etcd holds Patroni's keys and formats.
func TestBootstrapAndReplication(t *testing.T) {
	c, p := startCluster(t, nil)
	exec1(t, c, p, "CREATE TABLE t(id int primary key)")
	exec1(t, c, p, "INSERT INTO t VALUES (1)")
	for i := range c.Nodes {
		if i != p {
			waitRow(t, c, i, "t", 1, 15*time.Second)
			if code := c.HealthCode(context.Background(), i, "/replica", time.Second); code != 200 {
				t.Errorf("%s /replica = %d, want 200", c.Nodes[i].Name, code)
			}
			if code := c.HealthCode(context.Background(), i, "/primary", time.Second); code != 503 {
				t.Errorf("%s /primary = %d, want 503", c.Nodes[i].Name, code)
			}
		}
	}
	if code := c.HealthCode(context.Background(), p, "/replica", time.Second); code != 503 {
		t.Errorf("primary /replica = %d, want 503", code)
	}

	cli := etcdClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/service/e2e/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, kv := range resp.Kvs {
		keys[strings.TrimPrefix(string(kv.Key), "/service/e2e/")] = string(kv.Value)
	}
	if keys["leader"] != c.Nodes[p].Name {
		t.Errorf("leader key = %q, want plain name %q", keys["leader"], c.Nodes[p].Name)
	}
	if sysid := keys["initialize"]; sysid == "" || strings.Trim(sysid, "0123456789") != "" {
		t.Errorf("initialize = %q, want the system identifier", sysid)
	}
	for i, n := range c.Nodes {
		var m map[string]any
		if err := json.Unmarshal([]byte(keys["members/"+n.Name]), &m); err != nil {
			t.Fatalf("member %s: %v (%q)", n.Name, err, keys["members/"+n.Name])
		}
		wantRole := "replica"
		if i == p {
			wantRole = "primary"
		}
		if m["role"] != wantRole || m["state"] != "running" {
			t.Errorf("member %s role/state = %v/%v, want %s/running", n.Name, m["role"], m["state"], wantRole)
		}
		if !strings.HasPrefix(m["conn_url"].(string), "postgres://127.0.0.1:") || !strings.HasSuffix(m["api_url"].(string), "/patroni") {
			t.Errorf("member %s urls: %v %v", n.Name, m["conn_url"], m["api_url"])
		}
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(keys["status"]), &st); err != nil || st["optime"] == nil {
		t.Errorf("status key = %q", keys["status"])
	}
	if _, ok := keys["config"]; !ok {
		t.Error("config key missing")
	}
}

// kill -9 of the primary's daemon and postgres: a replica is promoted
// within ttl plus a few seconds, the other follows it, and the old node
// rejoins as a replica when restarted.
func TestFailoverKillPrimary(t *testing.T) {
	c, p := startCluster(t, nil)
	exec1(t, c, p, "CREATE TABLE t(id int primary key)")
	exec1(t, c, p, "INSERT INTO t VALUES (1)")
	for i := range c.Nodes {
		if i != p {
			waitRow(t, c, i, "t", 1, 15*time.Second)
		}
	}
	killed := time.Now()
	if err := c.KillNode(p, true); err != nil {
		t.Fatal(err)
	}
	np, at := waitNewPrimary(t, c, p, 30*time.Second)
	gap := at.Sub(killed)
	t.Logf("MEASURED failover gap after kill -9 of primary daemon+postgres: %s (ttl %ds)", gap.Round(time.Millisecond), c.Opts.TTL)
	if gap > time.Duration(c.Opts.TTL+5)*time.Second {
		t.Errorf("failover took %s, want within ttl + a few seconds", gap)
	}
	exec1(t, c, np, "INSERT INTO t VALUES (2)")
	for i := range c.Nodes {
		if i != p && i != np {
			waitRow(t, c, i, "t", 2, 20*time.Second)
		}
	}
	if err := c.StartNode(p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitHealthy(90 * time.Second); err != nil {
		t.Fatalf("old primary did not rejoin: %v\n%s", err, c.Table())
	}
	waitRow(t, c, p, "t", 2, 20*time.Second)
	t.Logf("old primary rejoined as a replica\n%s", c.Table())
}

// kill -9 of the primary's postmaster only: the daemon notices at once
// and restarts it in place; the same node stays primary.
func TestPostgresCrashOnPrimary(t *testing.T) {
	c, p := startCluster(t, nil)
	exec1(t, c, p, "CREATE TABLE t(id int primary key)")
	pm := c.PostmasterPID(p)
	if pm == 0 {
		t.Fatal("no postmaster pid")
	}
	killed := time.Now()
	if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var back time.Time
	for time.Now().Before(deadline) {
		if np := c.Primary(); np >= 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			conn, err := connect(ctx, c, np)
			if err == nil {
				_, err = conn.Exec(ctx, "INSERT INTO t VALUES (7)")
				conn.Close(ctx)
			}
			cancel()
			if err == nil {
				back = time.Now()
				if np != p {
					t.Errorf("a replica (%s) took over instead of an in-place restart", c.Nodes[np].Name)
				}
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if back.IsZero() {
		t.Fatalf("no writable primary 30 s after the postmaster was killed\n%s", c.Table())
	}
	t.Logf("MEASURED write gap after kill -9 of the primary's postmaster (in-place restart): %s", back.Sub(killed).Round(time.Millisecond))
	if c.PostmasterPID(p) == pm {
		t.Error("postmaster pid unchanged")
	}
	if _, err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// SIGTERM of the primary's daemon: it stops PostgreSQL cleanly and
// releases the leader key, so another node is primary within seconds,
// not a ttl; restarted, it rejoins without a re-clone.
func TestGracefulShutdownHandsOver(t *testing.T) {
	c, p := startCluster(t, func(o *launcher.Options) { o.TTL = 15; o.LoopWait = 2; o.RetryTimeout = 4 })
	exec1(t, c, p, "CREATE TABLE t(id int primary key)")
	exec1(t, c, p, "INSERT INTO t VALUES (1)")
	stopped := time.Now()
	if err := c.Signal(p, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	np, at := waitNewPrimary(t, c, p, 30*time.Second)
	gap := at.Sub(stopped)
	t.Logf("MEASURED handover gap after SIGTERM of the primary's daemon: %s (ttl %ds)", gap.Round(time.Millisecond), c.Opts.TTL)
	if gap >= time.Duration(c.Opts.TTL)*time.Second {
		t.Errorf("handover took %s, not faster than the ttl", gap)
	}
	if err := c.WaitExit(p, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if c.PostmasterPID(p) != 0 {
		t.Error("PostgreSQL still running after the daemon's graceful stop")
	}
	exec1(t, c, np, "INSERT INTO t VALUES (2)")
	if err := c.StartNode(p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatalf("old primary did not rejoin: %v\n%s", err, c.Table())
	}
	waitRow(t, c, p, "t", 2, 20*time.Second)
	b := readLog(t, c, p)
	if strings.Contains(b, "re-cloning") {
		t.Errorf("a cleanly stopped primary was re-cloned instead of rejoining")
	}
}

// SIGSTOP of the primary's daemon for 2 x ttl: a replica takes over; on
// SIGCONT the old node demotes itself before it could answer 200 on
// /primary; no two nodes ever answer 200 together, and every write
// acknowledged by a node answering 200 is on the final primary.
func TestSigstopPrimaryNoSplitBrain(t *testing.T) {
	c, p := startCluster(t, nil)
	exec1(t, c, p, "CREATE TABLE acked(id int primary key)")
	exec1(t, c, p, "CREATE TABLE direct(id int primary key)")
	w := watchPrimaries(c)
	wr := startWriter(c, w)
	time.Sleep(2 * time.Second)

	stoppedAt := time.Now()
	if err := c.Signal(p, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A client that ignores /primary and keeps writing to the frozen
	// daemon's PostgreSQL: the fence must stop it before a replica is
	// promoted, so that no two PostgreSQL instances accept writes at once.
	direct := startWriteProbe(c, p, "direct")
	np, at := waitNewPrimary(t, c, p, 30*time.Second)
	t.Logf("MEASURED failover gap while the primary's daemon is SIGSTOPped: %s (ttl %ds)", at.Sub(stoppedAt).Round(time.Millisecond), c.Opts.TTL)
	time.Sleep(time.Until(stoppedAt.Add(2 * time.Duration(c.Opts.TTL) * time.Second)))
	direct.stop()
	lastOld := direct.lastOK()
	if lastOld.IsZero() {
		t.Errorf("no direct write reached the frozen primary: the test cannot tell whether it was fenced")
	} else {
		t.Logf("MEASURED the frozen primary's PostgreSQL accepted its last write %s after SIGSTOP, %s before the new primary accepted its first",
			lastOld.Sub(stoppedAt).Round(time.Millisecond), at.Sub(lastOld).Round(time.Millisecond))
		if !lastOld.Before(at) {
			t.Errorf("the old primary accepted a write at %s, after the new primary accepted one at %s: two primaries",
				lastOld.Format("15:04:05.000"), at.Format("15:04:05.000"))
		}
	}
	if err := c.Signal(p, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGCONT after %s", time.Since(stoppedAt).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	acked, fails := wr.Stop()
	doubles, rounds := w.Stop()
	if len(doubles) > 0 {
		t.Errorf("two nodes answered 200 on /primary at once (%d of %d rounds): %v", len(doubles), rounds, doubles)
	}
	if len(acked) == 0 {
		t.Fatal("writer acknowledged nothing")
	}
	if fp := c.Primary(); fp != np {
		t.Fatalf("primary changed again after SIGCONT: %d, want %d\n%s", fp, np, c.Table())
	}
	missing := missingIDs(t, c, np, "acked", acked)
	t.Logf("writer: %d acknowledged, %d failed attempts; %d /primary polling rounds; missing on final primary: %d",
		len(acked), fails, rounds, len(missing))
	if len(missing) > 0 {
		t.Errorf("acknowledged writes lost: %v", missing)
	}
	if _, err := c.WaitHealthy(90 * time.Second); err != nil {
		t.Fatalf("old primary did not rejoin as a replica: %v\n%s", err, c.Table())
	}
	t.Logf("after SIGCONT\n%s", c.Table())
}

func readLog(t *testing.T, c *launcher.Cluster, i int) string {
	t.Helper()
	b, err := readFile(c.Nodes[i].LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// kill -9 of the primary's daemon alone, restarted at once (a crash or an
// upgrade): the new daemon rebinds the leader key and takes over the old
// fence's deadline, so PostgreSQL keeps running as the primary with no
// failover and no restart.
func TestDaemonRestartKeepsPrimary(t *testing.T) {
	c, p := startCluster(t, nil)
	exec1(t, c, p, "CREATE TABLE t(id int primary key)")
	pm := c.PostmasterPID(p)
	if err := c.KillNode(p, false); err != nil {
		t.Fatal(err)
	}
	if err := c.StartNode(p); err != nil {
		t.Fatal(err)
	}
	// Past the old lease and the old fence's deadline.
	time.Sleep(time.Duration(2*c.Opts.TTL) * time.Second)
	if np := c.Primary(); np != p {
		t.Fatalf("primary is %d after the daemon restart, want %d\n%s", np, p, c.Table())
	}
	if got := c.PostmasterPID(p); got != pm {
		t.Errorf("postmaster pid %d, want %d: PostgreSQL was restarted", got, pm)
	}
	exec1(t, c, p, "INSERT INTO t VALUES (1)")
	if _, err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, c, p)
	if !strings.Contains(log, "took over the deadline") || !strings.Contains(log, "rebound the leader key") {
		t.Errorf("expected the fence handover and the leader key rebind in the log")
	}
}
