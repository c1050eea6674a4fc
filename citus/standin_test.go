package citus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/internal/testutil"
	"github.com/pgwarden/pgwarden/postgres"
)

// standinSQL is the stand-in for Citus's coordinator catalogue (relative
// to the package directory, where go test runs).
const standinSQL = "testdata/standin.sql"

// standinSuper is the stand-in coordinator's superuser. The password has
// characters that need escaping in a URL.
var standinSuper = postgres.Credentials{Username: "postgres", Password: `st'and:in@pw/1`}

// startStandinCoordinator starts a throwaway PostgreSQL 15 on a free
// loopback port with a database "citus" holding the stand-in catalogue
// (testdata/standin.sql: pg_dist_node and Citus's node functions, NOT
// Citus); it returns a superuser DSN for that database. Cleanup stops it
// (immediate) whatever happens.
func startStandinCoordinator(t *testing.T) (dsn string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(postgres.DefaultBinDir, "postgres")); err != nil {
		t.Skipf("PostgreSQL binaries not found in %s", postgres.DefaultBinDir)
	}
	script, err := os.ReadFile(standinSQL)
	if err != nil {
		t.Fatalf("reading the stand-in catalogue: %v", err)
	}
	dir := testutil.WorldTempDir(t, "pgw-citus-*")
	port := testutil.FreePort(t)
	inst, err := postgres.New(postgres.Settings{
		Name:        "coordinator",
		DataDir:     filepath.Join(dir, "data"),
		ListenHosts: "127.0.0.1",
		Port:        port,
		Superuser:   standinSuper,
		Parameters: map[string]string{
			"shared_buffers":  "16MB",
			"max_connections": "20",
			"fsync":           "off",
		},
		InitdbOptions: []string{"no-sync", "--encoding=UTF8"},
	})
	if err != nil {
		t.Fatalf("postgres.New: %v", err)
	}
	// Registered before anything is started: it runs whatever happens
	// below (Stop of a stopped instance does nothing).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := inst.Stop(ctx, "immediate", 20*time.Second); err != nil {
			t.Errorf("cleanup: stopping the stand-in coordinator: %v", err)
		}
		inst.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := inst.Initdb(ctx); err != nil { // also writes the configuration
		t.Fatalf("Initdb: %v", err)
	}
	if err := inst.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start: %v", err)
	}

	dsnFor := func(db string) string {
		u := url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword(standinSuper.Username, standinSuper.Password),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/" + db,
			RawQuery: "sslmode=disable&connect_timeout=10",
		}
		return u.String()
	}

	c, err := pgx.Connect(ctx, dsnFor("postgres"))
	if err != nil {
		t.Fatalf("connecting to the stand-in coordinator: %v", err)
	}
	_, err = c.Exec(ctx, "CREATE DATABASE citus")
	c.Close(context.Background())
	if err != nil {
		t.Fatalf("CREATE DATABASE citus: %v", err)
	}

	dsn = dsnFor("citus")
	c, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to database citus: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.PgConn().Exec(ctx, string(script)).ReadAll(); err != nil {
		t.Fatalf("loading %s: %v", standinSQL, err)
	}
	return dsn
}

// --- helpers for the tests below ---

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a connection closed at cleanup.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// querier is *pgx.Conn or pgx.Tx.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// nodeRow is a row of pg_dist_node.
type nodeRow struct {
	ID, Group   int
	Name        string
	Port        int
	Rack        string
	HasMetadata bool
	Active      bool
	Role        string
	Cluster     string
	Synced      bool
	Shards      bool
}

func (r nodeRow) String() string {
	return fmt.Sprintf("{id %d group %d %s:%d %s/%s meta=%v active=%v synced=%v shards=%v rack=%s}",
		r.ID, r.Group, r.Name, r.Port, r.Role, r.Cluster, r.HasMetadata, r.Active, r.Synced, r.Shards, r.Rack)
}

const nodeCols = `nodeid, groupid, nodename, nodeport, noderack, hasmetadata, isactive,
	noderole::text, nodecluster::text, metadatasynced, shouldhaveshards`

func scanNode(row pgx.Row) (nodeRow, error) {
	var r nodeRow
	err := row.Scan(&r.ID, &r.Group, &r.Name, &r.Port, &r.Rack, &r.HasMetadata, &r.Active,
		&r.Role, &r.Cluster, &r.Synced, &r.Shards)
	return r, err
}

// nodeByID returns the row of node id (fails the test when there is none).
func nodeByID(t *testing.T, q querier, id int) nodeRow {
	t.Helper()
	r, err := scanNode(q.QueryRow(testCtx(t), "SELECT "+nodeCols+" FROM pg_dist_node WHERE nodeid = $1", id))
	if err != nil {
		t.Fatalf("node %d: %v", id, err)
	}
	return r
}

// nodeCount is the number of rows of pg_dist_node matching where.
func nodeCount(t *testing.T, q querier, where string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRow(testCtx(t), "SELECT count(*) FROM pg_dist_node WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatalf("counting nodes where %s: %v", where, err)
	}
	return n
}

// addNode calls citus_add_node with all five arguments.
func addNode(ctx context.Context, q querier, name string, port, group int, role, cluster string) (int, error) {
	var id int
	err := q.QueryRow(ctx, "SELECT citus_add_node($1, $2, $3, $4::text::noderole, $5::text::name)",
		name, port, group, role, cluster).Scan(&id)
	return id, err
}

func mustAddNode(t *testing.T, q querier, name string, port, group int, role string) int {
	t.Helper()
	id, err := addNode(testCtx(t), q, name, port, group, role, "default")
	if err != nil {
		t.Fatalf("citus_add_node(%s, %d, %d, %s): %v", name, port, group, role, err)
	}
	return id
}

func updateNode(ctx context.Context, q querier, id int, name string, port int) error {
	// As pgwarden calls it.
	_, err := q.Exec(ctx, "SELECT citus_update_node($1, $2, $3, true, $4)", id, name, port, 10000)
	return err
}

// wantSQLError fails unless err is a PostgreSQL error with SQLSTATE code
// (any when "") and a message containing msg.
func wantSQLError(t *testing.T, err error, code, msg string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want a PostgreSQL error %s %q", err, code, msg)
	}
	if (code != "" && pe.Code != code) || !strings.Contains(pe.Message, msg) {
		t.Fatalf("error = %s %q, want %s %q", pe.Code, pe.Message, code, msg)
	}
}

// myAdvisoryLocks counts the advisory locks this session holds.
func myAdvisoryLocks(t *testing.T, q querier) int {
	t.Helper()
	var n int
	err := q.QueryRow(testCtx(t), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted").Scan(&n)
	if err != nil {
		t.Fatalf("pg_locks: %v", err)
	}
	return n
}

// --- tests ---

func TestStandinVersionAndCatalogue(t *testing.T) {
	t.Parallel()
	dsn := startStandinCoordinator(t)
	c := connect(t, dsn)
	ctx := testCtx(t)

	var v string
	if err := c.QueryRow(ctx, "SELECT citus_version()").Scan(&v); err != nil {
		t.Fatalf("citus_version: %v", err)
	}
	if !strings.Contains(v, "stand-in") || !strings.Contains(v, "not Citus") {
		t.Fatalf("citus_version() = %q", v)
	}
	// Everything lives in public, where unqualified names find it.
	var n int
	err := c.QueryRow(ctx, `SELECT count(*) FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
		WHERE s.nspname = 'public' AND p.proname IN ('citus_add_node', 'citus_add_secondary_node',
		'citus_update_node', 'citus_remove_node', 'citus_set_coordinator_host', 'citus_version',
		'citus_standin_route')`).Scan(&n)
	if err != nil || n != 7 {
		t.Fatalf("functions in public: %d, %v; want 7", n, err)
	}
	// The query pgwarden reads the catalogue with.
	mustAddNode(t, c, "w1", 5432, -1, "primary")
	rows, err := c.Query(ctx, "SELECT nodeid, groupid, nodename, nodeport, noderole::text FROM pg_dist_node")
	if err != nil {
		t.Fatalf("reading pg_dist_node: %v", err)
	}
	type row struct {
		id, group int
		name      string
		port      int
		role      string
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.group, &x.name, &x.port, &x.role)
		return x, err
	})
	if err != nil {
		t.Fatalf("reading pg_dist_node: %v", err)
	}
	if want := []row{{1, 1, "w1", 5432, "primary"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pg_dist_node = %v, want %v", got, want)
	}
}

func TestStandinAddNode(t *testing.T) {
	t.Parallel()
	dsn := startStandinCoordinator(t)
	c := connect(t, dsn)

	// The steps run in order on one catalogue.
	steps := []struct {
		name                string
		node                string
		port, group         int
		role, cluster       string
		wantID, wantGroup   int    // 0: not checked
		wantCode, wantError string // an error is expected when wantCode != ""
	}{
		{name: "first worker gets id 1, group 1", node: "w1", port: 5432, group: -1, role: "primary", wantID: 1, wantGroup: 1},
		{name: "second worker gets id 2, group 2", node: "w2", port: 5432, group: -1, role: "primary", wantID: 2, wantGroup: 2},
		{name: "same address returns the existing id", node: "w1", port: 5432, group: 7, role: "secondary", wantID: 1, wantGroup: 1},
		{name: "same host, other port is another node", node: "w2", port: 6432, group: -1, role: "primary", wantID: 3, wantGroup: 3},
		{name: "a second primary in a group is refused", node: "w1b", port: 5432, group: 1, role: "primary",
			wantCode: "23505", wantError: "pg_dist_node_one_primary_per_group"},
		{name: "a secondary in that group is fine", node: "w1b", port: 5432, group: 1, role: "secondary", wantGroup: 1},
		{name: "a primary of group 1 in another cluster is fine", node: "w1c", port: 5432, group: 1, role: "primary", cluster: "other", wantGroup: 1},
		{name: "coordinator group 0", node: "coord", port: 5432, group: 0, role: "primary", wantGroup: 0},
		{name: "group ids continue after explicit groups", node: "w4", port: 5432, group: -1, role: "primary", wantGroup: 4},
	}
	ids := map[int]string{}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			cluster := s.cluster
			if cluster == "" {
				cluster = "default"
			}
			before := nodeCount(t, c, "true")
			id, err := addNode(testCtx(t), c, s.node, s.port, s.group, s.role, cluster)
			if s.wantCode != "" {
				wantSQLError(t, err, s.wantCode, s.wantError)
				if n := nodeCount(t, c, "true"); n != before {
					t.Fatalf("%d rows after a failed add, want %d", n, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("citus_add_node: %v", err)
			}
			if s.wantID != 0 && id != s.wantID {
				t.Fatalf("id = %d, want %d", id, s.wantID)
			}
			r := nodeByID(t, c, id)
			if r.Group != s.wantGroup {
				t.Fatalf("row %v: group %d, want %d", r, r.Group, s.wantGroup)
			}
			if prev, ok := ids[id]; ok {
				// An existing node: nothing added or changed.
				if n := nodeCount(t, c, "true"); n != before {
					t.Fatalf("%d rows after re-adding %s, want %d", n, prev, before)
				}
				if r.Role != "primary" {
					t.Fatalf("re-adding changed the row: %v", r)
				}
				return
			}
			ids[id] = s.node
			if r.Name != s.node || r.Port != s.port || r.Role != s.role || r.Cluster != cluster ||
				!r.Active || !r.HasMetadata || !r.Synced || r.Rack != "default" || r.Shards != (s.group != 0) {
				t.Fatalf("row %v after citus_add_node(%s, %d, %d, %s, %s)", r, s.node, s.port, s.group, s.role, cluster)
			}
		})
	}

	t.Run("node ids are not reused", func(t *testing.T) {
		id := mustAddNode(t, c, "w5", 5432, -1, "primary")
		var maxID int
		if err := c.QueryRow(testCtx(t), "SELECT max(nodeid) FROM pg_dist_node WHERE nodeid <> $1", id).Scan(&maxID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(testCtx(t), "SELECT citus_remove_node('w5', 5432)"); err != nil {
			t.Fatalf("citus_remove_node: %v", err)
		}
		again := mustAddNode(t, c, "w5", 5432, -1, "primary")
		if id <= maxID || again <= id {
			t.Fatalf("ids: others up to %d, w5 %d, w5 re-added %d; want strictly increasing", maxID, id, again)
		}
	})

	t.Run("address unique in the table", func(t *testing.T) {
		_, err := c.Exec(testCtx(t), "INSERT INTO pg_dist_node (groupid, nodename, nodeport, noderole) VALUES (99, 'w2', 5432, 'secondary')")
		wantSQLError(t, err, "23505", "pg_dist_node_nodename_nodeport_key")
	})
}

func TestStandinAddSecondaryNode(t *testing.T) {
	t.Parallel()
	dsn := startStandinCoordinator(t)
	c := connect(t, dsn)
	ctx := testCtx(t)

	mustAddNode(t, c, "w1", 5432, -1, "primary")
	p2 := mustAddNode(t, c, "w2", 5432, -1, "primary")
	primary := nodeByID(t, c, p2)

	var id int
	if err := c.QueryRow(ctx, "SELECT citus_add_secondary_node('w2r', 5433, 'w2', 5432)").Scan(&id); err != nil {
		t.Fatalf("citus_add_secondary_node: %v", err)
	}
	r := nodeByID(t, c, id)
	if r.Group != primary.Group || r.Role != "secondary" || r.Name != "w2r" || r.Port != 5433 || r.Cluster != "default" || !r.Active {
		t.Fatalf("secondary %v, primary %v", r, primary)
	}

	var again int
	if err := c.QueryRow(ctx, "SELECT citus_add_secondary_node('w2r', 5433, 'w1', 5432)").Scan(&again); err != nil {
		t.Fatalf("citus_add_secondary_node again: %v", err)
	}
	if again != id || nodeByID(t, c, id).Group != primary.Group {
		t.Fatalf("re-adding the secondary: id %d (want %d), row %v", again, id, nodeByID(t, c, id))
	}

	_, err := c.Exec(ctx, "SELECT citus_add_secondary_node('w3r', 5432, 'nope', 1)")
	wantSQLError(t, err, "", `node at "nope:1" does not exist`)
	if n := nodeCount(t, c, "true"); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
}

func TestStandinUpdateNode(t *testing.T) {
	t.Parallel()
	dsn := startStandinCoordinator(t)
	c := connect(t, dsn)

	t.Run("moves the address", func(t *testing.T) {
		id := mustAddNode(t, c, "m1", 5432, -1, "primary")
		before := nodeByID(t, c, id)
		if err := updateNode(testCtx(t), c, id, "m1-new", 6432); err != nil {
			t.Fatalf("citus_update_node: %v", err)
		}
		after := nodeByID(t, c, id)
		before.Name, before.Port = "m1-new", 6432
		if after != before {
			t.Fatalf("after the move: %v, want %v", after, before)
		}
		if n := nodeCount(t, c, "nodename = 'm1'"); n != 0 {
			t.Fatalf("%d rows still at m1", n)
		}
	})

	t.Run("refuses an address another node has", func(t *testing.T) {
		a := mustAddNode(t, c, "r1", 5432, -1, "primary")
		mustAddNode(t, c, "r2", 5432, -1, "primary")
		err := updateNode(testCtx(t), c, a, "r2", 5432)
		wantSQLError(t, err, "55000", "there is already another node with the specified hostname and port")
		if r := nodeByID(t, c, a); r.Name != "r1" || r.Port != 5432 {
			t.Fatalf("row changed by a refused update: %v", r)
		}
	})

	t.Run("unknown node id", func(t *testing.T) {
		err := updateNode(testCtx(t), c, 9999, "nowhere", 1)
		wantSQLError(t, err, "P0002", "node 9999 not found")
	})

	// Locks taken inside a transaction: none for a no-op or for a
	// secondary, the group's lock for a primary.
	lockCases := []struct {
		name      string
		role      string
		newName   string // "" keeps the address
		wantLocks int
	}{
		{"same address is a no-op without a lock", "primary", "", 0},
		{"moving a secondary takes no lock", "secondary", "l-moved", 0},
		{"moving a primary takes the group's lock", "primary", "l-moved", 1},
	}
	for k, tc := range lockCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			host := fmt.Sprintf("l%d", k)
			p := mustAddNode(t, c, host, 5432, -1, "primary")
			id := p
			if tc.role == "secondary" {
				if err := c.QueryRow(ctx, "SELECT citus_add_secondary_node($1, 5433, $2, 5432)", host+"-r", host).Scan(&id); err != nil {
					t.Fatalf("citus_add_secondary_node: %v", err)
				}
			}
			before := nodeByID(t, c, id)
			newName, newPort := before.Name, before.Port
			if tc.newName != "" {
				newName = fmt.Sprintf("%s-%d", tc.newName, k)
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if err := updateNode(ctx, tx, id, newName, newPort); err != nil {
				t.Fatalf("citus_update_node: %v", err)
			}
			if n := myAdvisoryLocks(t, tx); n != tc.wantLocks {
				t.Fatalf("advisory locks held after citus_update_node: %d, want %d", n, tc.wantLocks)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
			after := nodeByID(t, c, id)
			before.Name = newName
			if after != before {
				t.Fatalf("after: %v, want %v", after, before)
			}
		})
	}

	t.Run("swap primary and secondary in one transaction", func(t *testing.T) {
		ctx := testCtx(t)
		a := mustAddNode(t, c, "w1", 5432, -1, "primary")
		var b int
		if err := c.QueryRow(ctx, "SELECT citus_add_secondary_node('w2', 5432, 'w1', 5432)").Scan(&b); err != nil {
			t.Fatalf("citus_add_secondary_node: %v", err)
		}
		group := nodeByID(t, c, a).Group

		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		for _, u := range []struct {
			id   int
			name string
		}{{a, "w1-demoted"}, {b, "w1"}, {a, "w2"}} {
			if err := updateNode(ctx, tx, u.id, u.name, 5432); err != nil {
				t.Fatalf("citus_update_node(%d, %s): %v", u.id, u.name, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}

		ra, rb := nodeByID(t, c, a), nodeByID(t, c, b)
		if ra.Role != "primary" || ra.Name != "w2" || ra.Port != 5432 || ra.Group != group {
			t.Fatalf("node A after the swap: %v, want the primary of group %d at w2:5432", ra, group)
		}
		if rb.Role != "secondary" || rb.Name != "w1" || rb.Port != 5432 || rb.Group != group {
			t.Fatalf("node B after the swap: %v, want the secondary of group %d at w1:5432", rb, group)
		}
		if n := nodeCount(t, c, "groupid = $1", group); n != 2 {
			t.Fatalf("%d rows in group %d, want 2", n, group)
		}
	})
}

// TestStandinUpdateNodeBlocksRouting: a distributed statement of a group
// (citus_standin_route) waits for an uncommitted citus_update_node of the
// group's primary, and then goes to the address the transaction left.
func TestStandinUpdateNodeBlocksRouting(t *testing.T) {
	t.Parallel()
	dsn := startStandinCoordinator(t)
	admin := connect(t, dsn)

	cases := []struct {
		name   string
		commit bool
	}{
		{"commit: the new address", true},
		{"rollback: the old address", false},
	}
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			oldHost, newHost := fmt.Sprintf("b%d-old", k), fmt.Sprintf("b%d-new", k)
			id := mustAddNode(t, admin, oldHost, 5432, -1, "primary")
			group := nodeByID(t, admin, id).Group
			// A primary of another group, to show its routing is not held up.
			otherID := mustAddNode(t, admin, fmt.Sprintf("b%d-other", k), 5432, -1, "primary")
			otherGroup := nodeByID(t, admin, otherID).Group

			updater := connect(t, dsn)
			router := connect(t, dsn)
			route := func(ctx context.Context, c *pgx.Conn, g int) (string, error) {
				var name string
				var port int
				err := c.QueryRow(ctx, "SELECT nodename, nodeport FROM citus_standin_route($1)", g).Scan(&name, &port)
				return fmt.Sprintf("%s:%d", name, port), err
			}

			// Nothing in flight: routing goes through at once.
			if got, err := route(ctx, router, group); err != nil || got != oldHost+":5432" {
				t.Fatalf("route before the update = %q, %v", got, err)
			}

			tx, err := updater.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if err := updateNode(ctx, tx, id, newHost, 5432); err != nil {
				t.Fatalf("citus_update_node: %v", err)
			}
			var routerPID int
			if err := router.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&routerPID); err != nil {
				t.Fatal(err)
			}

			type result struct {
				addr string
				err  error
				at   time.Time
			}
			done := make(chan result, 1)
			rctx, rcancel := context.WithCancel(ctx)
			go func() {
				addr, err := route(rctx, router, group)
				done <- result{addr, err, time.Now()}
			}()
			var res *result
			defer func() { // never leave the goroutine on the connection
				if res == nil {
					rcancel()
					<-done
				}
			}()

			// The router waits on the group's lock...
			testutil.Eventually(t, 10*time.Second, "router waiting on a lock", func() string {
				var waiting string
				err := admin.QueryRow(ctx, "SELECT coalesce(wait_event_type || '/' || wait_event, '') FROM pg_stat_activity WHERE pid = $1", routerPID).Scan(&waiting)
				if err != nil {
					return err.Error()
				}
				if waiting != "Lock/advisory" {
					return fmt.Sprintf("wait event %q", waiting)
				}
				return ""
			})
			// ... and stays blocked.
			select {
			case r := <-done:
				res = &r
				t.Fatalf("route returned %q, %v while the update was uncommitted", r.addr, r.err)
			case <-time.After(300 * time.Millisecond):
			}
			// Routing of another group is not held up.
			if got, err := route(ctx, admin, otherGroup); err != nil || got != fmt.Sprintf("b%d-other:5432", k) {
				t.Fatalf("route of the other group = %q, %v", got, err)
			}

			finishing := time.Now()
			if tc.commit {
				err = tx.Commit(ctx)
			} else {
				err = tx.Rollback(ctx)
			}
			if err != nil {
				t.Fatalf("ending the update's transaction: %v", err)
			}
			var r result
			select {
			case r = <-done:
				res = &r
			case <-time.After(10 * time.Second):
				t.Fatal("route still blocked 10s after the update's transaction ended")
			}
			want := oldHost + ":5432"
			if tc.commit {
				want = newHost + ":5432"
			}
			if r.err != nil || r.addr != want {
				t.Fatalf("route after the update = %q, %v; want %q", r.addr, r.err, want)
			}
			if r.at.Before(finishing) {
				t.Fatalf("route returned at %s, before the update's transaction was ended at %s", r.at, finishing)
			}
		})
	}
}

func TestStandinRemoveNode(t *testing.T) {
	t.Parallel()
	dsn := startStandinCoordinator(t)
	c := connect(t, dsn)
	ctx := testCtx(t)

	p := mustAddNode(t, c, "w1", 5432, -1, "primary")
	var s int
	if err := c.QueryRow(ctx, "SELECT citus_add_secondary_node('w1r', 5432, 'w1', 5432)").Scan(&s); err != nil {
		t.Fatalf("citus_add_secondary_node: %v", err)
	}
	keep := mustAddNode(t, c, "w2", 5432, -1, "primary")

	steps := []struct {
		name, node string
		port       int
		wantError  string // "" for success
		wantLeft   []int
	}{
		{"remove the secondary", "w1r", 5432, "", []int{p, keep}},
		{"remove a primary", "w1", 5432, "", []int{keep}},
		{"removing again fails", "w1", 5432, `node at "w1:5432" does not exist`, []int{keep}},
		{"wrong port fails", "w2", 6432, `node at "w2:6432" does not exist`, []int{keep}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			_, err := c.Exec(testCtx(t), "SELECT citus_remove_node($1, $2)", st.node, st.port)
			if st.wantError != "" {
				wantSQLError(t, err, "", st.wantError)
			} else if err != nil {
				t.Fatalf("citus_remove_node: %v", err)
			}
			rows, err := c.Query(testCtx(t), "SELECT nodeid FROM pg_dist_node ORDER BY nodeid")
			if err != nil {
				t.Fatal(err)
			}
			left, err := pgx.CollectRows(rows, pgx.RowTo[int])
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(left) != fmt.Sprint(st.wantLeft) {
				t.Fatalf("node ids left: %v, want %v", left, st.wantLeft)
			}
		})
	}
}

func TestStandinSetCoordinatorHost(t *testing.T) {
	t.Parallel()
	dsn := startStandinCoordinator(t)
	c := connect(t, dsn)
	ctx := testCtx(t)
	mustAddNode(t, c, "w1", 5432, -1, "primary")

	var serverPort int
	if err := c.QueryRow(ctx, "SELECT current_setting('port')::integer").Scan(&serverPort); err != nil {
		t.Fatal(err)
	}

	coordinator := func(t *testing.T) nodeRow {
		t.Helper()
		if n := nodeCount(t, c, "groupid = 0"); n != 1 {
			t.Fatalf("%d rows in group 0, want 1", n)
		}
		r, err := scanNode(c.QueryRow(testCtx(t), "SELECT "+nodeCols+" FROM pg_dist_node WHERE groupid = 0"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	var firstID int
	steps := []struct {
		name     string
		sql      string
		args     []any
		wantName string
		wantPort int
	}{
		{"inserts group 0", "SELECT citus_set_coordinator_host($1, $2)", []any{"c1", 5432}, "c1", 5432},
		{"updates group 0", "SELECT citus_set_coordinator_host($1, $2)", []any{"c2", 6432}, "c2", 6432},
		{"the port defaults to the server's", "SELECT citus_set_coordinator_host($1)", []any{"c3"}, "c3", serverPort},
	}
	for k, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if _, err := c.Exec(testCtx(t), st.sql, st.args...); err != nil {
				t.Fatalf("citus_set_coordinator_host: %v", err)
			}
			r := coordinator(t)
			if k == 0 {
				firstID = r.ID
			}
			if r.ID != firstID || r.Name != st.wantName || r.Port != st.wantPort || r.Role != "primary" ||
				r.Cluster != "default" || r.Shards || !r.Active || !r.HasMetadata {
				t.Fatalf("coordinator row %v, want id %d at %s:%d, primary, no shards, active, with metadata",
					r, firstID, st.wantName, st.wantPort)
			}
		})
	}
	if n := nodeCount(t, c, "true"); n != 2 {
		t.Fatalf("%d rows, want 2 (w1 and the coordinator)", n)
	}
}
