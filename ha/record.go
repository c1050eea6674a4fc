package ha

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

// This file holds what the loop records after each cycle: its member
// key, the status and history keys, the slots it keeps, and the status it
// publishes for the REST API.

// retainedSlots: members whose slot the leader keeps though their member
// key is gone, seen within member_slots_ttl.
func (l *Loop) retainedSlots() []string {
	var out []string
	now := l.now()
	for n, seen := range l.slotSeen {
		if now.Sub(seen) < l.settings.MemberSlotsTTL {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// trackSlots records which members the leader saw, seeding from the
// previous leader's retain_slots when this member just became leader.
func (l *Loop) trackSlots(o Observation, leader bool) {
	if !leader {
		l.slotSeen = nil
		return
	}
	now := l.now()
	if l.slotSeen == nil {
		l.slotSeen = map[string]time.Time{}
		if st := o.Cluster.Status; st != nil {
			for _, n := range st.RetainSlots {
				l.slotSeen[n] = now
			}
		}
	}
	for _, m := range o.Cluster.Members {
		l.slotSeen[m.Name] = now
	}
	for n, seen := range l.slotSeen {
		if now.Sub(seen) >= l.settings.MemberSlotsTTL {
			delete(l.slotSeen, n)
			l.log.Info("member gone longer than member_slots_ttl: its slot is no longer kept", "member", n)
		}
	}
}

// afterCycle records the cycle's outcome: member key, status key, the
// lease guard and the published status.
func (l *Loop) afterCycle(ctx context.Context, o Observation, p Plan) {
	leader := o.Cluster != nil && holdsLeader(o)
	if o.Cluster != nil {
		if o.Cluster.Leader != nil {
			l.lastLeader = o.Cluster.Leader.Name
		}
		if o.Cluster.Leader == nil {
			if l.mem.LeaderlessSince.IsZero() {
				l.mem.LeaderlessSince = o.Now
			}
		} else {
			l.mem.LeaderlessSince = time.Time{}
		}
	}
	if o.PG.Running && o.PG.Accepting {
		l.mem.Demoted = false
	}
	if leader && o.Paused {
		// Maintenance mode: nothing fails over, so nothing needs fencing.
		l.mem.WasLeader = true
		l.guard.Disarm()
	} else if leader {
		l.mem.WasLeader = true
		l.guard.Arm(o.LeaderUntil, l.now())
		if o.PG.Running && o.PG.Accepting && !o.PG.InRecovery {
			l.mem.PrimaryRestarts = 0
		}
	} else if o.Cluster != nil {
		// A definite "not leader" from etcd; while etcd is unreachable the
		// guard keeps its deadline.
		l.guard.Disarm()
		if o.Cluster.Leader == nil || o.Cluster.Leader.Name != l.cfg.Name {
			l.mem.WasLeader = false
		}
	}
	if o.PG.Streaming {
		l.mem.Rewound = false
	}
	if o.PG.Running && o.PG.InRecovery && l.mem.Upstream != "" && !o.PG.Streaming {
		if l.mem.NotStreamingSince.IsZero() {
			l.mem.NotStreamingSince = o.Now
		}
	} else {
		l.mem.NotStreamingSince = time.Time{}
	}
	state := memberState(o, p)
	if o.Cluster != nil && o.LeaseID != 0 {
		c, cancel := l.dcsCtx(ctx)
		if err := l.dcs.TouchMember(c, l.memberValue(o, state)); err != nil {
			l.log.Warn("writing our member key", "err", err)
		}
		if o.Cluster != nil {
			l.trackSlots(o, leader && o.PG.Running && !o.PG.InRecovery)
		}
		if leader && o.PG.Running && !o.PG.InRecovery && o.PG.WALPosition > 0 {
			st := dcs.Status{Optime: o.PG.WALPosition, Slots: map[string]int64{}}
			for _, sl := range o.Slots {
				if sl.Type == "physical" {
					st.Slots[sl.Name] = sl.RestartLSN
				}
			}
			if l.settings.UseSlots {
				st.RetainSlots = append(l.retainedSlots(), l.cfg.Name)
				sort.Strings(st.RetainSlots)
			}
			if err := l.dcs.WriteStatus(c, st); err != nil {
				l.log.Warn("writing the status key", "err", err)
			}
			l.recordHistory(c, o)
		}
		cancel()
	}
	if o.Cluster != nil && !leader && l.mem.Reinit && o.Cluster.Leader != nil && o.Cluster.Leader.Name == l.cfg.Name {
		l.mem.Reinit = false
		l.log.Warn("reinitialize dropped: this member became the leader")
	}
	l.publishState(o, state, l.believesLeader(o))
	if l.cfg.Citus != nil {
		l.cfg.Citus.Leading(ctx, leader && o.PG.Running && o.PG.Accepting && !o.PG.InRecovery)
	}
}

// recordHistory adds the timelines this leader's promotion created to the
// history key, read from PostgreSQL's own timeline history file, keeping
// the time and leader of the entries already there.
func (l *Loop) recordHistory(ctx context.Context, o Observation) {
	tl := o.PG.Timeline
	if tl <= 1 {
		return
	}
	known := o.Cluster.HistoryEntries
	for _, h := range known {
		if h.Timeline == tl-1 {
			return
		}
	}
	if o.Cluster.History != nil && known == nil {
		return // garbled: logged by the snapshot; do not overwrite blindly
	}
	lines, err := l.pg.HistoryFile(ctx)
	if err != nil {
		l.log.Warn("reading the timeline history file for the history key", "err", err)
		return
	}
	byTL := make(map[int]dcs.HistoryEntry, len(known))
	for _, h := range known {
		byTL[h.Timeline] = h
	}
	out := make([]dcs.HistoryEntry, 0, len(lines))
	for _, ln := range lines {
		e := dcs.HistoryEntry{Timeline: ln.Timeline, LSN: ln.LSN, Reason: ln.Reason}
		if k, ok := byTL[ln.Timeline]; ok {
			e.Time, e.NewLeader = k.Time, k.NewLeader
		}
		if ln.Timeline == tl-1 {
			e.Time, e.NewLeader = dcs.FormatPyTime(time.Now()), l.cfg.Name
		}
		out = append(out, e)
	}
	if ok, err := l.dcs.SetHistory(ctx, out, o.Cluster.HistoryRevision); err != nil {
		l.log.Warn("writing the history key", "err", err)
	} else if ok {
		l.log.Info("history key updated", "timeline", tl)
	}
}

// believesLeader: the snapshot shows our leader key, or etcd could not be
// read and our last certain leadership has not run out yet (so a short
// etcd blip does not take the primary out of the load balancer; the
// deadline still ends it, in /primary and in the lease guard).
func (l *Loop) believesLeader(o Observation) bool {
	if o.Cluster != nil {
		return holdsLeader(o)
	}
	return l.mem.WasLeader && o.LeaseID != 0 && o.Now.Before(o.LeaderUntil)
}

func memberState(o Observation, p Plan) string {
	switch {
	case o.PG.Running && o.PG.Accepting:
		return "running"
	case o.PG.Running:
		return "starting"
	case p.State != "" && p.State != "promoting" && p.State != "stopping":
		return p.State
	default:
		return "stopped"
	}
}

func roleOf(o Observation) string {
	switch {
	case o.PG.Running && o.PG.Accepting && !o.PG.InRecovery:
		return "primary"
	case o.DataDirEmpty:
		return "uninitialized"
	default:
		return "replica"
	}
}

func (l *Loop) memberValue(o Observation, state string) dcs.Member {
	m := dcs.Member{
		Name:     l.cfg.Name,
		ConnURL:  l.cfg.ConnURL,
		APIURL:   l.cfg.APIURL,
		State:    state,
		Role:     roleOf(o),
		Version:  l.cfg.Version,
		Timeline: o.PG.Timeline,
		Tags:     l.cfg.Tags.Raw,
	}
	m.XLogLocation = o.PG.WALPosition
	if o.PG.Running && o.PG.InRecovery {
		recv, replay := o.PG.ReceivedLSN, o.PG.ReplayedLSN
		m.ReceiveLSN, m.ReplayLSN = &recv, &replay
		if o.PG.Streaming {
			m.ReplicationState = "streaming"
		} else {
			m.ReplicationState = "in archive recovery"
		}
	}
	m.PendingRestart = o.PG.PendingRestart
	if r := l.mem.ScheduledRestart; r != nil {
		sr := map[string]any{"schedule": dcs.FormatPyTime(r.At)}
		if !o.PG.StartTime.IsZero() {
			sr["postmaster_start_time"] = dcs.FormatPyTime(o.PG.StartTime)
		}
		if raw, err := json.Marshal(sr); err == nil {
			m.Extra = map[string]json.RawMessage{"scheduled_restart": raw}
		}
	}
	return m
}

func (l *Loop) publish(o Observation, planState string) {
	state := planState
	if state == "" {
		state = memberState(o, Plan{})
	}
	l.publishState(o, state, l.believesLeader(o))
}

func (l *Loop) publishState(o Observation, state string, leader bool) {
	if l.board == nil {
		return
	}
	l.board.Publish(&status.Node{
		Name:        l.cfg.Name,
		Scope:       l.cfg.Scope,
		Version:     l.cfg.Version,
		State:       state,
		Role:        roleOf(o),
		PG:          o.PG,
		IsLeader:    leader,
		LeaderUntil: o.LeaderUntil,
		Cluster:     l.cluster,
		DCSLastSeen: l.dcsLastSeen,
		Published:   l.now(),
		TTL:         l.settings.TTL,
		MaximumLag:  l.settings.MaximumLagOnFailover,
		Tags:        l.cfg.Tags,
		Paused:      l.paused,

		PendingRestart:   o.PG.PendingRestart,
		ScheduledRestart: l.publishedRestart(),
	})
}

func (l *Loop) publishedRestart() *status.ScheduledRestart {
	r := l.mem.ScheduledRestart
	if r == nil {
		return nil
	}
	return &status.ScheduledRestart{At: r.At, PostmasterStartTime: r.AskedAt, RestartPending: r.RestartPending,
		Role: r.Role, PostgresVersion: r.PostgresVersion}
}
