package ctl

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/dcs"
)

// Roles accepted by --role (patronictl's CtlPostgresqlRole).
var roleChoices = []string{"leader", "primary", "standby-leader", "replica", "standby", "any"}

func checkRole(r string) (string, error) {
	if r == "master" {
		r = "primary"
	}
	if !slices.Contains(roleChoices, r) {
		return "", usageErrorf("invalid value for '--role' / '-r': %q is not one of %s", r, strings.Join(roleChoices, ", "))
	}
	return r, nil
}

// allMembers returns the members that have role, as get_all_members.
func allMembers(c *dcs.Cluster, role string) []*dcs.Member {
	leader := c.LeaderMember()
	var out []*dcs.Member
	switch role {
	case "leader", "primary", "standby-leader":
		if leader == nil {
			return nil
		}
		standbyLeader := leader.Role == "standby_leader"
		if role == "leader" || role == "primary" && !standbyLeader || role == "standby-leader" && !leader.IsPrimary() {
			out = append(out, leader)
		}
		return out
	}
	for i := range c.Members {
		m := &c.Members[i]
		if role == "any" || m.Name != leaderName(c) {
			out = append(out, m)
		}
	}
	return out
}

// membersLeaderFirst returns the members with an api_url, the leader
// first (get_all_members_leader_first).
func membersLeaderFirst(c *dcs.Cluster) []*dcs.Member {
	var out []*dcs.Member
	l := c.LeaderMember()
	if l != nil && l.APIURL != "" {
		out = append(out, l)
	}
	for i := range c.Members {
		m := &c.Members[i]
		if m.APIURL != "" && (l == nil || m.Name != l.Name) {
			out = append(out, m)
		}
	}
	return out
}

func memberNames(ms []*dcs.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// clusterAndMembers splits "CLUSTER [MEMBER...]" as patronictl reads it.
// As a convenience the cluster name may be left out when the file gives
// the scope: a first argument that is not the scope but names one of its
// members starts the member list.
func (a *App) clusterAndMembers(ctx context.Context, args []string, group *int) ([]string, *clusterView, error) {
	name, err := a.clusterName(args)
	if err != nil {
		return nil, nil, err
	}
	var members []string
	if len(args) > 0 {
		members = args[1:]
		if s, _ := a.load(); s != nil && s.Scope != "" && args[0] != s.Scope {
			if v, err := a.read(ctx, s.Scope, group); err == nil && v.member(args[0]) != nil {
				return args, v, nil
			}
		}
	}
	v, err := a.read(ctx, name, group)
	if err != nil {
		return nil, nil, err
	}
	return members, v, nil
}

// getMembers selects the members an action applies to (patronictl's
// get_members): it prints the cluster, checks the names, asks for one when
// none is given (reinitialize) and, with confirm, asks for confirmation.
// In a Citus cluster without a group the members of every group are
// candidates.
func (a *App) getMembers(v *clusterView, names []string, role string, force bool, action string, confirm bool) ([]*dcs.Member, error) {
	members := viewMembers(v, role)
	candidates := memberNames(members)
	if len(names) == 0 && len(candidates) == 0 {
		return nil, fmt.Errorf("%s cluster doesn't have any members", v.name)
	}
	a.outputMembers(a.Stdout, v, false, fmtPretty)

	if len(names) > 0 {
		var keep []string
		for _, n := range names {
			if slices.Contains(candidates, n) && !slices.Contains(keep, n) {
				keep = append(keep, n)
			}
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("No %s among provided members", role)
		}
		names = keep
	} else if action != "reinitialize" {
		names = candidates
	}
	if len(names) == 0 && !force {
		n, err := a.prompt(fmt.Sprintf("Which member do you want to %s [%s]?", action, strings.Join(candidates, ", ")), ptr(""))
		if err != nil {
			return nil, err
		}
		names = []string{n}
	}
	for _, n := range names {
		if !slices.Contains(candidates, n) {
			return nil, fmt.Errorf("%s is not a member of cluster", n)
		}
	}
	var out []*dcs.Member
	for _, m := range members {
		if slices.Contains(names, m.Name) {
			out = append(out, m)
		}
	}
	if confirm {
		if err := a.confirmMembersAction(out, force, action, time.Time{}, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (a *App) confirmMembersAction(ms []*dcs.Member, force bool, action string, scheduledAt time.Time, pending bool) error {
	if force {
		return nil
	}
	names := strings.Join(memberNames(ms), ", ")
	if !scheduledAt.IsZero() {
		q := fmt.Sprintf("Are you sure you want to schedule %s of members %s at %s?", action, names, pyDatetimeStr(scheduledAt))
		if pending {
			q = "The nodes needing a restart will be identified at the scheduled time, and might be different from the ones showing pending restart right now. Is this fine?"
		}
		ok, err := a.confirm(q)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("Aborted scheduled %s", action)
		}
		return nil
	}
	ok, err := a.confirm(fmt.Sprintf("Are you sure you want to %s members %s?", action, names))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("Aborted %s", action)
	}
	return nil
}

// pyDatetimeStr is Python's str() of an aware datetime.
func pyDatetimeStr(t time.Time) string {
	return strings.Replace(dcs.FormatPyTime(t), "T", " ", 1)
}

// parseScheduled reads --scheduled: "" or "now" is now (zero time); a time
// without a zone is local time.
func parseScheduled(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "now" {
		return time.Time{}, nil
	}
	if t, err := dcs.ParseTime(s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("Unable to parse scheduled timestamp (%s). It should be in an unambiguous format (e.g. ISO 8601)", s)
}

// checkPGVersion validates --pg-version as Patroni's postgres_version_to_int.
func checkPGVersion(v string) error {
	parts := strings.Split(v, ".")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("Invalid PostgreSQL version: %s", v)
		}
		nums[i] = n
	}
	if len(nums) < 2 || len(nums) == 2 && nums[0] < 10 || len(nums) > 3 {
		return fmt.Errorf("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: %s", v)
	}
	return nil
}

func (a *App) nextHour() string {
	return a.Now().Add(time.Hour).Format("2006-01-02T15:04")
}

// loopWait is loop_wait of the config key (10 by default).
func loopWait(c *dcs.Cluster) int64 {
	if v, ok := normalize(c.Config["loop_wait"]).(int64); ok && v > 0 {
		return v
	}
	return 10
}

// failureLine prints a "Failed: ..." line on stderr.
func (a *App) failure(format string, args ...any) {
	fmt.Fprintf(a.Stderr, format+"\n", args...)
}

func (a *App) checkResponse(r *restResponse, err error, member, action string, silentSuccess bool) bool {
	if err != nil {
		a.failure("Failed: %s for member %s, (%v)", action, member, err)
		return false
	}
	if r.Status >= 400 {
		a.failure("Failed: %s for member %s, status code=%d, (%s)", action, member, r.Status, r.text())
		return false
	}
	if !silentSuccess {
		a.out("Success: %s for member %s", action, member)
	}
	return true
}

func (a *App) reloadCommand() *cobra.Command {
	var (
		role  string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "reload [CLUSTER_NAME] [MEMBER_NAMES...]",
		Short: "Reload cluster member configuration",
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := checkRole(role)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			names, v, err := a.clusterAndMembers(ctx, args, group)
			if err != nil {
				return err
			}
			members, err := a.getMembers(v, names, role, force, "reload", true)
			if err != nil {
				return err
			}
			failed := false
			for _, m := range members {
				r, err := a.request(ctx, m, http.MethodPost, "reload", nil, 0)
				switch {
				case err != nil:
					a.failure("Failed: reload for member %s, (%v)", m.Name, err)
					failed = true
				case r.Status == http.StatusOK:
					a.out("No changes to apply on member %s", m.Name)
				case r.Status == http.StatusAccepted:
					a.out("Reload request received for member %s and will be processed within %d seconds", m.Name, loopWait(v.clusterOf(m)))
				default:
					a.failure("Failed: reload for member %s, status code=%d, (%s)", m.Name, r.Status, r.text())
					failed = true
				}
			}
			if failed {
				return errFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&role, "role", "r", "any", "reload only members with this role: "+strings.Join(roleChoices, ", "))
	cmd.Flags().BoolVar(&force, "force", false, "do not ask for confirmation at any point")
	addGroupFlag(cmd, false)
	return cmd
}

func (a *App) restartCommand() *cobra.Command {
	var (
		role, scheduled, pgVersion, timeout string
		anyOne, pending, force              bool
	)
	cmd := &cobra.Command{
		Use:   "restart [CLUSTER_NAME] [MEMBER_NAMES...]",
		Short: "Restart cluster members",
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := checkRole(role)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			names, v, err := a.clusterAndMembers(ctx, args, group)
			if err != nil {
				return err
			}
			members, err := a.getMembers(v, names, role, force, "restart", false)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("scheduled") && !force {
				if scheduled, err = a.prompt("When should the restart take place (e.g. "+a.nextHour()+") ", ptr("now")); err != nil {
					return err
				}
			}
			at, err := parseScheduled(scheduled)
			if err != nil {
				return err
			}
			content := map[string]any{}
			if pending {
				content["restart_pending"] = true
				if at.IsZero() {
					var keep []*dcs.Member
					for _, m := range members {
						if m.PendingRestart {
							keep = append(keep, m)
						}
					}
					members = keep
				}
			}
			if anyOne && len(members) > 1 {
				members = []*dcs.Member{members[rand.IntN(len(members))]}
			}
			if err := a.confirmMembersAction(members, force, "restart", at, pending); err != nil {
				return err
			}
			if !cmd.Flags().Changed("pg-version") && !force {
				if pgVersion, err = a.prompt("Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ", ptr("")); err != nil {
					return err
				}
			}
			if pgVersion != "" {
				if err := checkPGVersion(pgVersion); err != nil {
					return err
				}
				content["postgres_version"] = pgVersion
			}
			if !at.IsZero() {
				paused := v.c.Paused()
				for _, m := range members {
					paused = paused || v.clusterOf(m).Paused()
				}
				if paused {
					return fmt.Errorf("Can't schedule restart in the paused state")
				}
				content["schedule"] = dcs.FormatPyTime(at)
			}
			reqTimeout := a.RestartTimeout
			if timeout != "" {
				content["timeout"] = timeout
				if d, err := parseSeconds(timeout); err == nil && d+10*time.Second > reqTimeout {
					reqTimeout = d + 10*time.Second
				}
			}
			failed := false
			for _, m := range members {
				if _, ok := content["schedule"]; ok && force && m.Extra["scheduled_restart"] != nil {
					r, err := a.request(ctx, m, http.MethodDelete, "restart", nil, 0)
					a.checkResponse(r, err, m.Name, "flush scheduled restart", true)
				}
				r, err := a.request(ctx, m, http.MethodPost, "restart", content, reqTimeout)
				switch {
				case err != nil:
					a.failure("Failed: restart for member %s, (%v)", m.Name, err)
					failed = true
				case r.Status == http.StatusOK:
					a.out("Success: restart on member %s", m.Name)
				case r.Status == http.StatusAccepted:
					a.out("Success: restart scheduled on member %s", m.Name)
				case r.Status == http.StatusConflict:
					a.failure("Failed: another restart is already scheduled on member %s", m.Name)
					failed = true
				default:
					a.failure("Failed: restart for member %s, status code=%d, (%s)", m.Name, r.Status, r.text())
					failed = true
				}
			}
			if failed {
				return errFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&role, "role", "r", "any", "restart only members with this role: "+strings.Join(roleChoices, ", "))
	f.BoolVar(&anyOne, "any", false, "restart a single member only")
	f.StringVar(&scheduled, "scheduled", "", "timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601), or now")
	f.StringVar(&pgVersion, "pg-version", "", "restart if the PostgreSQL version is less than provided (e.g. 9.5.2)")
	f.BoolVar(&pending, "pending", false, "restart if pending")
	f.StringVar(&timeout, "timeout", "", "return error and fail over if necessary when restarting takes longer than this")
	f.BoolVar(&force, "force", false, "do not ask for confirmation at any point")
	addGroupFlag(cmd, false)
	return cmd
}

// parseSeconds reads a timeout: seconds, or a Go duration.
func parseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

func (a *App) reinitCommand() *cobra.Command {
	var force, wait, fromLeader bool
	cmd := &cobra.Command{
		Use:   "reinit [CLUSTER_NAME] [MEMBER_NAMES...]",
		Short: "Reinitialize cluster members (wipe the data directory and clone it again)",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			names, v, err := a.clusterAndMembers(ctx, args, group)
			if err != nil {
				return err
			}
			members, err := a.getMembers(v, names, "replica", force, "reinitialize", true)
			if err != nil {
				return err
			}
			failed := false
			var waitOn []*dcs.Member
			for _, m := range members {
				body := map[string]any{"force": force}
				if fromLeader {
					body["from_leader"] = true
				}
				for {
					r, err := a.request(ctx, m, http.MethodPost, "reinitialize", body, 0)
					started := a.checkResponse(r, err, m.Name, "reinitialize", false)
					if !started && err == nil && strings.HasSuffix(strings.TrimSpace(r.text()), " already in progress") && !force {
						again, cerr := a.confirm("Do you want to cancel it and reinitialize anyway?")
						if cerr != nil {
							return cerr
						}
						if again {
							body["force"] = true
							continue
						}
					}
					if !started {
						failed = true
					} else if wait {
						waitOn = append(waitOn, m)
					}
					break
				}
			}
			if len(waitOn) > 0 {
				if err := a.waitReinit(ctx, waitOn); err != nil {
					return err
				}
			}
			if failed {
				return errFailed
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "do not ask for confirmation; cancel a running operation")
	cmd.Flags().BoolVar(&fromLeader, "from-leader", false, "get the base backup from the leader")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until reinitialization completes")
	addGroupFlag(cmd, false)
	return cmd
}

// waitReinit polls the members' GET /patroni until each is running again.
// A member counts as done once it reported another state and then
// "running", or reports "running" after a grace period in which it never
// showed another state (a very fast clone); a state ending in "failed"
// ends the wait with an error.
func (a *App) waitReinit(ctx context.Context, ms []*dcs.Member) error {
	type progress struct {
		m       *dcs.Member
		changed bool
	}
	var pending []*progress
	for _, m := range ms {
		pending = append(pending, &progress{m: m})
	}
	start := time.Now()
	grace := 5 * a.PollInterval
	var failed []string
	lastShown := ""
	for len(pending) > 0 {
		names := make([]string, len(pending))
		for i, p := range pending {
			names[i] = p.m.Name
		}
		if shown := strings.Join(names, ", "); shown != lastShown {
			a.out("Waiting for reinitialize to complete on: %s", shown)
			lastShown = shown
		}
		if err := sleep(ctx, a.PollInterval); err != nil {
			return err
		}
		var still []*progress
		for _, p := range pending {
			data, err := a.getJSON(ctx, p.m, "patroni")
			if err != nil {
				still = append(still, p) // restarting or unreachable: keep waiting
				continue
			}
			state, _ := data["state"].(string)
			switch {
			case strings.HasSuffix(state, "failed"):
				a.failure("Reinitialize failed on: %s (state %s)", p.m.Name, state)
				failed = append(failed, p.m.Name)
			case state == "running" && (p.changed || time.Since(start) > grace):
				a.out("Reinitialize is completed on: %s", p.m.Name)
			default:
				if state != "running" {
					p.changed = true
				}
				still = append(still, p)
			}
		}
		pending = still
	}
	if len(failed) > 0 {
		return errFailed
	}
	return nil
}

func (a *App) switchoverCommand() *cobra.Command {
	var (
		leader, candidate, scheduled string
		force                        bool
	)
	cmd := &cobra.Command{
		Use:   "switchover [CLUSTER_NAME]",
		Short: "Switchover to a replica",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var l, cand, sched *string
			if cmd.Flags().Changed("leader") || cmd.Flags().Changed("primary") {
				l = &leader
			}
			if cmd.Flags().Changed("candidate") {
				cand = &candidate
			}
			if cmd.Flags().Changed("scheduled") {
				sched = &scheduled
			}
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			return a.failoverOrSwitchover(cmd.Context(), "switchover", args, group, cand, force, l, sched)
		},
	}
	f := cmd.Flags()
	f.StringVar(&leader, "leader", "", "the name of the current leader")
	f.StringVar(&leader, "primary", "", "the name of the current leader (alias of --leader)")
	f.StringVar(&candidate, "candidate", "", "the name of the candidate")
	f.StringVar(&scheduled, "scheduled", "", "timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601), or now")
	f.BoolVar(&force, "force", false, "do not ask for confirmation at any point")
	addGroupFlag(cmd, false)
	return cmd
}

func (a *App) failoverCommand() *cobra.Command {
	var (
		candidate string
		force     bool
	)
	cmd := &cobra.Command{
		Use:   "failover [CLUSTER_NAME]",
		Short: "Failover to a replica",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cand *string
			if cmd.Flags().Changed("candidate") {
				cand = &candidate
			}
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			return a.failoverOrSwitchover(cmd.Context(), "failover", args, group, cand, force, nil, nil)
		},
	}
	cmd.Flags().StringVar(&candidate, "candidate", "", "the name of the candidate")
	cmd.Flags().BoolVar(&force, "force", false, "do not ask for confirmation at any point")
	addGroupFlag(cmd, false)
	return cmd
}

// truthy is Python's truth value of a JSON value.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case float64:
		return t != 0
	case map[string]any:
		return len(t) > 0
	case []any:
		return len(t) > 0
	}
	return true
}

func pyList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + strings.ReplaceAll(n, "'", `\'`) + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// failoverOrSwitchover is patronictl's _do_failover_or_switchover. In a
// Citus cluster it acts on one group: --group, else the one asked for
// after the topology of every group is shown (an error with --force).
func (a *App) failoverOrSwitchover(ctx context.Context, action string, args []string, group *int, candidate *string, force bool, switchoverLeader, scheduled *string) error {
	name, err := a.clusterName(args)
	if err != nil {
		return err
	}
	v, err := a.read(ctx, name, group)
	if err != nil {
		return err
	}
	a.out("Current cluster topology")
	a.outputMembers(a.Stdout, v, false, fmtPretty)
	if v.allGroups() {
		if force {
			return errCitusGroupRequired
		}
		g, err := a.promptGroup()
		if err != nil {
			return err
		}
		if v, err = a.read(ctx, name, &g); err != nil {
			return err
		}
	}
	h, c := v.h, v.c

	clusterLeader := leaderName(c)
	fromLeader := ""
	if action == "switchover" {
		if clusterLeader == "" {
			return fmt.Errorf("This cluster has no leader")
		}
		switch {
		case switchoverLeader != nil:
			fromLeader = *switchoverLeader
		case force:
			fromLeader = clusterLeader
		default:
			label := "Primary"
			if isStandbyCluster(c) {
				label = "Standby Leader"
			}
			if fromLeader, err = a.prompt(label, ptr(clusterLeader)); err != nil {
				return err
			}
		}
		if fromLeader != clusterLeader {
			return fmt.Errorf("Member %s is not the leader of cluster %s", fromLeader, name)
		}
	}

	var candidates []string
	for _, m := range c.Members {
		if m.Name != clusterLeader && !truthy(m.Tags["nofailover"]) {
			candidates = append(candidates, m.Name)
		}
	}
	slices.Sort(candidates)
	if len(candidates) == 0 {
		return fmt.Errorf("No candidates found to %s to", action)
	}
	cand := ""
	if candidate != nil {
		cand = *candidate
	} else if !force {
		if cand, err = a.prompt("Candidate "+pyList(candidates), ptr("")); err != nil {
			return err
		}
	}
	if action == "failover" && cand == "" {
		return fmt.Errorf("Failover could be performed only to a specific candidate")
	}
	if cand != "" && !slices.Contains(candidates, cand) {
		if cand == clusterLeader {
			return fmt.Errorf("Member %s is already the leader of cluster %s", cand, name)
		}
		return fmt.Errorf("Member %s does not exist in cluster %s or is tagged as nofailover", cand, name)
	}
	if action == "failover" && !force && truthy(c.Config["synchronous_mode"]) {
		if sync := syncStandbys(c); sync != nil && !containsFold(sync, cand) {
			ok, err := a.confirm(fmt.Sprintf("Are you sure you want to failover to the asynchronous node %s?", cand))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("Aborting %s", action)
			}
		}
	}

	var at time.Time
	if action == "switchover" {
		sched := ""
		if scheduled != nil {
			sched = *scheduled
		} else if !force {
			if sched, err = a.prompt("When should the switchover take place (e.g. "+a.nextHour()+" ) ", ptr("now")); err != nil {
				return err
			}
		}
		if at, err = parseScheduled(sched); err != nil {
			return err
		}
		if !at.IsZero() && c.Paused() {
			return fmt.Errorf("Can't schedule switchover in the paused state")
		}
	}

	body := map[string]any{}
	if cand != "" {
		body["candidate"] = cand
	}
	if action == "switchover" {
		body["leader"] = fromLeader
	}
	atStr := ""
	if !at.IsZero() {
		atStr = dcs.FormatPyTime(at)
		body["scheduled_at"] = atStr
	}

	if !force {
		demote := ""
		if clusterLeader != "" {
			demote = ", demoting current leader " + clusterLeader
		}
		q := fmt.Sprintf("Are you sure you want to %s cluster %s%s?", action, name, demote)
		abort := "Aborting " + action
		if atStr != "" {
			q = fmt.Sprintf("Are you sure you want to schedule switchover of cluster %s at %s%s?", name, atStr, demote)
			abort = "Aborting scheduled " + action
		}
		ok, err := a.confirm(q)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s", abort)
		}
	}

	target := c.LeaderMember()
	if target == nil {
		target = c.Member(cand)
	}
	r, rerr := a.request(ctx, target, http.MethodPost, action, body, a.SwitchoverTimeout)
	if rerr == nil && r.Status == http.StatusNotImplemented && action == "switchover" && strings.Contains(r.text(), "Server does not support this operation") {
		r, rerr = a.request(ctx, target, http.MethodPost, "failover", body, a.SwitchoverTimeout)
	}
	if rerr == nil {
		if r.Status != http.StatusOK && r.Status != http.StatusAccepted {
			result := "failed"
			if strings.Contains(strings.ToLower(r.text()), "status unknown") {
				result = "result unknown"
			}
			a.failure("%s %s, details: %d, %s", titleWord(action), result, r.Status, r.text())
			return errFailed
		}
		if nv, err := a.read(ctx, name, v.group); err == nil {
			v = nv
		}
		a.out("%s %s", a.timestamp(6), r.text())
	} else {
		fmt.Fprintf(a.Stderr, "%v\n", rerr)
		a.out("%s Could not %s using Patroni api, falling back to DCS", a.timestamp(6), action)
		wctx, cancel := context.WithTimeout(ctx, a.EtcdTimeout)
		defer cancel()
		f := &dcs.Failover{Leader: fromLeader, Candidate: cand, ScheduledAt: at}
		if _, err := h.SetFailover(wctx, f, 0); err != nil {
			return err
		}
	}
	a.outputMembers(a.Stdout, v, false, fmtPretty)
	return nil
}

func titleWord(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (a *App) flushCommand() *cobra.Command {
	var (
		role  string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "flush [CLUSTER_NAME] [MEMBER_NAMES...] restart|switchover",
		Short: "Discard scheduled events (restart or switchover)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%s: missing argument restart|switchover", cmd.CommandPath())
			}
			if t := args[len(args)-1]; t != "restart" && t != "switchover" {
				return usageErrorf("invalid target %q: not one of restart, switchover", t)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := checkRole(role)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			target := args[len(args)-1]
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			names, v, err := a.clusterAndMembers(ctx, args[:len(args)-1], group)
			if err != nil {
				return err
			}
			name, h, c := v.name, v.h, v.c
			if target == "restart" {
				members, err := a.getMembers(v, names, role, force, "flush", true)
				if err != nil {
					return err
				}
				failed := false
				for _, m := range members {
					if m.Extra["scheduled_restart"] == nil {
						a.out("No scheduled restart for member %s", m.Name)
						continue
					}
					r, err := a.request(ctx, m, http.MethodDelete, "restart", nil, 0)
					if !a.checkResponse(r, err, m.Name, "flush scheduled restart", false) {
						failed = true
					}
				}
				if failed {
					return errFailed
				}
				return nil
			}
			f := c.FailoverRequest
			if f == nil || f.ScheduledAt.IsZero() {
				a.out("No pending scheduled switchover")
				return nil
			}
			for _, m := range membersLeaderFirst(c) {
				r, err := a.request(ctx, m, http.MethodDelete, "switchover", nil, 0)
				if err != nil {
					fmt.Fprintf(a.Stderr, "Member %s is not accessible: %v\n", m.Name, err)
					continue
				}
				switch r.Status {
				case http.StatusOK:
					a.out("Success: %s", r.text())
					return nil
				case http.StatusNotFound:
					a.failure("Failed: %s", r.text())
					return errFailed
				}
				a.failure("Failed: member=%s, status_code=%d, (%s)", m.Name, r.Status, r.text())
			}
			a.out("%s Could not find any accessible member of cluster %s", a.timestamp(6), name)
			wctx, cancel := context.WithTimeout(ctx, a.EtcdTimeout)
			defer cancel()
			ok, err := h.SetFailover(wctx, nil, c.FailoverRevision)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("the failover key changed meanwhile; not cleared")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&role, "role", "r", "any", "flush only members with this role: "+strings.Join(roleChoices, ", "))
	cmd.Flags().BoolVar(&force, "force", false, "do not ask for confirmation at any point")
	addGroupFlag(cmd, false)
	return cmd
}

func (a *App) pauseCommand(pause bool) *cobra.Command {
	var wait bool
	use, short := "pause", "Disable auto failover (maintenance mode)"
	if !pause {
		use, short = "resume", "Resume auto failover"
	}
	cmd := &cobra.Command{
		Use:   use + " [CLUSTER_NAME]",
		Short: short,
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, err := a.groupOption(cmd, true)
			if err != nil {
				return err
			}
			return a.togglePause(cmd.Context(), args, group, pause, wait)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the new state is applied on all nodes")
	addGroupFlag(cmd, true)
	return cmd
}

func pauseWords(pause bool) (verb, done string) {
	if pause {
		return "pause", "paused"
	}
	return "resume", "resumed"
}

func (a *App) togglePause(ctx context.Context, args []string, group *int, pause, wait bool) error {
	name, err := a.clusterName(args)
	if err != nil {
		return err
	}
	v, err := a.read(ctx, name, group)
	if err != nil {
		return err
	}
	c := v.c
	if c.Paused() == pause {
		if pause {
			return fmt.Errorf("Cluster is already paused")
		}
		return fmt.Errorf("Cluster is not paused")
	}
	verb, done := pauseWords(pause)
	var value any // null removes the key (resume)
	if pause {
		value = true
	}
	for _, m := range membersLeaderFirst(c) {
		r, err := a.request(ctx, m, http.MethodPatch, "config", map[string]any{"pause": value}, 0)
		if err != nil {
			fmt.Fprintf(a.Stderr, "Member %s is not accessible: %v\n", m.Name, err)
			continue
		}
		if r.Status != http.StatusOK {
			a.failure("Failed: %s cluster management status code=%d, (%s)", verb, r.Status, r.text())
			return errFailed
		}
		if wait {
			return a.waitPause(ctx, c, pause)
		}
		a.out("Success: cluster management is %s", done)
		return nil
	}
	return fmt.Errorf("Can not find accessible cluster member")
}

// waitPause polls every member's GET /patroni until all report the new
// pause state, for up to loop_wait + 1 seconds.
func (a *App) waitPause(ctx context.Context, c *dcs.Cluster, pause bool) error {
	verb, done := pauseWords(pause)
	a.out("'%s' request sent, waiting until it is recognized by all nodes", verb)
	members := membersLeaderFirst(c)
	limit := time.Duration(loopWait(c)+1) * time.Second
	deadline := time.Now().Add(limit)
	for {
		var remaining []string
		for _, m := range members {
			data, err := a.getJSON(ctx, m, "patroni")
			if err != nil || truthy(data["pause"]) != pause {
				remaining = append(remaining, m.Name)
			}
		}
		if len(remaining) == 0 {
			a.out("Success: cluster management is %s", done)
			return nil
		}
		if time.Now().After(deadline) {
			a.failure("%s members didn't recognize pause state after %d seconds", strings.Join(remaining, ", "), int(limit/time.Second)-1)
			return errFailed
		}
		if err := sleep(ctx, min(a.PollInterval, time.Second)); err != nil {
			return err
		}
	}
}
