package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/launcher"
)

// startDistStatements runs, every 10 ms each, a single-row INSERT and a
// multi-shard SELECT count(*) on the distributed table dist through the
// coordinator node coord.
func startDistStatements(c *launcher.Cluster, coord int) *stmtLog {
	l := &stmtLog{stop: make(chan struct{}), done: make(chan struct{})}
	run := func(kind string, stmt func(ctx context.Context, conn *pgx.Conn) error) {
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			r := stmtResult{kind: kind, start: time.Now()}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if conn == nil || conn.IsClosed() {
				conn, r.err = pgx.Connect(ctx, citusDSN(c, coord))
				if r.err != nil {
					conn = nil
				}
			}
			if r.err == nil {
				r.err = stmt(ctx, conn)
			}
			cancel()
			r.end = time.Now()
			l.add(r)
		}
	}
	var wg chan struct{} = make(chan struct{}, 2)
	go func() {
		run("insert", func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "INSERT INTO dist(k, v) VALUES ($1, 1)", rand.Intn(1_000_000))
			return err
		})
		wg <- struct{}{}
	}()
	go func() {
		run("read", func(ctx context.Context, conn *pgx.Conn) error {
			var n int64
			return conn.QueryRow(ctx, "SELECT count(*) FROM dist").Scan(&n)
		})
		wg <- struct{}{}
	}()
	go func() { <-wg; <-wg; close(l.done) }()
	return l
}

func summarizeKinds(rs []stmtResult, from, to time.Time) string {
	out := ""
	for _, kind := range []string{"insert", "read"} {
		var sel []stmtResult
		for _, r := range rs {
			if r.kind == kind {
				sel = append(sel, r)
			}
		}
		n, fails, longest, ferr := summarize(sel, from, to)
		out += fmt.Sprintf(" %ss: %d, %d failed, longest %s", kind, n, fails, longest.Round(time.Millisecond))
		if ferr != nil {
			out += fmt.Sprintf(" (first error: %v)", ferr)
		}
		out += ";"
	}
	return out
}

// TestCitusReal runs the Citus scenarios against the real extension with
// distributed queries through the coordinator: a worker switchover and a
// worker failover under load, and a coordinator failover. It is skipped
// when Citus is not installed (CI has no Citus package).
func TestCitusReal(t *testing.T) {
	if ok, _ := launcher.CitusAvailable(""); !ok {
		fmt.Println("SKIP TestCitusReal: the citus extension is not installed for PostgreSQL 15 (not in pg_available_extensions)")
		t.Skip("citus is not installed")
	}
	c := newCluster(t, func(o *launcher.Options) {
		o.CitusGroups = []int{0, 0, 1, 1, 2, 2}
		o.Synchronous = true
		o.TTL = 5
	})
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	prim, err := c.WaitGroupsHealthy(120 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	co, w1, w2 := prim[0], prim[1], prim[2]
	t.Logf("Citus cluster healthy after %s", time.Since(start).Round(time.Millisecond))
	want := wantDist{0: {co, others(c, 0, co)}, 1: {w1, others(c, 1, w1)}, 2: {w2, others(c, 2, w2)}}
	waitDist(t, c, co, want, 30*time.Second)
	t.Logf("pg_dist_node: %s", describeDistNow(c, co))
	execDB(t, c, co, "citus", "CREATE TABLE dist (k int, v int)")
	execDB(t, c, co, "citus", "SELECT create_distributed_table('dist', 'k')")

	// Worker switchover under load.
	stm := startDistStatements(c, co)
	time.Sleep(time.Second)
	cand := others(c, 1, w1)[0]
	swStart := time.Now()
	code, msg := callAPI(t, c, w1, "POST", "/switchover", fmt.Sprintf(`{"leader":%q,"candidate":%q}`, c.Nodes[w1].Name, c.Nodes[cand].Name))
	if code != 200 {
		t.Fatalf("POST /switchover = %d %q", code, msg)
	}
	rowAt := primaryRowAt(t, c, co, 1, cand, 30*time.Second)
	time.Sleep(time.Second)
	rs := stm.Stop()
	t.Logf("MEASURED real Citus worker switchover: pg_dist_node switched %s after the request;%s",
		rowAt.Sub(swStart).Round(time.Millisecond), summarizeKinds(rs, swStart.Add(-time.Second), time.Now()))
	if os.Getenv("PGWARDEN_E2E_CITUS_LOGS") != "" {
		logCitusLines(t, c)
	}
	if _, fails, _, ferr := summarize(rs, swStart, time.Now()); fails > 0 {
		t.Errorf("%d distributed statements failed during a worker switchover (first: %v)", fails, ferr)
	}

	// A restart of group 1's primary under load.
	stm = startDistStatements(c, co)
	time.Sleep(time.Second)
	rsStart := time.Now()
	if code, msg := callAPI(t, c, cand, "POST", "/restart", `{}`); code != 200 {
		t.Fatalf("POST /restart = %d %q", code, msg)
	}
	time.Sleep(time.Second)
	rs = stm.Stop()
	t.Logf("MEASURED real Citus worker primary restart:%s", summarizeKinds(rs, rsStart, time.Now()))
	if _, fails, _, ferr := summarize(rs, rsStart, time.Now()); fails > 0 {
		t.Errorf("%d distributed statements failed during a restart of a worker primary (first: %v)", fails, ferr)
	}

	// Worker failover under load: kill -9 group 2's primary.
	stm = startDistStatements(c, co)
	time.Sleep(time.Second)
	cand2 := others(c, 2, w2)[0]
	kill := time.Now()
	if err := c.KillNode(w2, true); err != nil {
		t.Fatal(err)
	}
	promoted := waitPromoted(t, c, cand2, 30*time.Second)
	rowAt = primaryRowAt(t, c, co, 2, cand2, 10*time.Second)
	time.Sleep(time.Second)
	rs = stm.Stop()
	t.Logf("MEASURED real Citus worker failover: promoted %s after kill -9; pg_dist_node row committed %s after the promotion;%s",
		promoted.Sub(kill).Round(time.Millisecond), rowAt.Sub(promoted).Round(time.Millisecond), summarizeKinds(rs, kill, time.Now()))
	if after := countFailsAfter(rs, rowAt); after > 0 {
		t.Errorf("%d statements failed after pg_dist_node pointed at the new primary", after)
	}
	if err := c.StartNode(w2); err != nil {
		t.Fatal(err)
	}
	want[1] = struct {
		primary     int
		secondaries []int
	}{cand, []int{w1}}
	want[2] = struct {
		primary     int
		secondaries []int
	}{cand2, []int{w2}}
	waitDist(t, c, co, want, 60*time.Second)
	t.Logf("after the worker switchover and failover: %s", describeDistNow(c, co))

	// Coordinator failover.
	newCo := others(c, 0, co)[0]
	kill = time.Now()
	if err := c.KillNode(co, true); err != nil {
		t.Fatal(err)
	}
	waitPromoted(t, c, newCo, 30*time.Second)
	want[0] = struct {
		primary     int
		secondaries []int
	}{newCo, nil}
	waitDist(t, c, newCo, want, 30*time.Second)
	execDB(t, c, newCo, "citus", "INSERT INTO dist(k, v) SELECT g, 2 FROM generate_series(1, 100) g")
	t.Logf("after the coordinator failover (%s): %s", time.Since(kill).Round(time.Millisecond), describeDistNow(c, newCo))
}

// logCitusLines prints every daemon's "citus:" and role change log lines,
// so that the timing of a Citus switchover can be read in the test output.
func logCitusLines(t *testing.T, c *launcher.Cluster) {
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "citus: ") || strings.Contains(line, "role change") || strings.Contains(line, "decision") ||
				strings.Contains(line, "synchronous_standby_names") || strings.Contains(line, "took the leader") {
				t.Logf("%s | %s", n.Name, line)
			}
		}
	}
}
