package citus

import (
	"fmt"
	"sort"
	"strings"
)

// This file holds the pure part: from the rows of pg_dist_node and what
// the DCS says, which calls make the table true. No I/O here.

// Addr is a node's address as pg_dist_node holds it.
type Addr struct {
	Host string
	Port int
}

func (a Addr) String() string { return fmt.Sprintf("%s:%d", a.Host, a.Port) }

// demotedSuffix marks a primary row parked while its group changes
// primary, as Patroni does: the row keeps its id, and its address is freed
// for a secondary row to take.
const demotedSuffix = "-demoted"

// Demoted is the parked form of a primary's address.
func Demoted(a Addr) Addr {
	if IsDemoted(a) {
		return a
	}
	return Addr{a.Host + demotedSuffix, a.Port}
}

// IsDemoted reports whether a is a parked primary address.
func IsDemoted(a Addr) bool { return strings.HasSuffix(a.Host, demotedSuffix) }

// undemoted is the real address behind a parked one.
func undemoted(a Addr) Addr { return Addr{strings.TrimSuffix(a.Host, demotedSuffix), a.Port} }

// Row is one row of pg_dist_node.
type Row struct {
	ID    int
	Group int
	Addr  Addr
	Role  string // "primary", "secondary", "unavailable"
}

// StepKind is one metadata call.
type StepKind int

const (
	// AddPrimary is citus_add_node(host, port, group, 'primary').
	AddPrimary StepKind = iota + 1
	// AddSecondary is citus_add_secondary_node(host, port, primary host, primary port).
	AddSecondary
	// Update is citus_update_node(id, host, port, force, cooldown): it keeps
	// the row (and its id), and on a primary row holds the group's metadata
	// locks until the transaction ends.
	Update
	// Remove is citus_remove_node(host, port).
	Remove
)

// Step is one call of the plan.
type Step struct {
	Kind    StepKind
	NodeID  int  // Update
	Group   int  // AddPrimary
	Addr    Addr // the new address (Update), the node (Add*, Remove)
	Primary Addr // AddSecondary: the group's primary
}

func (s Step) String() string {
	switch s.Kind {
	case AddPrimary:
		return fmt.Sprintf("citus_add_node(%s, group %d)", s.Addr, s.Group)
	case AddSecondary:
		return fmt.Sprintf("citus_add_secondary_node(%s, primary %s)", s.Addr, s.Primary)
	case Update:
		return fmt.Sprintf("citus_update_node(%d -> %s)", s.NodeID, s.Addr)
	case Remove:
		return fmt.Sprintf("citus_remove_node(%s)", s.Addr)
	}
	return "unknown step"
}

// primaryRow returns the group's primary row, or nil.
func primaryRow(rows []Row, group int) *Row {
	for i := range rows {
		if rows[i].Group == group && rows[i].Role == "primary" {
			return &rows[i]
		}
	}
	return nil
}

func rowAt(rows []Row, a Addr) *Row {
	for i := range rows {
		if rows[i].Addr == a {
			return &rows[i]
		}
	}
	return nil
}

// ParkSteps parks the group's primary row (before its primary stops for a
// switchover): one Update to the demoted address, which takes the group's
// metadata locks so that distributed statements wait instead of failing.
func ParkSteps(rows []Row, group int) []Step {
	p := primaryRow(rows, group)
	if p == nil || IsDemoted(p.Addr) {
		return nil
	}
	return []Step{{Kind: Update, NodeID: p.ID, Addr: Demoted(p.Addr)}}
}

// PrimarySteps points the group's primary row at want. The steps are
// meant for one transaction: when want is registered as a secondary of
// the group (a promoted standby), the primary row is parked first, the
// secondary row takes the old primary's address (the old primary is
// tracked as a future secondary, and the pair (nodename, nodeport) stays
// unique at every step), then the primary row takes want. Node ids are
// kept; nothing is removed, as removing needs every node reachable.
func PrimarySteps(rows []Row, group int, want Addr) ([]Step, error) {
	p := primaryRow(rows, group)
	other := rowAt(rows, want)
	if other != nil && other.Group != group {
		return nil, fmt.Errorf("%s is registered in pg_dist_node for group %d, not %d", want, other.Group, group)
	}
	if p == nil {
		if other != nil {
			// A standby row without a primary row: it cannot change role.
			return []Step{{Kind: Remove, Addr: want}, {Kind: AddPrimary, Group: group, Addr: want}}, nil
		}
		return []Step{{Kind: AddPrimary, Group: group, Addr: want}}, nil
	}
	if p.Addr == want {
		return nil, nil
	}
	if other == nil {
		return []Step{{Kind: Update, NodeID: p.ID, Addr: want}}, nil
	}
	var steps []Step
	if !IsDemoted(p.Addr) {
		steps = append(steps, Step{Kind: Update, NodeID: p.ID, Addr: Demoted(p.Addr)})
	}
	old := undemoted(p.Addr)
	if r := rowAt(rows, old); (r == nil || r.ID == p.ID) && old != want {
		steps = append(steps, Step{Kind: Update, NodeID: other.ID, Addr: old})
	} else {
		steps = append(steps, Step{Kind: Update, NodeID: other.ID, Addr: Demoted(want)})
	}
	steps = append(steps, Step{Kind: Update, NodeID: p.ID, Addr: want})
	return steps, nil
}

// SecondarySteps makes the group's secondary rows exactly want (the
// streaming standbys): a stale row is moved to a missing address (its id
// reused), missing ones are added, and what is left stale is removed.
// Each step stands alone; one that fails is retried at the next round.
func SecondarySteps(rows []Row, group int, primary Addr, want []Addr) []Step {
	wantSet := map[Addr]bool{}
	for _, a := range want {
		wantSet[a] = true
	}
	have := map[Addr]bool{}
	var stale []Row
	for _, r := range rows {
		if r.Group != group || r.Role != "secondary" {
			continue
		}
		have[r.Addr] = true
		if !wantSet[r.Addr] {
			stale = append(stale, r)
		}
	}
	var missing []Addr
	for _, a := range want {
		if have[a] || a == primary {
			continue
		}
		if r := rowAt(rows, a); r != nil {
			continue // used by another row (a parked primary, another group): not now
		}
		missing = append(missing, a)
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].String() < missing[j].String() })
	sort.Slice(stale, func(i, j int) bool { return stale[i].ID < stale[j].ID })
	var steps []Step
	for len(stale) > 0 && len(missing) > 0 {
		steps = append(steps, Step{Kind: Update, NodeID: stale[0].ID, Addr: missing[0]})
		stale, missing = stale[1:], missing[1:]
	}
	for _, a := range missing {
		steps = append(steps, Step{Kind: AddSecondary, Addr: a, Primary: primary})
	}
	for _, r := range stale {
		steps = append(steps, Step{Kind: Remove, Addr: r.Addr})
	}
	return steps
}
