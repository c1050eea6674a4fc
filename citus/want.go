package citus

import (
	"sort"

	"github.com/pgwarden/pgwarden/dcs"
)

// Want is what pg_dist_node should say about one group, read from the DCS.
type Want struct {
	Group       int
	Primary     Addr
	Secondaries []Addr // sorted; nil when secondaries are not registered
}

// WantFrom reads a group's wanted rows from its DCS keys: the primary is
// the leader, once its member key says it runs as a primary; secondaries
// are the other members whose key says they stream, unless tagged
// noloadbalance (a secondary row is used for reads, and Citus never falls
// back to the primary). ok is false while the group has no running
// primary: its rows are then left as they are.
func WantFrom(group int, c *dcs.Cluster, registerSecondaries bool) (w Want, ok bool) {
	w.Group = group
	if c == nil {
		return w, false
	}
	leader := c.LeaderMember()
	if leader == nil || !leader.IsPrimary() || leader.State != "running" {
		return w, false
	}
	a, ok := addrOf(leader)
	if !ok {
		return w, false
	}
	w.Primary = a
	if !registerSecondaries {
		return w, true
	}
	for i := range c.Members {
		m := &c.Members[i]
		if m.Name == leader.Name || m.IsPrimary() || m.State != "running" || m.ReplicationState != "streaming" {
			continue
		}
		if v, _ := m.Tags["noloadbalance"].(bool); v {
			continue
		}
		if a, ok := addrOf(m); ok && a != w.Primary {
			w.Secondaries = append(w.Secondaries, a)
		}
	}
	sort.Slice(w.Secondaries, func(i, j int) bool { return w.Secondaries[i].String() < w.Secondaries[j].String() })
	return w, true
}

func addrOf(m *dcs.Member) (Addr, bool) {
	host, port, err := dcs.ParseConnURL(m.ConnURL)
	if err != nil || host == "" {
		return Addr{}, false
	}
	return Addr{host, port}, true
}
