package ctl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/dcs"
)

// A Citus cluster is a fleet of clusters, one per Citus group (0 is the
// coordinator, 1, 2, ... the workers), whose keys are under
// <namespace><scope>/<group>/. The tool uses that layout when the file has
// a citus section or --group is given, as patronictl does:
//
//   - list and topology show every group (a first column Group, the title
//     "Citus cluster: <scope>"), or the one given with --group;
//   - restart, reload, reinit, flush restart, dsn and version act on the
//     members of every group unless --group is given;
//   - pause, resume, show-config, edit-config and history take the group
//     from --group, else from the file's citus.group;
//   - switchover and failover need a group (asked for when not given,
//     refused with --force), remove needs --group;
//   - other commands, and these without a group, act on the coordinator
//     group (0).

// errCitusGroupRequired is patronictl's message, word for word.
var errCitusGroupRequired = errors.New("For Citus clusters the --group must me specified")

// clusterView is one read of a cluster for a command: a plain cluster, one
// Citus group, or every group of a Citus cluster.
type clusterView struct {
	name  string
	citus bool
	// group is the Citus group asked for; nil: every group (or not Citus).
	group *int
	// c is the cluster a command acts on: the plain cluster, the group
	// asked for, or the coordinator group (0) when every group is read
	// (an empty, uninitialized cluster when group 0 has no keys).
	c *dcs.Cluster
	// h is the etcd handle on c's keys.
	h *dcs.Etcd
	// groups, when every group is read, maps each group to its cluster;
	// 0 is always there (c).
	groups map[int]*dcs.Cluster
}

// groupCluster is one group of a view with its cluster.
type groupCluster struct {
	group int
	c     *dcs.Cluster
}

// allGroups reports whether the view holds every group of a Citus
// cluster.
func (v *clusterView) allGroups() bool { return v.citus && v.group == nil }

// clusters lists the clusters the view shows, by group: every group, or
// the one cluster (as group --group, else 0).
func (v *clusterView) clusters() []groupCluster {
	if !v.allGroups() {
		g := 0
		if v.group != nil {
			g = *v.group
		}
		return []groupCluster{{g, v.c}}
	}
	keys := make([]int, 0, len(v.groups))
	for g := range v.groups {
		keys = append(keys, g)
	}
	slices.Sort(keys)
	out := make([]groupCluster, len(keys))
	for i, g := range keys {
		out[i] = groupCluster{g, v.groups[g]}
	}
	return out
}

// clusterOf returns the cluster whose member m is (m points into it).
func (v *clusterView) clusterOf(m *dcs.Member) *dcs.Cluster {
	for _, gc := range v.clusters() {
		for i := range gc.c.Members {
			if &gc.c.Members[i] == m {
				return gc.c
			}
		}
	}
	return v.c
}

// member finds a member by name in the view's clusters, in group order.
func (v *clusterView) member(name string) *dcs.Member {
	for _, gc := range v.clusters() {
		if m := gc.c.Member(name); m != nil {
			return m
		}
	}
	return nil
}

// viewMembers returns the members that have role in every cluster of the
// view, in group order (patronictl's get_all_members).
func viewMembers(v *clusterView, role string) []*dcs.Member {
	var out []*dcs.Member
	for _, gc := range v.clusters() {
		out = append(out, allMembers(gc.c, role)...)
	}
	return out
}

// addGroupFlag adds --group to a command.
func addGroupFlag(cmd *cobra.Command, fromFile bool) {
	help := "Citus group"
	if fromFile {
		help += " (default: the file's citus.group)"
	}
	cmd.Flags().Int("group", 0, help)
}

// groupOption reads --group; when it is not given and fromFile is set, the
// group of the file's citus section. nil: no group.
func (a *App) groupOption(cmd *cobra.Command, fromFile bool) (*int, error) {
	if cmd.Flags().Changed("group") {
		g, err := cmd.Flags().GetInt("group")
		if err != nil {
			return nil, usageErrorf("invalid value for '--group': %v", err)
		}
		return &g, nil
	}
	if !fromFile {
		return nil, nil
	}
	s, err := a.load()
	if err != nil {
		return nil, err
	}
	if s.Citus && s.CitusGroup != nil {
		g := *s.CitusGroup
		return &g, nil
	}
	return nil, nil
}

// read reads a cluster as a command sees it: the plain cluster when the
// cluster is not a Citus cluster (no citus section and no group); with a
// group, that group's keys; else every group at once.
func (a *App) read(ctx context.Context, name string, group *int) (*clusterView, error) {
	s, err := a.load()
	if err != nil {
		return nil, err
	}
	v := &clusterView{name: name, citus: s.Citus || group != nil, group: group}
	handleGroup := group
	if v.citus && group == nil {
		handleGroup = new(int) // the coordinator group
	}
	h, err := a.handle(name, handleGroup)
	if err != nil {
		return nil, err
	}
	v.h = h
	rctx, cancel := context.WithTimeout(ctx, a.EtcdTimeout)
	defer cancel()
	if !v.allGroups() {
		if v.c, err = h.Snapshot(rctx); err != nil {
			return nil, a.etcdError(err)
		}
		return v, nil
	}
	groups, rev, err := h.SnapshotGroups(rctx)
	if err != nil {
		return nil, a.etcdError(err)
	}
	if groups[0] == nil {
		groups[0] = &dcs.Cluster{Revision: rev}
	}
	v.groups, v.c = groups, groups[0]
	return v, nil
}

func (a *App) etcdError(err error) error {
	return fmt.Errorf("%w (etcd at %s)", err, strings.Join(a.settings.Endpoints, ","))
}

// promptGroup asks for a Citus group until the answer is an integer, as
// click.prompt(type=int).
func (a *App) promptGroup() (int, error) {
	for {
		answer, err := a.prompt("Citus group", nil)
		if err != nil {
			return 0, err
		}
		g, err := strconv.Atoi(strings.TrimSpace(answer))
		if err == nil {
			return g, nil
		}
		fmt.Fprintf(a.Stderr, "Error: '%s' is not a valid integer.\n", answer)
	}
}
