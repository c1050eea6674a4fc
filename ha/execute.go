package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// This file holds the executor: how each action of a plan is performed.

// execute performs the plan's actions in order, stopping at the first
// failure, and reports whether the world changed so that the loop should
// observe and decide again now.
func (l *Loop) execute(ctx context.Context, p Plan, o Observation) bool {
	changed := false
	for _, a := range p.Actions {
		again, err := l.perform(ctx, a, o, p.Reason)
		if err != nil {
			l.log.Error("action failed", "action", a.String(), "err", err)
			l.retrySoon = true
			return false
		}
		changed = changed || again
	}
	return changed
}

func (l *Loop) dcsCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.opTimeout())
}

func (l *Loop) perform(ctx context.Context, a Action, o Observation, reason string) (bool, error) {
	switch a.Kind {
	case Bootstrap:
		return l.bootstrap(ctx)
	case Clone, Reclone:
		if a.Kind == Reclone {
			if l.pg.IsRunning() {
				if err := l.pg.Stop(ctx, "fast", 60*time.Second); err != nil {
					return false, err
				}
			}
			if err := l.pg.RemoveDataDir(); err != nil {
				return false, fmt.Errorf("removing the data directory to clone it again: %w", err)
			}
			l.log.Warn("data directory removed to clone it again (allowed by remove_data_directory_on_*)", "reason", reason)
		}
		if err := l.pg.Basebackup(ctx, a.Source.ConnInfo); err != nil {
			return false, fmt.Errorf("cloning from %s: %w", a.Source.Name, err)
		}
		l.standbyTLI = 0
		l.log.Info("cloned data directory", "from", a.Source.Name)
		l.mem.RewindFailed, l.mem.Rewound, l.mem.StartFailures = "", false, 0
		if err := l.pg.Start(ctx, l.cfg.StartTimeout); err != nil {
			return false, err
		}
		l.mem.Upstream = upstreamKey(a.Source)
		l.mem.NotStreamingSince = time.Time{}
		return true, nil
	case AcquireLeader:
		c, cancel := l.dcsCtx(ctx)
		defer cancel()
		ok, err := l.dcs.AcquireLeader(c)
		if err != nil {
			return false, err
		}
		if !ok {
			l.log.Info("lost the leader race")
			return true, nil
		}
		l.log.Info("took the leader key", "reason", reason)
		l.mem.WasLeader = true
		// From now on PostgreSQL may become writable (a promotion follows):
		// it must stop when the lease can no longer be certain.
		l.guard.Arm(o.LeaderUntil, l.now())
		return true, nil
	case ReclaimLeader:
		c, cancel := l.dcsCtx(ctx)
		defer cancel()
		ok, err := l.dcs.ReclaimLeader(c)
		if err != nil {
			return false, err
		}
		if ok {
			l.mem.WasLeader = true
			l.log.Info("rebound the leader key to our lease")
		}
		return true, nil
	case ReleaseLeader:
		c, cancel := l.dcsCtx(ctx)
		defer cancel()
		if _, err := l.dcs.DeleteLeader(c); err != nil {
			return false, err
		}
		l.log.Warn("released the leader key")
		l.mem.WasLeader = false
		l.mem.PrimaryRestarts = 0
		l.guard.Disarm()
		return true, nil
	case WriteInitialize:
		return true, l.writeInitialize(ctx, o.PG.SystemID)
	case Promote:
		l.beforePromote(ctx, o)
		// A promotion can take a while: renew the lease first so that it
		// has a whole lease to finish in, and keep the guard armed.
		c, cancel := l.dcsCtx(ctx)
		start := l.now()
		fresh, err := l.dcs.RefreshLease(c)
		cancel()
		if err != nil {
			return false, fmt.Errorf("renewing the lease before promoting: %w", err)
		}
		if fresh {
			// The old lease (and the leader key bound to it) is gone.
			l.guard.Disarm()
			return true, nil
		}
		l.renewedAt = start
		l.guard.Arm(start.Add(l.settings.TTL-safetyMargin(l.settings.TTL)), l.now())
		l.citusNotify(ctx, citusBeforePromote)
		promoteStart := l.now()
		if err := l.pg.Promote(ctx, 60*time.Second); err != nil {
			return false, fmt.Errorf("promoting: %w", err)
		}
		took := l.now().Sub(promoteStart)
		l.citusNotify(ctx, citusAfterPromote)
		l.log.Warn("role change: promoted to primary", "reason", reason, "timeline_before", o.PG.Timeline, "wal", dcs.FormatLSN(o.PG.WALPosition),
			"promote_took", took.Round(time.Millisecond))
		l.mem.Upstream = ""
		l.mem.NotStreamingSince = time.Time{}
		return true, nil
	case StartPrimary:
		l.mem.PrimaryRestarts++
		if err := l.pg.WriteConfig(false, nil); err != nil {
			return false, err
		}
		if err := l.pg.Start(ctx, l.cfg.StartTimeout); err != nil {
			return false, err
		}
		return true, nil
	case StartStandby:
		var up *postgres.ConnInfo
		if a.Source != nil {
			up = &a.Source.ConnInfo
		}
		if err := l.pg.WriteConfig(true, up); err != nil {
			return false, err
		}
		if err := l.pg.Start(ctx, l.cfg.StartTimeout); err != nil {
			if dataProblem(err) {
				l.mem.StartFailures++
			}
			return false, err
		}
		l.mem.StartFailures = 0
		l.mem.Upstream = upstreamKey(a.Source)
		l.mem.NotStreamingSince = time.Time{}
		if a.Source != nil {
			l.log.Info("role change: started as standby", "leader", a.Source.Name, "reason", reason)
		}
		return true, nil
	case Follow:
		restarted, err := l.pg.Follow(ctx, a.Source.ConnInfo)
		if err != nil {
			return false, err
		}
		l.mem.Upstream = upstreamKey(a.Source)
		l.mem.NotStreamingSince = time.Time{}
		l.log.Info("role change: following leader", "leader", a.Source.Name, "restarted", restarted, "reason", reason)
		return false, nil
	case Stop:
		wasPrimary := o.PG.Running && !o.PG.InRecovery
		if err := l.pg.Stop(ctx, a.Mode, 60*time.Second); err != nil {
			return false, err
		}
		if wasPrimary {
			l.log.Warn("role change: demoted (PostgreSQL stopped)", "mode", a.Mode, "reason", reason)
		}
		l.mem.WasLeader = false
		l.mem.Upstream = ""
		l.guard.Disarm()
		return true, nil
	case Demote:
		if err := l.demote(ctx, o, reason); err != nil {
			return false, err
		}
		return true, nil
	case ClearFailover:
		c, cancel := l.dcsCtx(ctx)
		defer cancel()
		if _, err := l.dcs.SetFailover(c, nil, a.Revision); err != nil {
			return false, err
		}
		l.log.Info("cleared the failover key", "reason", reason)
		return true, nil
	case Restart:
		r := l.mem.ScheduledRestart
		l.mem.ScheduledRestart = nil
		if r == nil {
			return true, nil
		}
		ok, msg := l.restartNow(ctx, *r, true)
		if !ok {
			l.log.Warn("scheduled restart not done", "why", msg)
		}
		return true, nil
	case Reinitialize:
		return true, l.reinitialize(ctx, a.Source)
	case Rewind:
		return true, l.rewind(ctx, a.Source)
	case CreateSlots:
		for _, n := range a.Names {
			if err := l.pg.CreatePhysicalSlot(ctx, n, true); err != nil {
				return false, err
			}
		}
		l.log.Info("replication slots created", "slots", a.Names)
		return false, nil
	case DropSlots:
		for _, n := range a.Names {
			if err := l.pg.DropSlot(ctx, n); err != nil {
				return false, err
			}
		}
		l.log.Info("replication slots dropped", "slots", a.Names, "reason", "no member needs them")
		return false, nil
	case SetSyncKey:
		c, cancel := l.dcsCtx(ctx)
		defer cancel()
		ok, err := l.dcs.SetSync(c, *a.Sync, a.Revision)
		if err != nil {
			return false, err
		}
		if ok {
			l.log.Info("sync key updated", "sync_standby", a.Sync.Standbys)
		}
		return true, nil
	case SetSyncNames:
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := l.pg.SetSynchronousStandbyNames(c, a.Value); err != nil {
			return false, err
		}
		l.mem.SSN, l.mem.SSNKnown = a.Value, true
		l.log.Info("synchronous_standby_names applied", "value", a.Value)
		return true, nil
	}
	return false, fmt.Errorf("unknown action %v", a)
}

// The Citus events (citus.BeforeDemote, ...), named here so that ha does
// not import citus.
const (
	citusBeforeDemote  = "before_demote"
	citusBeforePromote = "before_promote"
	citusAfterPromote  = "after_promote"
)

// citusNotify tells the coordinator's leader that this worker group's
// primary changes, so that it holds the group's distributed statements
// (before_*) and lets them go to the new primary (after_promote). It never
// blocks a promotion for long: without an answer in time the coordinator
// catches up from the DCS.
func (l *Loop) citusNotify(ctx context.Context, event string) {
	if l.cfg.Citus == nil || l.cfg.CitusGroup == 0 {
		return
	}
	wait := 2 * time.Second
	if event == citusBeforeDemote {
		// The coordinator may wait for running statements before it holds
		// the group: allow it a part of the lease, which is still ours.
		wait = max(wait, l.settings.TTL/3)
	}
	c, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := l.now()
	err := l.cfg.Citus.Notify(c, event, l.settings.TTL, l.settings.RetryTimeout)
	if err != nil {
		l.log.Warn("citus: the coordinator was not told", "event", event, "err", err)
		return
	}
	l.log.Info("citus: coordinator told", "event", event, "took", l.now().Sub(start).Round(time.Millisecond))
}

// beforePromote prepares a standby that is about to become primary: the
// slots of the other members exist before they follow it (a standby can
// hold physical slots), and in strict synchronous mode commits wait from
// the first one on.
func (l *Loop) beforePromote(ctx context.Context, o Observation) {
	if l.settings.UseSlots && o.Cluster != nil {
		// Also the members the previous leader still kept a slot for, the
		// previous leader first of all: its member key expired with its
		// lease, and it rewinds from us when it comes back.
		if st := o.Cluster.Status; st != nil {
			o.RetainSlots = append(o.RetainSlots, st.RetainSlots...)
		}
		if o.Cluster.Leader == nil && l.lastLeader != "" {
			o.RetainSlots = append(o.RetainSlots, l.lastLeader)
		}
		want := wantedSlots(o)
		for n := range want {
			if err := l.pg.CreatePhysicalSlot(ctx, n, true); err != nil {
				l.log.Warn("creating a replication slot before promotion", "slot", n, "err", err)
			}
		}
	}
	if l.settings.SynchronousMode {
		v := ""
		if l.settings.SynchronousModeStrict {
			v = postgres.SyncStandbyNames(1, []string{postgres.SyncStrictPlaceholder})
		}
		if err := l.pg.WriteConfig(true, l.upstreamInfo()); err == nil {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := l.pg.SetSynchronousStandbyNames(c, v); err != nil {
				l.log.Warn("setting synchronous_standby_names before promotion", "err", err)
			} else {
				l.mem.SSN, l.mem.SSNKnown = v, true
			}
			cancel()
		}
	}
}

// rewind brings a diverged former primary (or a standby that cannot
// follow the leader's timeline) back with pg_rewind, then starts it as a
// standby of src.
func (l *Loop) rewind(ctx context.Context, src *Source) error {
	if l.pg.IsRunning() {
		if err := l.pg.Stop(ctx, "fast", 60*time.Second); err != nil {
			return fmt.Errorf("rewind: stopping PostgreSQL: %w", err)
		}
	}
	start := l.now()
	if err := l.pg.Rewind(ctx, src.ConnInfo); err != nil {
		l.mem.RewindFailed = err.Error()
		return fmt.Errorf("pg_rewind from %s: %w", src.Name, err)
	}
	l.standbyTLI = 0
	l.log.Warn("rewound the data directory with pg_rewind", "from", src.Name, "took", l.now().Sub(start).Round(time.Millisecond))
	l.mem.RewindFailed, l.mem.Rewound, l.mem.StartFailures = "", true, 0
	if err := l.pg.WriteConfig(true, &src.ConnInfo); err != nil {
		return err
	}
	if err := l.pg.Start(ctx, l.cfg.StartTimeout); err != nil {
		return err
	}
	l.mem.Upstream = upstreamKey(src)
	l.mem.NotStreamingSince = time.Time{}
	l.log.Info("role change: started as standby after pg_rewind", "leader", src.Name)
	return nil
}

// dataProblem tells a start failure that rewinding or cloning can fix (the
// data directory cannot follow the leader: a timeline it cannot reach, a
// checkpoint or WAL it cannot find) from one it cannot (a port in use, a
// bad setting), which is only retried.
func dataProblem(err error) bool {
	msg := err.Error()
	for _, s := range []string{"timeline", "checkpoint record", "requested WAL segment", "invalid record length",
		"invalid resource manager", "could not locate required checkpoint", "WAL ends before"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// reinitialize removes the data directory and clones it again.
func (l *Loop) reinitialize(ctx context.Context, src *Source) error {
	l.mem.Reinit = false
	l.mem.StayStopped, l.mem.StayStoppedState = "", ""
	l.mem.RewindFailed, l.mem.Rewound, l.mem.StartFailures = "", false, 0
	if l.pg.IsRunning() {
		if err := l.pg.Stop(ctx, "immediate", 60*time.Second); err != nil {
			return fmt.Errorf("reinitialize: stopping PostgreSQL: %w", err)
		}
	}
	if err := l.pg.RemoveDataDir(); err != nil {
		return fmt.Errorf("reinitialize: removing the data directory: %w", err)
	}
	l.standbyTLI = 0
	l.log.Warn("reinitialize: data directory removed; cloning", "from", src.Name)
	if err := l.pg.Basebackup(ctx, src.ConnInfo); err != nil {
		return fmt.Errorf("reinitialize: cloning from %s: %w", src.Name, err)
	}
	if err := l.pg.WriteConfig(true, &src.ConnInfo); err != nil {
		return err
	}
	if err := l.pg.Start(ctx, l.cfg.StartTimeout); err != nil {
		return err
	}
	l.mem.Upstream = upstreamKey(src)
	l.mem.NotStreamingSince = time.Time{}
	l.mem.Demoted = false
	l.log.Info("reinitialize: done, streaming", "from", src.Name)
	return nil
}

func upstreamKey(s *Source) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", s.Host, s.Port)
}

// bootstrap runs the initialize race and, when won, creates the cluster.
// A failure releases the initialize key and keeps the data aside.
func (l *Loop) bootstrap(ctx context.Context) (bool, error) {
	c, cancel := l.dcsCtx(ctx)
	won, err := l.dcs.Initialize(c, "", true)
	cancel()
	if err != nil {
		return false, err
	}
	if !won {
		l.log.Info("another member won the bootstrap race")
		return true, nil
	}
	l.log.Info("won the bootstrap race: running initdb")
	err = l.initNewCluster(ctx)
	if err == nil {
		return true, nil
	}
	_ = l.pg.Stop(ctx, "immediate", 30*time.Second)
	c, cancel = l.dcsCtx(context.Background())
	if cerr := l.dcs.CancelInitialization(c); cerr != nil {
		l.log.Error("cancelling the initialize key after a failed bootstrap", "err", cerr)
	}
	cancel()
	if empty, _ := l.pg.DataDirEmpty(); !empty {
		if moved, merr := l.pg.MoveAside(); merr == nil {
			l.log.Warn("failed bootstrap's data directory moved aside", "path", moved)
		}
	}
	return false, fmt.Errorf("bootstrapping a new cluster: %w", err)
}

func (l *Loop) initNewCluster(ctx context.Context) error {
	if err := l.pg.Initdb(ctx); err != nil {
		return err
	}
	if err := l.pg.Start(ctx, l.cfg.StartTimeout); err != nil {
		return err
	}
	if err := l.pg.CreateRoles(ctx); err != nil {
		return err
	}
	if l.cfg.Citus != nil {
		if err := l.cfg.Citus.Bootstrap(ctx); err != nil {
			return err
		}
		l.log.Info("citus: set up in the new cluster", "group", l.cfg.CitusGroup)
	}
	st, err := l.pg.Observe(ctx)
	if err != nil {
		return err
	}
	// initdb and the start may have taken a good part of the ttl.
	c, cancel := l.dcsCtx(ctx)
	start := l.now()
	_, err = l.dcs.RefreshLease(c)
	cancel()
	if err != nil {
		return err
	}
	l.renewedAt = start
	c, cancel = l.dcsCtx(ctx)
	ok, err := l.dcs.AcquireLeader(c)
	cancel()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the leader key was taken by another member during bootstrap")
	}
	l.mem.WasLeader = true
	l.log.Warn("role change: bootstrapped a new cluster as primary", "system_id", st.SystemID)
	return l.writeInitialize(ctx, st.SystemID)
}

func (l *Loop) writeInitialize(ctx context.Context, sysid string) error {
	if sysid == "" {
		return errors.New("system identifier unknown")
	}
	c, cancel := l.dcsCtx(ctx)
	defer cancel()
	ok, err := l.dcs.Initialize(c, sysid, false)
	if err != nil {
		return err
	}
	if !ok {
		if ok, err = l.dcs.Initialize(c, sysid, true); err != nil {
			return err
		}
		if !ok {
			return errors.New("the initialize key holds another system identifier")
		}
	}
	if l.cluster == nil || l.cluster.ConfigRevision == 0 {
		if _, err := l.dcs.SetConfig(c, l.bootstrapConfig(), 0); err != nil {
			return err
		}
	}
	return nil
}

func (l *Loop) bootstrapConfig() map[string]any {
	if len(l.cfg.Bootstrap.Raw) > 0 {
		return l.cfg.Bootstrap.Raw
	}
	d := l.cfg.Bootstrap
	return map[string]any{
		"ttl":                     int(d.TTL / time.Second),
		"loop_wait":               int(d.LoopWait / time.Second),
		"retry_timeout":           int(d.RetryTimeout / time.Second),
		"maximum_lag_on_failover": d.MaximumLagOnFailover,
	}
}
