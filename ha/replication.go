package ha

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// This file holds the leader's upkeep of replication: synchronous
// standbys (the sync key and synchronous_standby_names) and replication
// slots. Both are pure: they read the observation and return actions.

// syncNames is the synchronous set this leader has recorded in the sync
// key (nil when the key names another leader or none).
func syncNames(o Observation) []string {
	if s := o.Cluster.SyncState; s != nil && s.Leader == o.Name {
		return s.Standbys
	}
	return nil
}

// mayPromote applies synchronous mode to a member that wants the leader
// key: only a standby named in the sync key may take it, unless the key
// names none (asynchronous until the leader found one).
func mayPromote(o Observation, name string) (bool, string) {
	if !o.Settings.SynchronousMode {
		return true, ""
	}
	s := o.Cluster.SyncState
	if s == nil || len(s.Standbys) == 0 {
		return true, ""
	}
	if s.Names(name) {
		return true, ""
	}
	return false, fmt.Sprintf("synchronous mode: %s is not a synchronous standby (the sync key names %s)", name, strings.Join(s.Standbys, ","))
}

// wantedSync lists the standbys the leader should make synchronous, those
// already synchronous first so that the set does not churn.
func wantedSync(o Observation) []string {
	c := o.Cluster
	var current, others []string
	cur := syncNames(o)
	for _, r := range o.PG.Replication {
		m := c.Member(r.ApplicationName)
		if r.State != "streaming" || m == nil || m.Name == o.Name {
			continue
		}
		if ns, _ := m.Tags["nosync"].(bool); ns {
			continue
		}
		if slices.Contains(cur, m.Name) {
			current = append(current, m.Name)
		} else {
			others = append(others, m.Name)
		}
	}
	sort.Strings(current)
	sort.Strings(others)
	all := append(current, others...)
	return all[:min(len(all), max(o.Settings.SynchronousNodeCount, 1))]
}

// decideSync returns the next step that brings synchronous replication to
// what the settings ask. The order keeps the sync key truthful: a standby
// leaves the key before it leaves synchronous_standby_names, and enters
// the key only after PostgreSQL reports it synchronous.
func decideSync(o Observation) []Action {
	c := o.Cluster
	key := c.SyncState
	cur := syncNames(o)
	setKey := func(names []string) []Action {
		return []Action{{Kind: SetSyncKey, Sync: &dcs.SyncState{Leader: o.Name, Standbys: names}, Revision: c.SyncRevision}}
	}
	setNames := func(v string) []Action { return []Action{{Kind: SetSyncNames, Value: v}} }
	if !o.Settings.SynchronousMode {
		if key != nil && (key.Leader != o.Name || len(key.Standbys) > 0) {
			return setKey(nil)
		}
		if !o.Memory.SSNKnown || o.Memory.SSN != "" {
			return setNames("")
		}
		return nil
	}
	if key == nil || key.Leader != o.Name {
		return setKey(nil)
	}
	picked := wantedSync(o)
	var keep []string
	for _, n := range cur {
		if slices.Contains(picked, n) {
			keep = append(keep, n)
		}
	}
	if len(keep) < len(cur) {
		return setKey(keep)
	}
	want := postgres.SyncStandbyNames(o.Settings.SynchronousNodeCount, picked)
	if len(picked) == 0 && o.Settings.SynchronousModeStrict {
		want = postgres.SyncStandbyNames(1, []string{postgres.SyncStrictPlaceholder})
	}
	if !o.Memory.SSNKnown || o.Memory.SSN != want {
		return setNames(want)
	}
	var confirmed []string
	for _, r := range o.PG.Replication {
		if slices.Contains(picked, r.ApplicationName) && (r.SyncState == "sync" || r.SyncState == "quorum") {
			confirmed = append(confirmed, r.ApplicationName)
		}
	}
	sort.Strings(confirmed)
	if !slices.Equal(confirmed, cur) {
		return setKey(confirmed)
	}
	return nil
}

// wantedSlots are the physical slots the leader keeps: one per other
// member (and per member gone for less than member_slots_ttl), and the
// permanent ones of the configuration.
func wantedSlots(o Observation) map[string]bool {
	want := map[string]bool{}
	if o.Settings.UseSlots {
		for _, m := range o.Cluster.Members {
			if m.Name != o.Name {
				want[postgres.SlotName(m.Name)] = true
			}
		}
		for _, n := range o.RetainSlots {
			if n != o.Name {
				want[postgres.SlotName(n)] = true
			}
		}
	}
	for _, n := range o.Settings.PermanentSlots {
		want[n] = true
	}
	return want
}

// decideSlots creates the missing slots and drops the physical ones no
// member needs any more (none in maintenance mode). Logical slots are
// left alone.
func decideSlots(o Observation) []Action {
	if !o.SlotsKnown {
		return nil
	}
	want := wantedSlots(o)
	have := map[string]bool{}
	var drop []string
	for _, s := range o.Slots {
		if s.Type != "physical" {
			continue
		}
		have[s.Name] = true
		if !want[s.Name] && !o.Paused {
			drop = append(drop, s.Name)
		}
	}
	var create []string
	for n := range want {
		if !have[n] {
			create = append(create, n)
		}
	}
	sort.Strings(create)
	sort.Strings(drop)
	var acts []Action
	if len(create) > 0 {
		acts = append(acts, Action{Kind: CreateSlots, Names: create})
	}
	if len(drop) > 0 {
		acts = append(acts, Action{Kind: DropSlots, Names: drop})
	}
	return acts
}

// leaderUpkeep: what a healthy leader does every cycle.
func leaderUpkeep(o Observation) Plan {
	acts := decideSlots(o)
	acts = append(acts, decideSync(o)...)
	if len(acts) == 0 {
		return plan("this member is the leader and holds the leader key")
	}
	return plan("leader upkeep: replication slots and synchronous standbys", acts...)
}
