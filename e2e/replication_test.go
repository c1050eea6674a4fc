package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/launcher"
)

// syncKey reads the sync key, at revision rev when > 0.
func syncKey(t *testing.T, cli *clientv3.Client, c *launcher.Cluster, rev int64) *dcs.SyncState {
	t.Helper()
	opts := []clientv3.OpOption{}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/service/"+c.Opts.Scope+"/sync", opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	s, err := dcs.ParseSync(resp.Kvs[0].Value)
	if err != nil {
		t.Fatalf("sync key %q: %v", resp.Kvs[0].Value, err)
	}
	return &s
}

// leaderCreated returns the leader key's holder and create revision.
func leaderCreated(t *testing.T, cli *clientv3.Client, c *launcher.Cluster) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/service/"+c.Opts.Scope+"/leader")
	if err != nil || len(resp.Kvs) == 0 {
		return "", 0
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision
}

func nodeByName(c *launcher.Cluster, name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// Synchronous mode, a client writing every 10 ms, the primary killed
// (daemon and PostgreSQL) five times: every acknowledged row survives,
// and every promoted member was the one the sync key named.
func TestSyncModeFiveKillsLoseNothing(t *testing.T) {
	c, p := startCluster(t, nil)
	cli := etcdClient(t, c)
	if code, msg := callAPI(t, c, p, "PATCH", "/config", `{"synchronous_mode":true,"check_timeline":true}`); code != 200 {
		t.Fatalf("enabling synchronous mode: %d %s", code, msg)
	}
	exec1(t, c, p, "CREATE TABLE zl(id int primary key)")
	w := startAnyWriter(c, p, "zl")
	for round := 1; round <= 5; round++ {
		var st *dcs.SyncState
		eventually(t, 30*time.Second, fmt.Sprintf("round %d: the sync key names a standby of %s", round, c.Nodes[p].Name), func() string {
			st = syncKey(t, cli, c, 0)
			if st == nil || st.Leader != c.Nodes[p].Name || len(st.Standbys) == 0 {
				return fmt.Sprintf("%+v", st)
			}
			return ""
		})
		time.Sleep(500 * time.Millisecond) // writes acknowledged under this sync standby
		killed := time.Now()
		if err := c.KillNode(p, true); err != nil {
			t.Fatal(err)
		}
		np, at := waitNewPrimary(t, c, p, 30*time.Second)
		name, rev := leaderCreated(t, cli, c)
		before := syncKey(t, cli, c, rev-1)
		if before == nil || !before.Names(name) {
			t.Fatalf("round %d: %s was promoted, but the sync key just before named %+v", round, name, before)
		}
		t.Logf("MEASURED round %d: %s promoted (named in sync: %v) %s after the kill", round, name, before.Standbys, at.Sub(killed).Round(time.Millisecond))
		if err := c.StartNode(p); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitHealthy(90 * time.Second); err != nil {
			t.Fatalf("round %d: the killed primary did not rejoin: %v\n%s", round, err, c.Table())
		}
		p = np
	}
	ids, gap := w.stopIDs()
	if os.Getenv("SYNC_DEBUG") != "" {
		for i := range c.Nodes {
			t.Logf("==== %s ====\n%s", c.Nodes[i].Name, readLog(t, c, i))
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(c.Nodes[i].DataDir), "postgresql."+c.Nodes[i].Name+".log"))
			t.Logf("==== postgres %s ====\n%s", c.Nodes[i].Name, b)
		}
	}
	if len(ids) < 100 {
		t.Fatalf("only %d writes were acknowledged", len(ids))
	}
	missing := missingIDs(t, c, p, "zl", ids)
	t.Logf("MEASURED synchronous mode, 5 kills: %d acknowledged writes, %d missing, longest write gap %s", len(ids), len(missing), gap.Round(time.Millisecond))
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged writes lost: %v", len(missing), missing[:min(10, len(missing))])
	}
	for i := range c.Nodes {
		if m := movedAside(c, i); len(m) > 0 {
			t.Errorf("node %d was re-cloned (%v); pg_rewind should have been enough", i, m)
		}
	}
}

// childPIDs lists the postmaster's children whose command line contains
// what (e.g. "walsender").
func childPIDs(postmaster int, what string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(postmaster) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmd), what) {
			out = append(out, pid)
		}
	}
	return out
}

// diverge writes a row on the primary that no standby receives (its WAL
// senders are frozen, then killed with it), and waits for a new primary.
func diverge(t *testing.T, c *launcher.Cluster, p int, table string, id int) int {
	t.Helper()
	senders := childPIDs(c.PostmasterPID(p), "walsender")
	if len(senders) == 0 {
		t.Fatalf("node %d has no walsender", p)
	}
	for _, pid := range senders {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	exec1(t, c, p, fmt.Sprintf("INSERT INTO %s VALUES (%d)", table, id))
	for _, pid := range senders {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := c.KillNode(p, true); err != nil {
		t.Fatal(err)
	}
	np, _ := waitNewPrimary(t, c, p, 40*time.Second)
	if n := query1(t, c, np, fmt.Sprintf("SELECT count(*)::text FROM %s WHERE id = %d", table, id)); n != "0" {
		t.Fatalf("the new primary has the row written while replication was frozen: no divergence to test")
	}
	return np
}

// Asynchronous mode: a primary killed with writes no standby received
// comes back with pg_rewind and streams on the new timeline; with
// use_pg_rewind off (and no permission to remove its data) it stays down
// and says why.
func TestDivergedPrimaryRewindsOrStaysDown(t *testing.T) {
	c, p := startCluster(t, nil)
	exec1(t, c, p, "CREATE TABLE dv(id int)")
	exec1(t, c, p, "INSERT INTO dv VALUES (1)")
	if _, err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	old := p
	np := diverge(t, c, p, "dv", 666)
	exec1(t, c, np, "INSERT INTO dv VALUES (2)")
	if err := c.StartNode(old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitHealthy(90 * time.Second); err != nil {
		t.Fatalf("the diverged primary did not rejoin: %v\n%s", err, c.Table())
	}
	waitRow(t, c, old, "dv", 2, 30*time.Second)
	if n := query1(t, c, old, "SELECT count(*)::text FROM dv WHERE id = 666"); n != "0" {
		t.Errorf("the diverged row is still on the rejoined node (%s rows)", n)
	}
	log := readLog(t, c, old)
	if !strings.Contains(log, "rewound the data directory with pg_rewind") {
		t.Errorf("the old primary did not use pg_rewind")
	}
	if m := movedAside(c, old); len(m) > 0 || strings.Contains(log, "data directory removed") {
		t.Errorf("the old primary was re-cloned")
	}
	st, _ := c.Status(old)
	t.Logf("rejoined after rewind: %+v", st)

	// Round 2: rewind off, removal not allowed: it stays down.
	if code, msg := callAPI(t, c, np, "PATCH", "/config", `{"postgresql":{"use_pg_rewind":false}}`); code != 200 {
		t.Fatalf("PATCH: %d %s", code, msg)
	}
	time.Sleep(2 * time.Second)
	old2 := np
	np2 := diverge(t, c, np, "dv", 777)
	_ = np2
	if err := c.StartNode(old2); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the diverged member reports why it stays down", func() string {
		st, err := c.Status(old2)
		if err != nil || st.State != "diverged" {
			return fmt.Sprintf("%+v %v", st, err)
		}
		return ""
	})
	time.Sleep(3 * time.Second)
	if c.PostmasterPID(old2) != 0 {
		t.Errorf("PostgreSQL was started on a diverged member with use_pg_rewind off")
	}
	if b := readLog(t, c, old2); !strings.Contains(b, "staying stopped") {
		t.Errorf("the log does not say why the member stays stopped")
	}
	if entries, _ := os.ReadDir(c.Nodes[old2].DataDir); len(entries) == 0 {
		t.Errorf("the data directory was emptied without permission")
	}
}

// Slots: after a failover the new leader holds a slot for every other
// member and none for itself; a member removed for good loses its slot
// after member_slots_ttl.
func TestSlotsFollowTheMembers(t *testing.T) {
	c, p := startCluster(t, nil)
	if code, msg := callAPI(t, c, p, "PATCH", "/config", `{"slots":{"keep_me":{"type":"physical"}}}`); code != 200 {
		t.Fatalf("PATCH slots: %d %s", code, msg)
	}
	eventually(t, 10*time.Second, "the permanent slot on the leader", func() string {
		if got := query1(t, c, p, "SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = 'keep_me'"); got != "1" {
			return got
		}
		return ""
	})
	if err := c.KillNode(p, true); err != nil {
		t.Fatal(err)
	}
	np, _ := waitNewPrimary(t, c, p, 30*time.Second)
	if err := c.StartNode(p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitHealthy(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{"keep_me"}
	for i, n := range c.Nodes {
		if i != np {
			want = append(want, n.Name)
		}
	}
	sort.Strings(want)
	wantList := strings.Join(want, ",")
	eventually(t, 10*time.Second, "slots on the new leader", func() string {
		got := query1(t, c, np, "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots")
		if got != wantList {
			return got
		}
		return ""
	})
	eventually(t, 10*time.Second, "every standby streams through its slot", func() string {
		got := query1(t, c, np, "SELECT count(*)::text FROM pg_replication_slots WHERE active")
		if got != "2" {
			return got + " active slots"
		}
		return ""
	})
	if code, msg := callAPI(t, c, np, "PATCH", "/config", `{"member_slots_ttl":"3s"}`); code != 200 {
		t.Fatalf("PATCH: %d %s", code, msg)
	}
	gone := otherThan(c, np)
	if err := c.StopNode(gone, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the removed member's slot dropped", func() string {
		got := query1(t, c, np, "SELECT coalesce(string_agg(slot_name, ','), '') FROM pg_replication_slots")
		if strings.Contains(got, c.Nodes[gone].Name) {
			return got
		}
		return ""
	})
}

// Strict synchronous mode: with the only synchronous standby stopped, a
// commit on the primary waits until a standby is back.
func TestStrictSyncWaitsForAStandby(t *testing.T) {
	c, p := startCluster(t, func(o *launcher.Options) { o.Nodes = 2 })
	cli := etcdClient(t, c)
	if code, msg := callAPI(t, c, p, "PATCH", "/config", `{"synchronous_mode":true,"synchronous_mode_strict":true}`); code != 200 {
		t.Fatalf("PATCH: %d %s", code, msg)
	}
	s := otherThan(c, p)
	eventually(t, 30*time.Second, "the standby is synchronous", func() string {
		st := syncKey(t, cli, c, 0)
		if st == nil || !st.Names(c.Nodes[s].Name) {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	exec1(t, c, p, "CREATE TABLE st(id int)")
	if err := c.StopNode(s, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := connect(ctx, c, p)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, "INSERT INTO st VALUES (1)")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a commit returned (%v) with no synchronous standby in strict mode", err)
	case <-time.After(4 * time.Second):
	}
	if st := syncKey(t, cli, c, 0); st != nil && len(st.Standbys) > 0 {
		t.Errorf("the sync key still names %v while the standby is stopped", st.Standbys)
	}
	back := time.Now()
	if err := c.StartNode(s); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the waiting commit failed: %v", err)
		}
		t.Logf("MEASURED strict mode: the waiting commit returned %s after the standby was started again", time.Since(back).Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		t.Fatal("the commit still waits 60 s after the standby came back")
	}
}
