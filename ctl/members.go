package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/dcs"
)

// memberInfo is one member as patronictl's cluster_as_json describes it.
type memberInfo struct {
	Name     string
	Role     string // leader, standby_leader, sync_standby, replica
	State    string
	Host     string // "" when conn_url gives none
	Port     int
	Timeline int            // 0: unknown
	Lag      any            // int64 bytes, "unknown", or nil for the leader
	Tags     map[string]any // nil when none
	Pending  bool
	// PendingReason is Patroni's pending_restart_reason, when published.
	PendingReason map[string]any
	// ScheduledRestart is {"schedule": ..., "postgres_version": ...}.
	ScheduledRestart map[string]any
	member           *dcs.Member
}

// syncStandbys returns the names in the sync key's sync_standby, or nil
// when the key is absent or has no leader.
func syncStandbys(c *dcs.Cluster) []string {
	if len(c.Sync) == 0 {
		return nil
	}
	var s struct {
		Leader      *string `json:"leader"`
		SyncStandby any     `json:"sync_standby"`
	}
	if err := json.Unmarshal(c.Sync, &s); err != nil || s.Leader == nil {
		return nil
	}
	var out []string
	switch v := s.SyncStandby.(type) {
	case string:
		out = splitComma(v)
	case []any:
		for _, e := range v {
			if n, ok := e.(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// isStandbyCluster reports whether the config key defines standby_cluster.
func isStandbyCluster(c *dcs.Cluster) bool {
	sc, ok := c.Config["standby_cluster"].(map[string]any)
	if !ok {
		return false
	}
	for _, k := range []string{"host", "port", "restore_command"} {
		if v, ok := sc[k]; ok && v != nil && v != "" {
			return true
		}
	}
	return false
}

func leaderName(c *dcs.Cluster) string {
	if c.Leader == nil {
		return ""
	}
	return c.Leader.Name
}

// connHostPort reads host and port of a conn_url (port 5432 by default).
func connHostPort(connURL string) (string, int, bool) {
	if connURL == "" {
		return "", 0, false
	}
	u, err := url.Parse(connURL)
	if err != nil || u.Hostname() == "" {
		return "", 0, false
	}
	port := 5432
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			port = n
		}
	}
	return u.Hostname(), port, true
}

// memberLSN is the WAL position a member reports: xlog_location, else
// receive_lsn, else replay_lsn; ok false when none is published.
func memberLSN(m *dcs.Member) (int64, bool) {
	switch {
	case m.XLogLocation > 0:
		return m.XLogLocation, true
	case m.ReceiveLSN != nil:
		return *m.ReceiveLSN, true
	case m.ReplayLSN != nil:
		return *m.ReplayLSN, true
	}
	return 0, false
}

// clusterLSN is the leader's last known position: the status key's optime,
// else the leader's own xlog_location.
func clusterLSN(c *dcs.Cluster) int64 {
	if c.Status != nil && c.Status.Optime > 0 {
		return c.Status.Optime
	}
	if l := c.LeaderMember(); l != nil {
		if lsn, ok := memberLSN(l); ok {
			return lsn
		}
	}
	return 0
}

func extraObject(m *dcs.Member, key string) map[string]any {
	raw, ok := m.Extra[key]
	if !ok {
		return nil
	}
	var v map[string]any
	if json.Unmarshal(raw, &v) != nil || len(v) == 0 {
		return nil
	}
	return v
}

// clusterMembers lists the members, sorted by name, with their role and
// lag as patronictl computes them.
func clusterMembers(c *dcs.Cluster) []memberInfo {
	leader := leaderName(c)
	sync := syncStandbys(c)
	lsn := clusterLSN(c)
	out := make([]memberInfo, 0, len(c.Members))
	for i := range c.Members {
		m := &c.Members[i]
		mi := memberInfo{Name: m.Name, member: m, Timeline: m.Timeline, Pending: m.PendingRestart}
		switch {
		case m.Name == leader:
			mi.Role = "leader"
			if isStandbyCluster(c) {
				mi.Role = "standby_leader"
			}
		case containsFold(sync, m.Name):
			mi.Role = "sync_standby"
		default:
			mi.Role = "replica"
		}
		mi.State = m.State
		if mi.Role != "leader" && m.ReplicationState != "" {
			mi.State = m.ReplicationState
		}
		if h, p, ok := connHostPort(m.ConnURL); ok {
			mi.Host, mi.Port = h, p
		}
		if len(m.Tags) > 0 {
			mi.Tags = m.Tags
		}
		mi.PendingReason = extraObject(m, "pending_restart_reason")
		mi.ScheduledRestart = extraObject(m, "scheduled_restart")
		if m.Name != leader {
			if own, ok := memberLSN(m); !ok {
				mi.Lag = "unknown"
			} else if lsn >= own {
				mi.Lag = lsn - own
			} else {
				mi.Lag = int64(0)
			}
		}
		out = append(out, mi)
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// serviceInfo is what patronictl prints under the table: maintenance mode
// and a scheduled switchover.
func serviceInfo(c *dcs.Cluster) []string {
	var out []string
	if c.Paused() {
		out = append(out, "Maintenance mode: on")
	}
	if f := c.FailoverRequest; f != nil && !f.ScheduledAt.IsZero() {
		info := "Switchover scheduled at: " + dcs.FormatPyTime(f.ScheduledAt)
		if f.Leader != "" {
			info += fmt.Sprintf("\n%24s: %s", "from", f.Leader)
		}
		if f.Candidate != "" {
			info += fmt.Sprintf("\n%24s: %s", "to", f.Candidate)
		}
		out = append(out, info)
	}
	return out
}

// roleTitle is "sync_standby" as "Sync Standby".
func roleTitle(r string) string {
	words := strings.Split(r, "_")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

// roundHalfEven is Python's round() of a float to an integer.
func roundHalfEven(f float64) int64 { return int64(math.RoundToEven(f)) }

// outputMembers prints the members table of a cluster (patronictl's
// output_members). For a Citus cluster the table has a Group column and
// the rows of each group (every group when the view holds them all), each
// member's role and lag computed against its own group.
func (a *App) outputMembers(w io.Writer, v *clusterView, extended bool, format string) {
	name, c := v.name, v.c
	type groupRows struct {
		group   int
		c       *dcs.Cluster
		members []memberInfo
	}
	var groups []groupRows
	var members []memberInfo // every member shown, for the columns
	for _, gc := range v.clusters() {
		ms := clusterMembers(gc.c)
		members = append(members, ms...)
		if format == fmtTopology {
			ms = topologySort(ms)
		}
		groups = append(groups, groupRows{gc.group, gc.c, ms})
	}
	columns := []string{"Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"}
	if v.citus {
		columns = slices.Insert(columns, 1, "Group")
	}
	type optional struct {
		column string
		has    func(mi memberInfo) bool
		forced bool // shown with --extended
	}
	for _, o := range []optional{
		{"Pending restart", func(mi memberInfo) bool { return mi.Pending }, true},
		{"Pending restart reason", func(mi memberInfo) bool { return len(mi.PendingReason) > 0 }, false},
		{"Scheduled restart", func(mi memberInfo) bool { return mi.ScheduledRestart != nil }, true},
		{"Tags", func(mi memberInfo) bool { return len(mi.Tags) > 0 }, true},
	} {
		show := extended && o.forced
		for _, mi := range members {
			if mi.Host != "" && o.has(mi) {
				show = true
			}
		}
		if show {
			columns = append(columns, o.column)
		}
	}

	// host:port when some member is not on 5432 or two share a host.
	hosts := map[string]bool{}
	withHost := 0
	appendPort := false
	for _, mi := range members {
		if mi.Host == "" {
			continue
		}
		withHost++
		hosts[mi.Host] = true
		if mi.Port != 5432 {
			appendPort = true
		}
	}
	if len(hosts) < withHost {
		appendPort = true
	}

	var rows [][]any
	for _, gr := range groups {
		for _, mi := range gr.members {
			rows = append(rows, memberRow(columns, name, gr.group, mi, appendPort, format))
		}
	}

	initialize := c.SystemID
	switch {
	case !c.Initialized:
		initialize = "uninitialized"
	case c.SystemID == "":
		initialize = "initializing"
	}
	title := fmt.Sprintf(" Cluster: %s (%s) ", name, initialize)
	if v.citus {
		title = fmt.Sprintf(" Citus cluster: %s ", name)
		if v.group != nil {
			title = fmt.Sprintf(" Citus cluster: %s (group: %d, %s) ", name, *v.group, initialize)
		}
	}
	printOutput(w, columns, rows, map[string]byte{"Group": 'r', "Lag in MB": 'r', "TL": 'r'}, format, title)
	if format != fmtPretty && format != fmtTopology {
		return
	}
	for _, gr := range groups {
		if info := serviceInfo(gr.c); len(info) > 0 {
			if v.allGroups() {
				fmt.Fprintf(w, "Citus group: %d\n", gr.group)
			}
			fmt.Fprintln(w, " "+strings.Join(info, "\n "))
		}
	}
}

// memberRow is one row of the members table.
func memberRow(columns []string, name string, group int, mi memberInfo, appendPort bool, format string) []any {
	host := mi.Host
	if appendPort && host != "" {
		host = joinHostPort(host, mi.Port)
	}
	var tl any = ""
	if mi.Timeline > 0 {
		tl = int64(mi.Timeline)
	}
	var lag any = ""
	switch v := mi.Lag.(type) {
	case int64:
		lag = roundHalfEven(float64(v) / 1024 / 1024)
	case string:
		lag = v
	}
	pending := ""
	if mi.Pending {
		pending = "*"
	}
	var reasons []string
	for _, k := range sortedKeys(mi.PendingReason) {
		v, _ := mi.PendingReason[k].(map[string]any)
		full := k + ": " + str(v["old_value"]) + "->" + str(v["new_value"])
		if (format == fmtPretty || format == fmtTopology) && len(full) > 50 {
			full = k + ": [hidden - too long]"
		}
		reasons = append(reasons, full)
	}
	scheduled := ""
	if mi.ScheduledRestart != nil {
		scheduled = str(mi.ScheduledRestart["schedule"])
		if v := str(mi.ScheduledRestart["postgres_version"]); v != "" {
			scheduled += " if version < " + v
		}
	}
	var tags any = ""
	if len(mi.Tags) > 0 {
		tags = mi.Tags
	}
	values := map[string]any{
		"Cluster": name, "Group": int64(group), "Member": mi.Name, "Host": host, "Role": roleTitle(mi.Role),
		"State": mi.State, "TL": tl, "Lag in MB": lag, "Pending restart": pending,
		"Pending restart reason": strings.Join(reasons, "\n"),
		"Scheduled restart":      scheduled, "Tags": tags,
	}
	row := make([]any, len(columns))
	for i, col := range columns {
		row[i] = values[col]
	}
	return row
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// topologySort orders members as a replication tree: the leader, then the
// members replicating from it, each followed by its cascading replicas
// (tag replicatefrom), with names indented by level.
func topologySort(members []memberInfo) []memberInfo {
	leader := ""
	names := map[string]bool{}
	for _, m := range members {
		if strings.HasSuffix(m.Role, "leader") {
			if leader == "" {
				leader = m.Name
			}
		} else {
			names[m.Name] = true
		}
	}
	children := map[string][]memberInfo{}
	for _, m := range members {
		if strings.HasSuffix(m.Role, "leader") {
			continue
		}
		parent, _ := m.Tags["replicatefrom"].(string)
		if parent == "" || parent == m.Name || !names[parent] {
			parent = leader
		}
		children[parent] = append(children[parent], m)
	}
	var out []memberInfo
	seen := map[string]bool{}
	var walk func(level int, m memberInfo)
	walk = func(level int, m memberInfo) {
		if seen[m.Name] {
			return
		}
		seen[m.Name] = true
		kids := children[m.Name]
		if level > 0 {
			m.Name = strings.Repeat(" ", (level-1)*2) + "+ " + m.Name
		}
		if m.Name != "" {
			out = append(out, m)
		}
		for _, k := range kids {
			walk(level+1, k)
		}
	}
	var root memberInfo
	for _, m := range members {
		if m.Name == leader && leader != "" {
			root = m
		}
	}
	walk(0, root)
	return out
}

// watchLoop runs fn once, then every interval until ctx ends, clearing
// the screen between runs when stdout is a terminal (patronictl's
// watching()).
func (a *App) watchLoop(cmd *cobra.Command, interval time.Duration, fn func() error) error {
	ctx := cmd.Context()
	clear := func() {
		if interval > 0 && isTerminal(a.Stdout) {
			fmt.Fprint(a.Stdout, "\033[2J\033[1;1H")
		}
	}
	clear()
	if err := fn(); err != nil {
		return err
	}
	for interval > 0 {
		if err := sleep(ctx, interval); err != nil {
			return nil // Ctrl-C ends watching
		}
		clear()
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

type watchFlags struct {
	every float64
	w     bool
}

func (f *watchFlags) add(cmd *cobra.Command) {
	cmd.Flags().Float64VarP(&f.every, "watch", "w", 0, "auto update the screen every X seconds")
	cmd.Flags().BoolVarP(&f.w, "W", "W", false, "auto update the screen every 2 seconds")
}

func (f *watchFlags) interval() time.Duration {
	if f.w && f.every <= 0 {
		return 2 * time.Second
	}
	if f.every <= 0 {
		return 0
	}
	return time.Duration(f.every * float64(time.Second))
}

func (a *App) listCommand() *cobra.Command {
	var (
		extended, ts bool
		format       string
		watch        watchFlags
	)
	cmd := &cobra.Command{
		Use:     "list [CLUSTER_NAME...]",
		Aliases: []string{"members"},
		Short:   "List the members of a cluster",
		Args:    maxArgs(-1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				n, err := a.clusterName(nil)
				if err != nil {
					return err
				}
				names = []string{n}
			}
			return a.watchLoop(cmd, watch.interval(), func() error {
				if ts {
					a.out("%s", a.timestamp(0))
				}
				for _, n := range names {
					v, err := a.read(cmd.Context(), n, group)
					if err != nil {
						return err
					}
					a.outputMembers(a.Stdout, v, extended, format)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&extended, "extended", "e", false, "show pending restart, scheduled restart and tags")
	cmd.Flags().BoolVarP(&ts, "timestamp", "t", false, "print a timestamp")
	cmd.Flags().StringVarP(&format, "format", "f", fmtPretty, "output format: pretty, tsv, json, yaml")
	addGroupFlag(cmd, false)
	watch.add(cmd)
	return cmd
}

func (a *App) topologyCommand() *cobra.Command {
	var watch watchFlags
	cmd := &cobra.Command{
		Use:   "topology [CLUSTER_NAME...]",
		Short: "Print the replication topology of a cluster",
		Args:  maxArgs(-1),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				n, err := a.clusterName(nil)
				if err != nil {
					return err
				}
				names = []string{n}
			}
			return a.watchLoop(cmd, watch.interval(), func() error {
				for _, n := range names {
					v, err := a.read(cmd.Context(), n, group)
					if err != nil {
						return err
					}
					a.outputMembers(a.Stdout, v, false, fmtTopology)
				}
				return nil
			})
		},
	}
	addGroupFlag(cmd, false)
	watch.add(cmd)
	return cmd
}
