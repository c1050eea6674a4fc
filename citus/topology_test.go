package citus

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/dcs"
)

func a(h string) Addr { return Addr{h, 5432} }

func steps(ss []Step) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.String())
	}
	return strings.Join(out, "; ")
}

func TestPrimarySteps(t *testing.T) {
	coord := Row{ID: 1, Group: 0, Addr: a("c1"), Role: "primary"}
	for _, tc := range []struct {
		name string
		rows []Row
		want Addr
		out  string
		err  string
	}{
		{"new worker group", []Row{coord}, a("w1"), "citus_add_node(w1:5432, group 1)", ""},
		{"already right", []Row{coord, {2, 1, a("w1"), "primary"}}, a("w1"), "", ""},
		{"failover to an unregistered standby", []Row{coord, {2, 1, a("w1"), "primary"}}, a("w2"),
			"citus_update_node(2 -> w2:5432)", ""},
		{"failover to a registered secondary: the old primary takes its row",
			[]Row{coord, {2, 1, a("w1"), "primary"}, {3, 1, a("w2"), "secondary"}}, a("w2"),
			"citus_update_node(2 -> w1-demoted:5432); citus_update_node(3 -> w1:5432); citus_update_node(2 -> w2:5432)", ""},
		{"after a park (switchover)",
			[]Row{coord, {2, 1, a("w1-demoted"), "primary"}, {3, 1, a("w2"), "secondary"}}, a("w2"),
			"citus_update_node(3 -> w1:5432); citus_update_node(2 -> w2:5432)", ""},
		{"parked and promoted an unregistered standby",
			[]Row{coord, {2, 1, a("w1-demoted"), "primary"}}, a("w3"), "citus_update_node(2 -> w3:5432)", ""},
		{"parked, then the old primary came back",
			[]Row{coord, {2, 1, a("w1-demoted"), "primary"}}, a("w1"), "citus_update_node(2 -> w1:5432)", ""},
		{"old address already held by another row",
			[]Row{coord, {2, 1, a("w1-demoted"), "primary"}, {3, 1, a("w2"), "secondary"}, {4, 1, a("w1"), "secondary"}}, a("w2"),
			"citus_update_node(3 -> w2-demoted:5432); citus_update_node(2 -> w2:5432)", ""},
		{"secondary row without a primary row",
			[]Row{coord, {3, 1, a("w2"), "secondary"}}, a("w2"),
			"citus_remove_node(w2:5432); citus_add_node(w2:5432, group 1)", ""},
		{"address of another group", []Row{coord, {2, 2, a("w9"), "primary"}}, a("w9"), "", "registered in pg_dist_node for group 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PrimarySteps(tc.rows, 1, tc.want)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := steps(got); s != tc.out {
				t.Errorf("steps\n got %s\nwant %s", s, tc.out)
			}
			// Applying the steps keeps (nodename, nodeport) unique at every
			// step and ends with want as the group's primary.
			rows := append([]Row(nil), tc.rows...)
			for _, s := range got {
				rows = apply(t, rows, s)
			}
			if p := primaryRow(rows, 1); p == nil || p.Addr != tc.want {
				t.Errorf("after the steps the primary row is %+v", p)
			}
		})
	}
}

// apply plays a step on rows as Citus would, failing the test where Citus
// would refuse it.
func apply(t *testing.T, rows []Row, s Step) []Row {
	t.Helper()
	taken := func(x Addr, except int) {
		for _, r := range rows {
			if r.Addr == x && r.ID != except {
				t.Fatalf("%s: %s already used by node %d", s, x, r.ID)
			}
		}
	}
	switch s.Kind {
	case Update:
		taken(s.Addr, s.NodeID)
		for i := range rows {
			if rows[i].ID == s.NodeID {
				rows[i].Addr = s.Addr
				return rows
			}
		}
		t.Fatalf("%s: no node %d", s, s.NodeID)
	case AddPrimary:
		taken(s.Addr, 0)
		if primaryRow(rows, s.Group) != nil {
			t.Fatalf("%s: group %d already has a primary", s, s.Group)
		}
		return append(rows, Row{ID: 100 + len(rows), Group: s.Group, Addr: s.Addr, Role: "primary"})
	case AddSecondary:
		taken(s.Addr, 0)
		p := rowAt(rows, s.Primary)
		if p == nil {
			t.Fatalf("%s: no primary", s)
		}
		return append(rows, Row{ID: 100 + len(rows), Group: p.Group, Addr: s.Addr, Role: "secondary"})
	case Remove:
		for i := range rows {
			if rows[i].Addr == s.Addr {
				return append(rows[:i:i], rows[i+1:]...)
			}
		}
		t.Fatalf("%s: no such node", s)
	}
	return rows
}

func TestParkSteps(t *testing.T) {
	rows := []Row{{2, 1, a("w1"), "primary"}, {3, 1, a("w2"), "secondary"}}
	if s := steps(ParkSteps(rows, 1)); s != "citus_update_node(2 -> w1-demoted:5432)" {
		t.Errorf("park: %s", s)
	}
	rows[0].Addr = a("w1-demoted")
	if s := ParkSteps(rows, 1); s != nil {
		t.Errorf("parking a parked row: %v", s)
	}
	if s := ParkSteps(rows, 7); s != nil {
		t.Errorf("parking a group without rows: %v", s)
	}
}

func TestSecondarySteps(t *testing.T) {
	p := Row{ID: 2, Group: 1, Addr: a("w1"), Role: "primary"}
	for _, tc := range []struct {
		name string
		rows []Row
		want []Addr
		out  string
	}{
		{"register a streaming standby", []Row{p}, []Addr{a("w2")}, "citus_add_secondary_node(w2:5432, primary w1:5432)"},
		{"nothing to do", []Row{p, {3, 1, a("w2"), "secondary"}}, []Addr{a("w2")}, ""},
		{"a standby stopped streaming", []Row{p, {3, 1, a("w2"), "secondary"}}, nil, "citus_remove_node(w2:5432)"},
		{"a gone standby's row is reused", []Row{p, {3, 1, a("w2"), "secondary"}}, []Addr{a("w3")}, "citus_update_node(3 -> w3:5432)"},
		{"the primary is never a secondary", []Row{p}, []Addr{a("w1")}, ""},
		{"other groups are left alone", []Row{p, {5, 2, a("x2"), "secondary"}}, nil, ""},
		{"an address held by another row waits", []Row{p, {5, 2, a("x2"), "primary"}}, []Addr{a("x2")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := steps(SecondarySteps(tc.rows, 1, p.Addr, tc.want)); s != tc.out {
				t.Errorf("steps\n got %s\nwant %s", s, tc.out)
			}
		})
	}
}

func TestWantFrom(t *testing.T) {
	c := &dcs.Cluster{
		Leader: &dcs.Leader{Name: "w1"},
		Members: []dcs.Member{
			{Name: "w1", ConnURL: "postgres://127.0.0.2:5433/postgres", State: "running", Role: "primary"},
			{Name: "w2", ConnURL: "postgres://127.0.0.3:5433/postgres", State: "running", Role: "replica", ReplicationState: "streaming"},
			{Name: "w3", ConnURL: "postgres://127.0.0.4:5433/postgres", State: "running", Role: "replica", ReplicationState: "in archive recovery"},
			{Name: "w4", ConnURL: "postgres://127.0.0.5:5433/postgres", State: "running", Role: "replica", ReplicationState: "streaming",
				Tags: map[string]any{"noloadbalance": true}},
		},
	}
	w, ok := WantFrom(1, c, true)
	want := Want{Group: 1, Primary: Addr{"127.0.0.2", 5433}, Secondaries: []Addr{{"127.0.0.3", 5433}}}
	if !ok || !reflect.DeepEqual(w, want) {
		t.Errorf("WantFrom = %+v %v, want %+v", w, ok, want)
	}
	if w, _ := WantFrom(1, c, false); w.Secondaries != nil {
		t.Errorf("secondaries registered while turned off: %v", w.Secondaries)
	}
	c.Members[0].Role = "replica" // the leader has not promoted yet
	if _, ok := WantFrom(1, c, true); ok {
		t.Errorf("a leader that is not yet primary was wanted in pg_dist_node")
	}
	c.Leader = nil
	if _, ok := WantFrom(1, c, true); ok {
		t.Errorf("a group without a leader was wanted in pg_dist_node")
	}
}
