package dcs

import (
	"context"
	"testing"
	"time"
)

// With Citus every group's keys live under "<namespace><scope>/<group>/",
// each group elects its own leader, and SnapshotGroups reads them all.
func TestCitusGroupsLayout(t *testing.T) {
	group := func(g int) func(*Options) {
		return func(o *Options) { o.Citus, o.Group = true, g }
	}
	coord := newEtcd(t, "coord1", group(0))
	w1 := newEtcd(t, "work1-1", group(1))
	w2 := newEtcd(t, "work2-1", group(2))
	raw := rawClient(t, sharedEtcd.ClientURL())
	ctx := tctx(t)
	if want := "/service/" + scopeFor(t) + "/1/"; w1.Prefix() != want {
		t.Fatalf("group 1 prefix %q, want %q", w1.Prefix(), want)
	}
	if want := "/service/" + scopeFor(t) + "/"; w1.ScopePrefix() != want {
		t.Fatalf("scope prefix %q, want %q", w1.ScopePrefix(), want)
	}

	wctx, cancel := withCancel(t)
	defer cancel()
	events := coord.WatchScope(wctx)
	<-events // the first signal, sent when the watch is set up

	for _, e := range []*Etcd{coord, w1, w2} {
		mustLease(t, e)
		if ok, err := e.AcquireLeader(ctx); err != nil || !ok {
			t.Fatalf("AcquireLeader: %v %v", ok, err)
		}
		m := samplePrimary
		m.Name = ""
		if err := e.TouchMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-events:
	case <-time.After(3 * time.Second):
		t.Fatal("WatchScope did not signal a worker group's change")
	}
	if v, _, ok := getValue(t, raw, w2.Prefix()+"leader"); !ok || v != "work2-1" {
		t.Fatalf("group 2 leader key %q %v", v, ok)
	}
	// A key outside any numeric group folder is ignored.
	if _, err := raw.Put(ctx, coord.ScopePrefix()+"x1/leader", "stray"); err != nil {
		t.Fatal(err)
	}

	groups, rev, err := w1.SnapshotGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rev == 0 || len(groups) != 3 {
		t.Fatalf("groups %v at revision %d", groups, rev)
	}
	for g, name := range map[int]string{0: "coord1", 1: "work1-1", 2: "work2-1"} {
		c := groups[g]
		if c == nil || c.Leader == nil || c.Leader.Name != name || len(c.Members) != 1 || c.Members[0].Name != name {
			t.Errorf("group %d read as %+v", g, c)
		}
	}
	// Each member's own Snapshot sees only its group.
	own, err := w1.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if own.Leader == nil || own.Leader.Name != "work1-1" || len(own.Members) != 1 {
		t.Fatalf("group 1 snapshot %+v", own)
	}
}

func withCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
