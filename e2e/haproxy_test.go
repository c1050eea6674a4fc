package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/launcher"
)

// needHAProxy skips the test, with a SKIP line, when haproxy is missing.
func needHAProxy(t *testing.T) {
	t.Helper()
	if _, err := launcher.FindHAProxy(); err != nil {
		t.Skip("SKIP: haproxy is not installed; apt-get install haproxy")
	}
}

// startClusterWithLateNode runs a 3-node cluster like startCluster, but
// starts node late only once another node is primary, so that it is
// certainly a replica at first (whatever its tags). The cluster is
// stopped when the test ends, even on failure.
func startClusterWithLateNode(t *testing.T, late int, mod func(*launcher.Options)) (*launcher.Cluster, int) {
	t.Helper()
	c := newCluster(t, mod)
	start := time.Now()
	if err := c.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		if i != late {
			if err := c.StartNode(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for c.Primary() < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no primary after 2 minutes\n%s", c.Table())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.StartNode(late); err != nil {
		t.Fatal(err)
	}
	p := waitClusterHealthy(t, c, start)
	if p == late {
		t.Fatalf("the late node %s became primary", c.Nodes[late].Name)
	}
	return c, p
}

// startHAProxy runs HAProxy in front of c (fast checks: inter 200ms,
// fall 1, rise 1); it is stopped by its PID when the test ends, even on
// failure, before the cluster is.
func startHAProxy(t *testing.T, c *launcher.Cluster) *launcher.HAProxy {
	t.Helper()
	h, err := launcher.StartHAProxy(launcher.HAProxyOptions{Cluster: c, Inter: 200 * time.Millisecond, Fall: 1, Rise: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("==== haproxy log ====\n%s", tail(h.Log(), 60))
		}
		h.Stop()
	})
	t.Logf("haproxy pid %d: writes on 127.0.0.1:%d, reads on 127.0.0.1:%d, stats %s",
		h.PID(), h.WritePort(), h.ReadPort(), h.StatsURL())
	return h
}

func haproxyDSN(port int) string {
	return fmt.Sprintf("postgres://postgres:postgres-secret@127.0.0.1:%d/postgres?connect_timeout=2&sslmode=disable", port)
}

// serverOf opens a fresh connection through an HAProxy port and returns
// the PostgreSQL port it reached and whether that server is in recovery.
func serverOf(port int) (pgPort int, inRecovery bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, haproxyDSN(port))
	if err != nil {
		return 0, false, err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&pgPort, &inRecovery)
	return pgPort, inRecovery, err
}

func nodeByPGPort(c *launcher.Cluster, port int) string {
	for _, n := range c.Nodes {
		if n.PGPort == port {
			return n.Name
		}
	}
	return fmt.Sprintf("port %d", port)
}

// startHAProxyWriteClient writes through HAProxy's port (see ackWriter).
func startHAProxyWriteClient(port int, table string) *ackWriter {
	return startAckWriter(table, func(ctx context.Context, _ int) (*pgx.Conn, error) {
		return pgx.Connect(ctx, haproxyDSN(port))
	})
}

// HAProxy in front of a 3-node cluster, with the config of
// haproxy.cfg.example and fast checks: writes through the write port reach
// the primary only; reads through the read port reach only replicas and
// never the one tagged noloadbalance; after kill -9 of the primary's
// daemon and PostgreSQL, a client writing through the write port resumes
// on the new primary, without ever being acknowledged elsewhere.
func TestHAProxyRoutesAndFailover(t *testing.T) {
	needHAProxy(t)
	const lb = 2 // node3: tagged noloadbalance, started once a primary exists
	c, p := startClusterWithLateNode(t, lb, func(o *launcher.Options) {
		o.Tags = map[int]map[string]any{lb: {"noloadbalance": true}}
	})
	other := 3 - p - lb // the replica that takes reads
	h := startHAProxy(t, c)
	if err := h.WaitUp("primary", []string{c.Nodes[p].Name}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitUp("replicas", []string{c.Nodes[other].Name}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := c.HealthCode(context.Background(), lb, "/replica", time.Second); code != 503 {
		t.Fatalf("%s (noloadbalance) answers %d on /replica, want 503", c.Nodes[lb].Name, code)
	}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := pgx.Connect(ctx, haproxyDSN(h.WritePort()))
		if err != nil {
			cancel()
			t.Fatalf("connecting through the write port: %v", err)
		}
		_, err = conn.Exec(ctx, "CREATE TABLE hp(id int primary key)")
		conn.Close(context.Background())
		cancel()
		if err != nil {
			t.Fatalf("CREATE TABLE through the write port: %v", err)
		}
	}

	t.Run("writes reach the primary", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			port, rec, err := serverOf(h.WritePort())
			if err != nil {
				t.Fatalf("connection %d through the write port: %v", i, err)
			}
			if port != c.Nodes[p].PGPort || rec {
				t.Errorf("connection %d through the write port reached %s (in recovery: %v), want the primary %s",
					i, nodeByPGPort(c, port), rec, c.Nodes[p].Name)
			}
		}
		w := startHAProxyWriteClient(h.WritePort(), "hp")
		time.Sleep(time.Second)
		acks, fails := w.Stop()
		if len(acks) < 10 {
			t.Fatalf("only %d writes acknowledged through the write port in 1 s (%d failed)", len(acks), fails)
		}
		for _, a := range acks {
			if a.pgPort != c.Nodes[p].PGPort {
				t.Fatalf("write %d acknowledged by %s, want the primary %s", a.id, nodeByPGPort(c, a.pgPort), c.Nodes[p].Name)
			}
		}
		t.Logf("%d writes through the write port (one connection, reconnecting on error), all on %s (%d failed)", len(acks), c.Nodes[p].Name, fails)
	})

	t.Run("reads reach load-balanced replicas only", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 30; i++ {
			port, rec, err := serverOf(h.ReadPort())
			if err != nil {
				t.Fatalf("connection %d through the read port: %v", i, err)
			}
			seen[nodeByPGPort(c, port)]++
			if !rec {
				t.Errorf("connection %d through the read port reached %s, not in recovery", i, nodeByPGPort(c, port))
			}
		}
		t.Logf("30 fresh connections through the read port reached: %v", seen)
		if n := seen[c.Nodes[lb].Name]; n > 0 {
			t.Errorf("%d reads reached %s, tagged noloadbalance", n, c.Nodes[lb].Name)
		}
		if n := seen[c.Nodes[p].Name]; n > 0 {
			t.Errorf("%d reads reached the primary %s", n, c.Nodes[p].Name)
		}
		if n := seen[c.Nodes[other].Name]; n != 30 {
			t.Errorf("%d of 30 reads reached the replica %s, want all", n, c.Nodes[other].Name)
		}
	})

	t.Run("failover resumes writes on the new primary", func(t *testing.T) {
		w := startHAProxyWriteClient(h.WritePort(), "hp")
		defer w.Stop()
		if _, err := w.WaitAckOn(c.Nodes[p].PGPort, time.Now().Add(-time.Minute), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		killed := time.Now()
		if err := c.KillNode(p, true); err != nil {
			t.Fatal(err)
		}
		np, direct := waitNewPrimary(t, c, p, 60*time.Second)
		first, err := w.WaitAckOn(c.Nodes[np].PGPort, killed, 30*time.Second)
		if err != nil {
			t.Fatalf("%v\n%s", err, c.Table())
		}
		time.Sleep(time.Second)
		acks, fails := w.Stop()
		// Every write is acknowledged by the old primary, then by the new
		// one: never by a replica, never by the old one again once the new
		// one has acknowledged one. (A write sent just as the kill starts
		// may still be acknowledged by the old primary: its backend notices
		// the postmaster's death only at its next wait.)
		oldPort, newPort := c.Nodes[p].PGPort, c.Nodes[np].PGPort
		var lastOld writeAck
		sawNew := false
		for _, a := range acks {
			switch {
			case a.pgPort == oldPort && !sawNew:
				lastOld = a
			case a.pgPort == newPort && a.at.After(killed):
				sawNew = true
			default:
				t.Errorf("write %d acknowledged by %s at %s (kill at %s, first write on the new primary %s at %s)",
					a.id, nodeByPGPort(c, a.pgPort), a.at.Format("15:04:05.000"), killed.Format("15:04:05.000"),
					c.Nodes[np].Name, first.at.Format("15:04:05.000"))
			}
		}
		if lastOld.at.IsZero() {
			t.Fatal("no write acknowledged by the old primary")
		}
		if d := lastOld.at.Sub(killed); d > 2*time.Second {
			t.Errorf("the killed primary acknowledged a write %s after the kill", d)
		}
		gap, _, _, _ := w.LargestGap()
		t.Logf("MEASURED haproxy failover write gap: %s (last write acknowledged by %s at kill %+dms, first by %s %s after the kill; ttl %ds, checks every 200ms, fall 1 rise 1)",
			first.at.Sub(lastOld.at).Round(time.Millisecond), c.Nodes[p].Name, lastOld.at.Sub(killed).Milliseconds(),
			c.Nodes[np].Name, first.at.Sub(killed).Round(time.Millisecond), c.Opts.TTL)
		t.Logf("a direct connection (polling /primary every ~50 ms) wrote on %s %s after the kill; the first write through haproxy came %+dms relative to it; the client: %d acknowledged, %d failed attempts, largest gap %s",
			c.Nodes[np].Name, direct.Sub(killed).Round(time.Millisecond), first.at.Sub(direct).Milliseconds(), len(acks), fails, gap.Round(time.Millisecond))

		// HAProxy's view settles: the new primary alone in `primary`; in
		// `replicas` the surviving replica unless it is tagged noloadbalance.
		if err := h.WaitUp("primary", []string{c.Nodes[np].Name}, 30*time.Second); err != nil {
			t.Error(err)
		}
		var readers []string
		for i := range c.Nodes {
			if i != p && i != np && i != lb {
				readers = append(readers, c.Nodes[i].Name)
			}
		}
		if err := h.WaitUp("replicas", readers, 30*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// A planned switchover behind HAProxy (checks every 200 ms): a client
// writing every 10 ms through the write port resumes on the new primary;
// the largest gap between two acknowledged writes is printed.
func TestHAProxySwitchoverWriteGap(t *testing.T) {
	needHAProxy(t)
	c, p := startCluster(t, nil)
	h := startHAProxy(t, c)
	if err := h.WaitUp("primary", []string{c.Nodes[p].Name}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	exec1(t, c, p, "CREATE TABLE hs(id int primary key)")
	time.Sleep(2 * time.Second)
	w := startHAProxyWriteClient(h.WritePort(), "hs")
	time.Sleep(time.Second)
	cand := otherThan(c, p)
	code, msg := callAPI(t, c, p, "POST", "/switchover", fmt.Sprintf(`{"leader":%q,"candidate":%q}`, c.Nodes[p].Name, c.Nodes[cand].Name))
	if code != 200 {
		t.Fatalf("POST /switchover = %d %q", code, msg)
	}
	if _, err := w.WaitAckOn(c.Nodes[cand].PGPort, time.Now().Add(-time.Minute), 20*time.Second); err != nil {
		t.Fatalf("no write acknowledged by the new primary through HAProxy: %v", err)
	}
	time.Sleep(time.Second)
	gap, before, after, err := w.LargestGap()
	acks, fails := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED switchover write gap through HAProxy (inter 200ms, fall 1, rise 1): %s (last write on %s, next on %s; %d acknowledged, %d failed attempts)",
		gap.Round(time.Millisecond), nodeByPGPort(c, before.pgPort), nodeByPGPort(c, after.pgPort), len(acks), fails)
	last := acks[len(acks)-1]
	if last.pgPort != c.Nodes[cand].PGPort {
		t.Errorf("the last write was acknowledged by %s, want the new primary %s", nodeByPGPort(c, last.pgPort), c.Nodes[cand].Name)
	}
	ids := make([]int, len(acks))
	for i, a := range acks {
		ids[i] = a.id
	}
	if missing := missingIDs(t, c, cand, "hs", ids); len(missing) > 0 {
		t.Errorf("%d acknowledged writes missing on the new primary", len(missing))
	}
}
