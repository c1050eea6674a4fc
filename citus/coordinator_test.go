package citus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/internal/testutil"
)

// fakeGroups is the DCS view the coordinator reads: set by the test.
type fakeGroups struct {
	mu     sync.Mutex
	groups map[int]*dcs.Cluster
	watch  chan struct{}
}

func (f *fakeGroups) SnapshotGroups(context.Context) (map[int]*dcs.Cluster, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups, 1, nil
}

func (f *fakeGroups) WatchScope(context.Context) <-chan struct{} { return f.watch }

func (f *fakeGroups) set(g int, c *dcs.Cluster) {
	f.mu.Lock()
	f.groups[g] = c
	f.mu.Unlock()
	select {
	case f.watch <- struct{}{}:
	default:
	}
}

func member(name, host, role, repl string) dcs.Member {
	return dcs.Member{Name: name, ConnURL: "postgres://" + host + ":5432/postgres", APIURL: "http://" + host + ":8008/patroni",
		State: "running", Role: role, ReplicationState: repl}
}

func group(leader string, members ...dcs.Member) *dcs.Cluster {
	return &dcs.Cluster{Leader: &dcs.Leader{Name: leader}, Members: members}
}

// rowsOf renders pg_dist_node as "group role host" lines, sorted.
func rowsOf(t *testing.T, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rs, err := readRows(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, strings.Join([]string{strconv.Itoa(r.Group), r.Role, r.Addr.Host}, " "))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// TestCoordinator drives the coordinator against the stand-in catalogue
// in a real PostgreSQL: reconciliation from the DCS, a worker switchover
// through its events, a rollback when after_promote never comes, and the
// refusals.
func TestCoordinator(t *testing.T) {
	dsn := startStandinCoordinator(t)
	fg := &fakeGroups{groups: map[int]*dcs.Cluster{}, watch: make(chan struct{}, 1)}
	fg.set(0, group("c1", member("c1", "c1", "primary", "")))
	fg.set(1, group("w1", member("w1", "w1", "primary", ""), member("w2", "w2", "replica", "streaming")))
	co := NewCoordinator(CoordinatorOptions{
		Groups:              fg,
		RegisterSecondaries: true,
		Log:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
		Resync:              200 * time.Millisecond,
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.Connect(ctx, dsn)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { co.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	evg := func(g int, typ, leader string, timeout float64) error {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return co.HandleEvent(c, Event{Type: typ, Group: g, Leader: leader, Timeout: timeout, Cooldown: 1})
	}
	ev := func(typ, leader string, timeout float64) error { return evg(1, typ, leader, timeout) }
	if err := ev(BeforeDemote, "w1", 5); !errors.Is(err, ErrNotLeading) {
		t.Fatalf("an event before leading: %v, want ErrNotLeading", err)
	}
	co.SetLeading(ctx, true)
	want := "0 primary c1, 1 primary w1, 1 secondary w2"
	testutil.Eventually(t, 10*time.Second, "reconciled", func() string {
		if got := rowsOf(t, dsn); got != want {
			return got
		}
		return ""
	})

	if err := ev(BeforeDemote, "w2", 5); err == nil || !strings.Contains(err.Error(), "does not hold the leader key") {
		t.Fatalf("before_demote from a member without the key: %v", err)
	}
	if err := ev("sideways", "w1", 5); err == nil {
		t.Fatal("an unknown event type was accepted")
	}

	// A switchover whose after_promote never comes is rolled back: the
	// held statement goes on to the old primary.
	start := time.Now()
	if err := ev(BeforeDemote, "w1", 0.5); err != nil {
		t.Fatal(err)
	}
	if r := <-route(dsn); r != "w1" || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("after the rollback a statement was routed to %q %s after before_demote, want w1 after 0.5s", r, time.Since(start))
	}

	// A full switchover: w1 parks, w2 takes the key and promotes.
	if err := ev(BeforeDemote, "w1", 10); err != nil {
		t.Fatal(err)
	}
	// Meanwhile the group's statements wait: the route blocks.
	routed := route(dsn)
	fg.set(1, group("w2", member("w1", "w1", "replica", ""), member("w2", "w2", "replica", "streaming")))
	if err := ev(BeforePromote, "w2", 10); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-routed:
		t.Fatalf("a statement of the group was routed (%s) before after_promote", r)
	case <-time.After(300 * time.Millisecond):
	}
	fg.set(1, group("w2", member("w1", "w1", "replica", ""), member("w2", "w2", "primary", "")))
	if err := ev(AfterPromote, "w2", 10); err != nil {
		t.Fatal(err)
	}
	if r := <-routed; r != "w2" {
		t.Fatalf("the held statement was routed to %s, want w2", r)
	}
	// w1 is not streaming yet: its row (it took w2's secondary row) goes;
	// once it streams it is registered again.
	testutil.Eventually(t, 10*time.Second, "old primary's row removed", func() string {
		if got := rowsOf(t, dsn); got != "0 primary c1, 1 primary w2" {
			return got
		}
		return ""
	})
	fg.set(1, group("w2", member("w1", "w1", "replica", "streaming"), member("w2", "w2", "primary", "")))
	testutil.Eventually(t, 10*time.Second, "old primary registered as a secondary", func() string {
		if got := rowsOf(t, dsn); got != "0 primary c1, 1 primary w2, 1 secondary w1" {
			return got
		}
		return ""
	})

	// Two groups changing primary at once: the second waits for the first.
	fg.set(2, group("x1", member("x1", "x1", "primary", "")))
	testutil.Eventually(t, 10*time.Second, "group 2 registered", func() string {
		if got := rowsOf(t, dsn); got != "0 primary c1, 1 primary w2, 1 secondary w1, 2 primary x1" {
			return got
		}
		return ""
	})
	if err := ev(BeforeDemote, "w2", 10); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- evg(2, BeforeDemote, "x1", 10) }()
	select {
	case err := <-second:
		t.Fatalf("group 2's before_demote answered (%v) while group 1 was changing primary", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := ev(AfterPromote, "w2", 10); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("group 2's before_demote after group 1's turn: %v", err)
	}
	if err := evg(2, AfterPromote, "x1", 10); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, dsn); got != "0 primary c1, 1 primary w2, 1 secondary w1, 2 primary x1" {
		t.Fatalf("after both groups' turns: %s", got)
	}

	// Losing the lead rolls back an open transaction.
	if err := ev(BeforeDemote, "w2", 30); err != nil {
		t.Fatal(err)
	}
	routed = route(dsn)
	select {
	case r := <-routed:
		t.Fatalf("routed (%s) while parked", r)
	case <-time.After(300 * time.Millisecond):
	}
	co.SetLeading(ctx, false)
	if r := <-routed; r != "w2" {
		t.Fatalf("after losing the lead a statement was routed to %q, want w2", r)
	}
}

// route runs a stand-in distributed statement of group 1 and sends where
// it was routed (or its error) once it is no longer held.
func route(dsn string) <-chan string {
	routed := make(chan string, 1)
	go func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(c, dsn)
		if err != nil {
			routed <- err.Error()
			return
		}
		defer conn.Close(context.Background())
		var host string
		var port int
		if err := conn.QueryRow(c, "SELECT nodename, nodeport FROM citus_standin_route(1)").Scan(&host, &port); err != nil {
			routed <- err.Error()
			return
		}
		routed <- host
	}()
	return routed
}
