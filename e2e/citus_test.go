package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/testutil"
	"github.com/pgwarden/pgwarden/launcher"
)

// The Citus tests run the coordinator's side of pg_dist_node for real
// (pgwarden daemons, etcd, PostgreSQL, failovers and switchovers), either
// against the stand-in catalogue of citus/testdata/standin.sql (CI has no
// Citus package) or, when Citus is installed, against real Citus with
// distributed queries.

func citusDSN(c *launcher.Cluster, i int) string {
	return fmt.Sprintf("postgres://postgres:postgres-secret@127.0.0.1:%d/citus?connect_timeout=2&sslmode=disable", c.Nodes[i].PGPort)
}

type distRow struct {
	id    int
	group int
	host  string
	port  int
	role  string
}

func (r distRow) String() string {
	return fmt.Sprintf("%d:g%d:%s:%d:%s", r.id, r.group, r.host, r.port, r.role)
}

// distNodes reads pg_dist_node on node i.
func distNodes(c *launcher.Cluster, i int) ([]distRow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, citusDSN(c, i))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT nodeid, groupid, nodename, nodeport, noderole::text FROM pg_dist_node ORDER BY groupid, noderole, nodename, nodeport")
	if err != nil {
		return nil, err
	}
	var out []distRow
	for rows.Next() {
		var r distRow
		if err := rows.Scan(&r.id, &r.group, &r.host, &r.port, &r.role); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// nodeByPort names the node listening on port, for messages.
func nodeByPort(c *launcher.Cluster, port int) string {
	for _, n := range c.Nodes {
		if n.PGPort == port {
			return n.Name
		}
	}
	return fmt.Sprint(port)
}

// wantDist is pg_dist_node as the test expects it: per group, the primary
// node index and the secondary node indexes.
type wantDist map[int]struct {
	primary     int
	secondaries []int
}

func describeDist(c *launcher.Cluster, rows []distRow) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("g%d %s %s(id %d)", r.group, r.role, nodeByPort(c, r.port), r.id))
		if r.host != "127.0.0.1" {
			parts[len(parts)-1] += " host=" + r.host
		}
	}
	return strings.Join(parts, ", ")
}

// checkDist returns "" when rows say what want says.
func checkDist(c *launcher.Cluster, rows []distRow, want wantDist) string {
	got := map[int][2][]string{}
	for _, r := range rows {
		e := got[r.group]
		name := nodeByPort(c, r.port)
		if r.host != "127.0.0.1" {
			name += "@" + r.host
		}
		if r.role == "primary" {
			e[0] = append(e[0], name)
		} else {
			e[1] = append(e[1], name)
		}
		got[r.group] = e
	}
	for g, w := range want {
		e := got[g]
		if len(e[0]) != 1 || e[0][0] != c.Nodes[w.primary].Name {
			return fmt.Sprintf("group %d primary rows %v, want [%s]", g, e[0], c.Nodes[w.primary].Name)
		}
		var ws []string
		for _, s := range w.secondaries {
			ws = append(ws, c.Nodes[s].Name)
		}
		sort.Strings(ws)
		gs := append([]string(nil), e[1]...)
		sort.Strings(gs)
		if strings.Join(gs, ",") != strings.Join(ws, ",") {
			return fmt.Sprintf("group %d secondary rows %v, want %v", g, gs, ws)
		}
	}
	return ""
}

func waitDist(t *testing.T, c *launcher.Cluster, coord int, want wantDist, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, "pg_dist_node in step", func() string {
		rows, err := distNodes(c, coord)
		if err != nil {
			return err.Error()
		}
		if msg := checkDist(c, rows, want); msg != "" {
			return msg + " (have: " + describeDist(c, rows) + ")"
		}
		return ""
	})
}

// others returns the group's nodes but i.
func others(c *launcher.Cluster, g, i int) []int {
	var out []int
	for _, j := range c.GroupNodes(g) {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// stmtLog records distributed statements run through the coordinator.
type stmtLog struct {
	mu    sync.Mutex
	stats []stmtResult
	stop  chan struct{}
	done  chan struct{}
}

type stmtResult struct {
	kind       string
	start, end time.Time
	err        error
	port       int // the worker it went to (stand-in)
}

func (l *stmtLog) add(r stmtResult) {
	l.mu.Lock()
	l.stats = append(l.stats, r)
	l.mu.Unlock()
}

func (l *stmtLog) Stop() []stmtResult {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stmtResult(nil), l.stats...)
}

// summarize counts failures and the longest statement in [from, to].
func summarize(rs []stmtResult, from, to time.Time) (n, fails int, longest time.Duration, firstErr error) {
	for _, r := range rs {
		if r.end.Before(from) || r.start.After(to) {
			continue
		}
		n++
		if r.err != nil {
			fails++
			if firstErr == nil {
				firstErr = r.err
			}
		}
		longest = max(longest, r.end.Sub(r.start))
	}
	return
}

// startStandinStatements runs, every 10 ms, a stand-in "distributed
// statement" for group g: inside a coordinator transaction it asks
// citus_standin_route (which waits on the group's metadata lock, as Citus
// statements do) for the group's primary, and inserts a row there before
// committing.
func startStandinStatements(c *launcher.Cluster, coord, g int) *stmtLog {
	l := &stmtLog{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		var cc *pgx.Conn
		defer func() {
			if cc != nil {
				cc.Close(context.Background())
			}
		}()
		seq := 0
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			seq++
			r := stmtResult{kind: "insert", start: time.Now()}
			r.err, r.port = func() (error, int) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if cc == nil || cc.IsClosed() {
					conn, err := pgx.Connect(ctx, citusDSN(c, coord))
					if err != nil {
						return err, 0
					}
					cc = conn
				}
				tx, err := cc.Begin(ctx)
				if err != nil {
					cc.Close(ctx)
					cc = nil
					return err, 0
				}
				defer tx.Rollback(ctx)
				var host string
				var port int
				if err := tx.QueryRow(ctx, "SELECT nodename, nodeport FROM citus_standin_route($1)", g).Scan(&host, &port); err != nil {
					return err, 0
				}
				// A new connection per statement: a cached one would fail
				// once after its server restarted, which says nothing about
				// what the coordinator did.
				w, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:postgres-secret@%s:%d/citus?connect_timeout=1&sslmode=disable", host, port))
				if err != nil {
					return err, port
				}
				defer w.Close(context.Background())
				if _, err := w.Exec(ctx, "INSERT INTO citus_e2e(v) VALUES ($1)", seq); err != nil {
					return err, port
				}
				return tx.Commit(ctx), port
			}()
			r.end = time.Now()
			l.add(r)
		}
	}()
	return l
}

// waitPromoted returns when node i answers writes (pg_is_in_recovery is false).
func waitPromoted(t *testing.T, c *launcher.Cluster, i int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := connect(ctx, c, i)
		if err == nil {
			var rec bool
			for time.Now().Before(deadline) {
				if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
					break
				}
				if !rec {
					at := time.Now()
					conn.Close(ctx)
					cancel()
					return at
				}
				time.Sleep(5 * time.Millisecond)
				ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
				cancel()
				ctx, cancel = ctx2, cancel2
			}
			conn.Close(ctx)
		}
		cancel()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s was not promoted within %s", c.Nodes[i].Name, timeout)
	return time.Time{}
}

// primaryRowAt polls pg_dist_node on the coordinator (committed state)
// until group g's primary row points at node i, and returns when it first
// did.
func primaryRowAt(t *testing.T, c *launcher.Cluster, coord, g, i int, timeout time.Duration) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, citusDSN(c, coord))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var port int
		var host string
		err := conn.QueryRow(ctx, "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = $1 AND noderole = 'primary'", g).Scan(&host, &port)
		if err == nil && host == "127.0.0.1" && port == c.Nodes[i].PGPort {
			return time.Now()
		}
		if ctx.Err() != nil {
			t.Fatalf("group %d's primary row never pointed at %s (last: %s:%d, %v)", g, c.Nodes[i].Name, host, port, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func standinSQL(t *testing.T) string {
	p, err := filepath.Abs("../citus/testdata/standin.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCitusStandin: a coordinator group and two worker groups against the
// stand-in catalogue. The coordinator's leader registers the primaries and
// streaming standbys, follows a worker failover within a second of the
// promotion, holds the group's statements through a worker switchover
// (none fails), tracks the old primary as a secondary, adds a new worker
// group, and after its own failover reconciles the whole table.
func TestCitusStandin(t *testing.T) {
	c := newCluster(t, func(o *launcher.Options) {
		o.CitusGroups = []int{0, 0, 1, 1, 2, 2}
		o.CitusStandinSQL = standinSQL(t)
	})
	if err := c.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ { // group 2 joins later
		if err := c.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	prim, err := c.WaitGroupsHealthy(90 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	co, w1 := prim[0], prim[1]
	t.Logf("groups healthy after %s: coordinator %s, group 1 %s", time.Since(start).Round(time.Millisecond), c.Nodes[co].Name, c.Nodes[w1].Name)
	want := wantDist{0: {co, others(c, 0, co)}, 1: {w1, others(c, 1, w1)}}
	waitDist(t, c, co, want, 20*time.Second)

	// A new worker group is registered.
	for i := 4; i < 6; i++ {
		if err := c.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	p2, err := c.WaitGroupsHealthy(90 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w2 := p2[2]
	want[2] = struct {
		primary     int
		secondaries []int
	}{w2, others(c, 2, w2)}
	waitDist(t, c, co, want, 20*time.Second)
	t.Logf("new worker group 2 registered: %s", describeDistNow(c, co))
	checkCitusListings(t, c)

	execDB(t, c, w1, "citus", "CREATE TABLE citus_e2e (id bigserial PRIMARY KEY, v int)")
	waitTableOn(t, c, others(c, 1, w1)[0], "citus_e2e")

	// Unplanned worker failover: kill -9 group 1's primary.
	cand := others(c, 1, w1)[0]
	stm := startStandinStatements(c, co, 1)
	time.Sleep(300 * time.Millisecond)
	kill := time.Now()
	if err := c.KillNode(w1, true); err != nil {
		t.Fatal(err)
	}
	promoted := waitPromoted(t, c, cand, 30*time.Second)
	rowAt := primaryRowAt(t, c, co, 1, cand, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	rs := stm.Stop()
	n, fails, longest, ferr := summarize(rs, kill, time.Now())
	lag := rowAt.Sub(promoted)
	t.Logf("MEASURED citus worker failover (stand-in): promoted %s after kill -9; pg_dist_node row committed %s after the promotion; %d statements, %d failed (first: %v), longest %s",
		promoted.Sub(kill).Round(time.Millisecond), lag.Round(time.Millisecond), n, fails, ferr, longest.Round(time.Millisecond))
	if lag > time.Second {
		t.Errorf("pg_dist_node pointed at the new primary %s after its promotion, want within 1s", lag)
	}
	if after := countFailsAfter(rs, rowAt); after > 0 {
		t.Errorf("%d statements failed after pg_dist_node pointed at the new primary", after)
	}

	// The old primary comes back as a standby and is tracked as a secondary.
	if err := c.StartNode(w1); err != nil {
		t.Fatal(err)
	}
	want[1] = struct {
		primary     int
		secondaries []int
	}{cand, []int{w1}}
	waitDist(t, c, co, want, 60*time.Second)
	t.Logf("old primary %s tracked as a secondary: %s", c.Nodes[w1].Name, describeDistNow(c, co))

	// Planned switchover of group 1 back to the old primary, under load:
	// no statement fails.
	stm = startStandinStatements(c, co, 1)
	time.Sleep(300 * time.Millisecond)
	swStart := time.Now()
	out, err := runPatronictl(pgwardenctl(t), "-c", c.Nodes[co].ConfigPath, "switchover", "--group", "1",
		"--leader", c.Nodes[cand].Name, "--candidate", c.Nodes[w1].Name, "--force")
	if err != nil {
		t.Fatalf("pgwardenctl switchover --group 1: %v\n%s", err, out)
	}
	rowAt = primaryRowAt(t, c, co, 1, w1, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	rs = stm.Stop()
	n, fails, longest, ferr = summarize(rs, swStart.Add(-time.Second), time.Now())
	t.Logf("MEASURED citus worker switchover (stand-in): pg_dist_node switched %s after the request; %d statements, %d failed (first: %v), longest statement (stall) %s",
		rowAt.Sub(swStart).Round(time.Millisecond), n, fails, ferr, longest.Round(time.Millisecond))
	if os.Getenv("PGWARDEN_E2E_CITUS_LOGS") != "" {
		logCitusLines(t, c)
	}
	if fails > 0 {
		t.Errorf("%d statements failed during a worker switchover, want none (first: %v)", fails, ferr)
	}
	if !wentTo(rs, c.Nodes[w1].PGPort) {
		t.Errorf("no statement reached the new primary %s after the switchover", c.Nodes[w1].Name)
	}
	want[1] = struct {
		primary     int
		secondaries []int
	}{w1, []int{cand}}
	waitDist(t, c, co, want, 60*time.Second)

	// A restart of the worker group's primary holds statements too.
	stm = startStandinStatements(c, co, 1)
	time.Sleep(300 * time.Millisecond)
	rsStart := time.Now()
	if code, msg := callAPI(t, c, w1, "POST", "/restart", `{}`); code != 200 {
		t.Fatalf("POST /restart = %d %q", code, msg)
	}
	time.Sleep(500 * time.Millisecond)
	rs = stm.Stop()
	n, fails, longest, ferr = summarize(rs, rsStart, time.Now())
	t.Logf("MEASURED citus worker primary restart (stand-in): %d statements, %d failed (first: %v), longest %s", n, fails, ferr, longest.Round(time.Millisecond))
	if fails > 0 {
		t.Errorf("%d statements failed during a restart of the worker primary, want none (first: %v)", fails, ferr)
	}
	waitDist(t, c, co, want, 30*time.Second)

	// Coordinator failover: the new coordinator leader reconciles the
	// table, and its /primary answers 200 only once it takes writes.
	newCo := others(c, 0, co)[0]
	codes := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			if c.HealthCode(context.Background(), newCo, "/primary", time.Second) == 200 {
				codes <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		close(codes)
	}()
	if err := c.KillNode(co, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-codes; !ok {
		t.Fatalf("%s never answered 200 on /primary", c.Nodes[newCo].Name)
	}
	execDB(t, c, newCo, "citus", "CREATE TABLE written_after_primary_200 (x int)")
	waitPromoted(t, c, newCo, 30*time.Second)
	delete(want, 0)
	want[0] = struct {
		primary     int
		secondaries []int
	}{newCo, nil}
	waitDist(t, c, newCo, want, 20*time.Second)
	t.Logf("after the coordinator failover: %s", describeDistNow(c, newCo))
}

func describeDistNow(c *launcher.Cluster, i int) string {
	rows, err := distNodes(c, i)
	if err != nil {
		return err.Error()
	}
	return describeDist(c, rows)
}

func countFailsAfter(rs []stmtResult, at time.Time) int {
	n := 0
	for _, r := range rs {
		if r.start.After(at) && r.err != nil {
			n++
		}
	}
	return n
}

func wentTo(rs []stmtResult, port int) bool {
	for _, r := range rs {
		if r.err == nil && r.port == port {
			return true
		}
	}
	return false
}

func execDB(t *testing.T, c *launcher.Cluster, i int, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(dsn(c, i), "/postgres?", "/"+db+"?", 1))
	if err != nil {
		t.Fatalf("connecting to %s/%s: %v", c.Nodes[i].Name, db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("on %s/%s: %s: %v", c.Nodes[i].Name, db, sql, err)
	}
}

func waitTableOn(t *testing.T, c *launcher.Cluster, i int, table string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, table+" on "+c.Nodes[i].Name, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, citusDSN(c, i))
		if err != nil {
			return err.Error()
		}
		defer conn.Close(ctx)
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil {
			return err.Error()
		}
		if !ok {
			return "not there yet"
		}
		return ""
	})
}

func pgwardenctl(t *testing.T) string {
	bin, err := filepath.Abs(filepath.Join(filepath.Dir(binary), "pgwardenctl"))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// checkCitusListings: GET /cluster and `pgwardenctl list` show every
// group, and `patronictl list` (when installed) shows the same rows.
func checkCitusListings(t *testing.T, c *launcher.Cluster) {
	t.Helper()
	w := c.GroupNodes(1)[0]
	code, body := callAPI(t, c, w, "GET", "/cluster", "")
	if code != 200 {
		t.Fatalf("GET /cluster = %d %s", code, body)
	}
	var doc struct {
		Members []struct {
			Name  string `json:"name"`
			Group *int   `json:"group"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("GET /cluster: %v\n%s", err, body)
	}
	var got []string
	for _, m := range doc.Members {
		g := -1
		if m.Group != nil {
			g = *m.Group
		}
		got = append(got, fmt.Sprintf("%d/%s", g, m.Name))
	}
	var want []string
	for _, n := range c.Nodes {
		want = append(want, fmt.Sprintf("%d/%s", n.Group, n.Name))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("GET /cluster on a worker lists %v, want %v", got, want)
	}

	rows := func(out string) []string {
		var rs []map[string]any
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("list -f json: %v\n%s", err, out)
		}
		var keys []string
		for _, r := range rs {
			keys = append(keys, fmt.Sprintf("%v/%v/%v/%v", r["Group"], r["Member"], r["Host"], r["Role"]))
		}
		return keys
	}
	cfg := c.Nodes[c.GroupNodes(0)[0]].ConfigPath
	ours, err := runPatronictl(pgwardenctl(t), "-c", cfg, "list", "-f", "json")
	if err != nil {
		t.Fatalf("pgwardenctl list: %v\n%s", err, ours)
	}
	if got := rows(ours); len(got) != len(c.Nodes) || !strings.HasPrefix(got[0], "0/") || !strings.HasPrefix(got[len(got)-1], "2/") {
		t.Errorf("pgwardenctl list -f json: %v", got)
	}
	table, _ := runPatronictl(pgwardenctl(t), "-c", cfg, "list")
	t.Logf("pgwardenctl list:\n%s", table)
	bin, err := exec.LookPath("patronictl")
	if err != nil {
		fmt.Println("SKIP: patronictl not installed (Debian package patroni): Citus list not compared")
		return
	}
	pcfg := writePatronictlConfig(t, c)
	f, err := os.OpenFile(pcfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "citus:\n  group: 0\n  database: citus\n")
	f.Close()
	// Both read etcd at their own moment: the sync key of the group just
	// added may change between the two; compare until they agree.
	testutil.Eventually(t, 15*time.Second, "pgwardenctl and patronictl list the same rows", func() string {
		theirs, err := runPatronictl(bin, "-c", pcfg, "list", "-f", "json")
		if err != nil {
			return fmt.Sprintf("patronictl list: %v\n%s", err, theirs)
		}
		ours, err := runPatronictl(pgwardenctl(t), "-c", cfg, "list", "-f", "json")
		if err != nil {
			return fmt.Sprintf("pgwardenctl list: %v\n%s", err, ours)
		}
		if a, b := rows(ours), rows(theirs); strings.Join(a, " ") != strings.Join(b, " ") {
			return fmt.Sprintf("differ:\n ours   %v\n theirs %v", a, b)
		}
		return ""
	})
	ptable, _ := runPatronictl(bin, "-c", pcfg, "list")
	t.Logf("patronictl list:\n%s", ptable)
}

// A node with a citus section on a machine without Citus refuses to start,
// saying what is missing, instead of bootstrapping over and over.
func TestCitusMissingIsRefused(t *testing.T) {
	dir := testutil.WorldTempDir(t, "pgw-nocitus-*")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// pg_config of an installation without Citus.
	script := "#!/bin/sh\necho " + filepath.Join(dir, "lib") + "\necho " + filepath.Join(dir, "share") + "\n"
	if err := os.WriteFile(filepath.Join(bin, "pg_config"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(validConfig, "  data_dir: /tmp/pgwarden-validate-config/data\n",
		"  data_dir: "+filepath.Join(dir, "data")+"\n  bin_dir: "+bin+"\n", 1) + "\ncitus:\n  group: 1\n  database: citus\n"
	p := filepath.Join(dir, "node.yml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runBinary(t, p)
	if code != 1 || !strings.Contains(errOut, "Citus extension is not installed") || !strings.Contains(errOut, "citus.so is missing") {
		t.Fatalf("exit code %d, stderr:\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("a data directory was made although the node refused to start")
	}
	t.Logf("refused: %s", strings.TrimSpace(errOut))
}
