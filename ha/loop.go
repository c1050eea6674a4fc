package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
	"github.com/pgwarden/pgwarden/status"
)

// DCS is what the loop needs of the cluster state store.
type DCS interface {
	RefreshLease(ctx context.Context) (bool, error)
	LeaseID() int64
	SetTTL(ttl time.Duration)
	Snapshot(ctx context.Context) (*dcs.Cluster, error)
	TouchMember(ctx context.Context, m dcs.Member) error
	AcquireLeader(ctx context.Context) (bool, error)
	ReclaimLeader(ctx context.Context) (bool, error)
	DeleteLeader(ctx context.Context) (bool, error)
	Initialize(ctx context.Context, sysid string, create bool) (bool, error)
	CancelInitialization(ctx context.Context) error
	SetConfig(ctx context.Context, cfg map[string]any, prevRevision int64) (bool, error)
	WriteStatus(ctx context.Context, s dcs.Status) error
	Watch(ctx context.Context) <-chan struct{}
	SetFailover(ctx context.Context, f *dcs.Failover, prevRevision int64) (bool, error)
	ReleaseLeader(ctx context.Context, optime int64) (bool, error)
	SetHistory(ctx context.Context, entries []dcs.HistoryEntry, prevRevision int64) (bool, error)
	SetSync(ctx context.Context, s dcs.SyncState, prevRevision int64) (bool, error)
}

// Postgres is what the loop needs of the local instance.
type Postgres interface {
	DataDirEmpty() (bool, error)
	Initdb(ctx context.Context) error
	CreateRoles(ctx context.Context) error
	Basebackup(ctx context.Context, from postgres.ConnInfo) error
	WriteConfig(standby bool, upstream *postgres.ConnInfo) error
	Start(ctx context.Context, timeout time.Duration) error
	Stop(ctx context.Context, mode string, timeout time.Duration) error
	IsRunning() bool
	Observe(ctx context.Context) (postgres.State, error)
	Promote(ctx context.Context, timeout time.Duration) error
	Follow(ctx context.Context, upstream postgres.ConnInfo) (bool, error)
	ControlData() (postgres.ControlData, error)
	MoveAside() (string, error)
	TimelineSwitchpoint(ctx context.Context, upstream postgres.ConnInfo, tli int) (int64, bool, error)
	Reload(ctx context.Context) error
	Checkpoint(ctx context.Context) error
	SetParameters(params map[string]string) error
	RemoveDataDir() error
	HistoryFile(ctx context.Context) ([]postgres.TimelineHistoryLine, error)
	ReplicationSlots(ctx context.Context) ([]postgres.Slot, error)
	CreatePhysicalSlot(ctx context.Context, name string, reserveWAL bool) error
	DropSlot(ctx context.Context, name string) error
	SetPrimarySlotName(name string)
	SetSynchronousStandbyNames(ctx context.Context, value string) error
	Rewind(ctx context.Context, source postgres.ConnInfo) error
	CanRewind() (bool, string)
	LastLogLine(after string, needles ...string) (string, error)
}

// Config is the loop's fixed configuration.
type Config struct {
	Name               string
	Scope              string
	Version            string
	ConnURL            string // postgres://host:port/postgres
	APIURL             string // http://host:port/patroni
	Tags               config.Tags
	Bootstrap          config.Dynamic // bootstrap.dcs: used until the config key exists, and written to it
	StartTimeout       time.Duration  // pg_ctl start wait (default 60s)
	MaxPrimaryRestarts int            // default 3
	// Fence, when set, is a watchdog process told every leader deadline.
	Fence Fence
	// LocalParameters are postgresql.parameters from the YAML file; they
	// override the dynamic configuration's.
	LocalParameters map[string]string
	// UsePgRewind and UseSlots, when set, override the dynamic
	// configuration's postgresql.use_pg_rewind and use_slots.
	UsePgRewind, UseSlots *bool
	// RemoveOnRewindFailure and RemoveOnDiverged are the local
	// postgresql.remove_data_directory_on_rewind_failure and
	// ..._on_diverged_timelines.
	RemoveOnRewindFailure, RemoveOnDiverged bool
}

// Loop runs the HA cycle for one member.
type Loop struct {
	cfg   Config
	dcs   DCS
	pg    Postgres
	board *status.Board
	log   *slog.Logger
	now   func() time.Time
	http  *http.Client

	mem          Memory
	renewedAt    time.Time // start of the last successful lease renewal
	dcsLastSeen  time.Time
	cluster      *dcs.Cluster
	settings     Settings
	lastPlan     string
	lastDCSErr   string
	guard        *leaseGuard
	wake         chan struct{}
	retrySoon    bool
	reloadReq    atomic.Pointer[reloadRequest]
	badConfigRev int64 // config key revision last reported as invalid
	ops          chan opRequest
	wakeAt       time.Time         // from the last plan: look again no later than this
	params       map[string]string // PostgreSQL parameters last handed to the instance
	paused       bool              // the last config read said pause: true
	slotName     string            // primary_slot_name handed to the instance
	slotSeen     map[string]time.Time
	lastLeader   string // the last leader key holder seen
}

type reloadRequest struct {
	tags   config.Tags
	params map[string]string
}

// New builds a loop. board receives the status after every cycle.
func New(cfg Config, d DCS, pg Postgres, board *status.Board, log *slog.Logger) *Loop {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.MaxPrimaryRestarts == 0 {
		cfg.MaxPrimaryRestarts = 3
	}
	l := &Loop{cfg: cfg, dcs: d, pg: pg, board: board, log: log, now: time.Now,
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		wake: make(chan struct{}, 1), ops: make(chan opRequest)}
	l.settings = l.settingsFrom(nil)
	l.params = l.wantParameters() // what the instance was built with
	if l.settings.UseSlots {
		l.slotName = postgres.SlotName(cfg.Name)
		pg.SetPrimarySlotName(l.slotName)
	}
	l.guard = newLeaseGuard(l.fence, cfg.Fence)
	return l
}

// Wake makes the loop run a cycle at once.
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run cycles until ctx is cancelled, then shuts down gracefully: stops
// PostgreSQL cleanly and gives up the leader key so a replica takes over
// at once.
func (l *Loop) Run(ctx context.Context) error {
	watchCtx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	events := l.dcs.Watch(watchCtx)
	go l.watchPostgres(watchCtx)

	for {
		l.cycle(ctx)
		wait := l.settings.LoopWait
		if l.retrySoon {
			wait = min(wait, time.Second)
		}
		if !l.wakeAt.IsZero() {
			wait = max(min(wait, l.wakeAt.Sub(l.now())), 0)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			l.shutdown()
			return nil
		case <-events:
		case <-l.wake:
		case req := <-l.ops:
			l.serveOps(ctx, req)
		case <-timer.C:
		}
		timer.Stop()
	}
}

// watchPostgres notices within a fraction of a second that the postmaster
// went away, instead of at the next loop tick.
func (l *Loop) watchPostgres(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	prev := l.pg.IsRunning()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := l.pg.IsRunning()
		if prev && !cur {
			l.Wake()
		}
		prev = cur
	}
}

func (l *Loop) opTimeout() time.Duration {
	return max(time.Second, min(l.settings.RetryTimeout, l.settings.TTL/3))
}

// Reload asks the loop to apply new tags and local PostgreSQL parameters
// (postgresql.parameters of the YAML file) at the start of the next
// cycle, which it runs at once.
func (l *Loop) Reload(tags config.Tags, localParams map[string]string) {
	l.reloadReq.Store(&reloadRequest{tags: tags, params: localParams})
	l.Wake()
}

func (l *Loop) applyReload(ctx context.Context) {
	r := l.reloadReq.Swap(nil)
	if r == nil {
		return
	}
	l.cfg.Tags = r.tags
	l.cfg.LocalParameters = r.params
	l.settings.NoFailover, l.settings.CloneFrom = r.tags.NoFailover, r.tags.CloneFrom
	l.applyParameters(ctx, true)
}

// applyParameters hands PostgreSQL the dynamic parameters overlaid by the
// local ones, and when they changed (or force) rewrites its configuration
// and reloads it. Parameters that need a restart then show as
// pending_restart.
func (l *Loop) applyParameters(ctx context.Context, force bool) {
	want := l.wantParameters()
	changed := !maps.Equal(want, l.params)
	if !changed && !force {
		return
	}
	l.params = want // refused or not, do not retry every cycle
	if err := l.pg.SetParameters(want); err != nil {
		l.log.Error("the PostgreSQL parameters from the configuration are refused; keeping the previous ones", "err", err)
		return
	}
	if !l.pg.IsRunning() {
		return // written at the next start
	}
	st, err := l.pg.Observe(ctx)
	if err != nil {
		l.log.Warn("applying parameters: observing PostgreSQL", "err", err)
		return
	}
	if err := l.pg.WriteConfig(st.InRecovery, l.upstreamInfo()); err != nil {
		l.log.Error("applying parameters: writing PostgreSQL configuration", "err", err)
		return
	}
	if err := l.pg.Reload(ctx); err != nil {
		l.log.Error("applying parameters: reloading PostgreSQL", "err", err)
		return
	}
	if changed {
		l.log.Info("PostgreSQL parameters changed: configuration rewritten and reloaded")
	}
}

// wantParameters: the dynamic configuration's postgresql.parameters (the
// config key, or bootstrap.dcs before it exists) overlaid by the local ones.
func (l *Loop) wantParameters() map[string]string {
	dyn := l.cfg.Bootstrap
	if l.cluster != nil && l.cluster.Config != nil {
		if d, err := config.DynamicFromMap(l.cluster.Config); err == nil {
			dyn = d
		}
	}
	want := make(map[string]string, len(dyn.Parameters)+len(l.cfg.LocalParameters))
	for k, v := range dyn.Parameters {
		want[k] = v
	}
	for k, v := range l.cfg.LocalParameters {
		want[k] = v
	}
	return want
}

func (l *Loop) cycle(ctx context.Context) {
	l.retrySoon = false
	l.applyReload(ctx)
	var p Plan
	var obs Observation
	for round := 0; round < 3; round++ {
		obs = l.observe(ctx)
		p = Decide(obs)
		if s := p.String(); s != l.lastPlan {
			l.log.Info("decision", "plan", s)
			l.lastPlan = s
		}
		if len(p.Actions) == 0 {
			break
		}
		l.publish(obs, p.State)
		reobserve := l.execute(ctx, p, obs)
		if !reobserve {
			obs = l.observe(ctx)
			break
		}
	}
	l.wakeAt = p.WakeAt
	if p.StayStopped && l.mem.StayStopped == "" {
		l.mem.StayStopped, l.mem.StayStoppedState = p.Reason, p.State
		l.log.Error("PostgreSQL stays stopped", "reason", p.Reason)
	}
	l.afterCycle(ctx, obs, p)
}

func (l *Loop) observe(ctx context.Context) Observation {
	o := Observation{Name: l.cfg.Name, Memory: l.mem}
	opCtx, cancel := context.WithTimeout(ctx, l.opTimeout())
	start := l.now()
	newLease, err := l.dcs.RefreshLease(opCtx)
	cancel()
	if err == nil {
		l.renewedAt = start
		if newLease {
			l.log.Info("granted a new etcd lease", "lease", fmt.Sprintf("%x", l.dcs.LeaseID()))
		}
	}
	var cluster *dcs.Cluster
	if err == nil {
		opCtx, cancel = context.WithTimeout(ctx, l.opTimeout())
		cluster, err = l.dcs.Snapshot(opCtx)
		cancel()
	}
	if err != nil {
		if msg := err.Error(); msg != l.lastDCSErr {
			l.log.Warn("etcd is not answering", "err", err)
			l.lastDCSErr = msg
		}
		l.retrySoon = true
	} else {
		if l.lastDCSErr != "" {
			l.log.Info("etcd answers again")
			l.lastDCSErr = ""
		}
		l.dcsLastSeen = time.Now()
		l.cluster = cluster
		l.applySettings(cluster)
		l.paused = cluster.Paused()
		l.applyParameters(ctx, false)
	}
	o.Cluster = cluster
	o.Paused = l.paused
	o.LeaseID = l.dcs.LeaseID()
	o.Settings = l.settings
	if !l.renewedAt.IsZero() {
		o.LeaderUntil = l.renewedAt.Add(l.settings.TTL - safetyMargin(l.settings.TTL))
	}

	pgCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	st, err := l.pg.Observe(pgCtx)
	cancel()
	if err != nil {
		l.log.Debug("observing PostgreSQL", "err", err)
	}
	o.PG = st
	if st.Running && st.Accepting && !st.InRecovery {
		slotCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		slots, err := l.pg.ReplicationSlots(slotCtx)
		cancel()
		if err == nil {
			o.Slots, o.SlotsKnown = slots, true
		}
	}
	o.RetainSlots = l.retainedSlots()
	if st.Running && st.InRecovery && !st.Streaming && !l.mem.NotStreamingSince.IsZero() && l.now().Sub(l.mem.NotStreamingSince) > 2*time.Second {
		if line, err := l.pg.LastLogLine("started streaming WAL", postgres.WALGoneMarker); err == nil {
			o.WALGone = line
		}
	}
	empty, err := l.pg.DataDirEmpty()
	if err != nil {
		l.log.Warn("reading the data directory", "err", err)
	}
	o.DataDirEmpty = empty
	if !st.Running && !empty {
		if cd, err := l.pg.ControlData(); err == nil {
			o.Control = &cd
		}
	}
	o.Now = l.now()

	if cluster != nil {
		if cluster.Leader == nil && st.Running && st.InRecovery && !l.settings.NoFailover {
			o.Peers = askPeers(ctx, l.http, l.cfg.Name, cluster.Members, min(time.Second, l.settings.LoopWait))
			o.Now = l.now()
		}
		if leader := cluster.LeaderMember(); leader != nil && leader.Name != l.cfg.Name && o.Control != nil &&
			leader.Timeline > o.Control.CheckpointTLI && o.Control.State == "shut down" {
			if src := sourceOf(leader); src != nil {
				spCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
				sp, found, err := l.pg.TimelineSwitchpoint(spCtx, src.ConnInfo, o.Control.CheckpointTLI)
				cancel()
				if err != nil {
					l.log.Warn("reading the leader's timeline history", "leader", leader.Name, "err", err)
				} else if found {
					o.Switchpoint, o.SwitchpointKnown = sp, true
				}
			}
		}
	}
	return o
}

// safetyMargin is how long before the etcd lease can expire that a
// primary without a renewal stops accepting writes.
func safetyMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/5, time.Second), 5*time.Second)
}

func (l *Loop) settingsFrom(c *dcs.Cluster) Settings {
	dyn := l.cfg.Bootstrap
	if c != nil && c.Config != nil {
		if d, err := config.DynamicFromMap(c.Config); err == nil {
			dyn = d
		} else if l.log != nil && c.ConfigRevision != l.badConfigRev {
			l.badConfigRev = c.ConfigRevision
			l.log.Warn("ignoring the dynamic configuration in etcd; using bootstrap.dcs", "err", err)
		}
	}
	s := Settings{
		TTL:                  dyn.TTL,
		LoopWait:             dyn.LoopWait,
		RetryTimeout:         dyn.RetryTimeout,
		MaximumLagOnFailover: dyn.MaximumLagOnFailover,
		NoFailover:           l.cfg.Tags.NoFailover,
		CloneFrom:            l.cfg.Tags.CloneFrom,
		MaxPrimaryRestarts:   l.cfg.MaxPrimaryRestarts,
		StreamingGrace:       max(dyn.TTL, 10*time.Second),

		SynchronousMode:       dyn.SynchronousMode,
		SynchronousModeStrict: dyn.SynchronousMode && dyn.SynchronousModeStrict,
		SynchronousNodeCount:  max(dyn.SynchronousNodeCount, 1),
		UseSlots:              dyn.UseSlots,
		UsePgRewind:           dyn.UsePgRewind,
		RemoveOnRewindFailure: l.cfg.RemoveOnRewindFailure,
		RemoveOnDiverged:      l.cfg.RemoveOnDiverged,
		MemberSlotsTTL:        dyn.MemberSlotsTTL,
	}
	if l.cfg.UsePgRewind != nil {
		s.UsePgRewind = *l.cfg.UsePgRewind
	}
	if l.cfg.UseSlots != nil {
		s.UseSlots = *l.cfg.UseSlots
	}
	for name, ps := range dyn.Slots {
		if ps.Type == "physical" {
			s.PermanentSlots = append(s.PermanentSlots, name)
		}
	}
	sort.Strings(s.PermanentSlots)
	return s
}

func (l *Loop) applySettings(c *dcs.Cluster) {
	s := l.settingsFrom(c)
	if s.TTL != l.settings.TTL {
		l.log.Info("ttl changed", "from", l.settings.TTL, "to", s.TTL)
		l.dcs.SetTTL(s.TTL)
	}
	l.settings = s
	l.applySlotName()
}

// applySlotName hands the instance the primary_slot_name a standby uses
// (written at the next WriteConfig; a change also forces one).
func (l *Loop) applySlotName() {
	name := ""
	if l.settings.UseSlots {
		name = postgres.SlotName(l.cfg.Name)
	}
	if name == l.slotName {
		return
	}
	first := l.slotName == "" && !l.settings.UseSlots
	l.slotName = name
	l.pg.SetPrimarySlotName(name)
	if !first {
		l.params = nil // rewrite and reload at the next applyParameters
	}
}

// fence runs on the guard's timer: the leader lease was not renewed in
// time, so PostgreSQL must stop accepting writes before it can expire.
func (l *Loop) fence(deadline time.Time) {
	if !l.pg.IsRunning() {
		return
	}
	l.log.Error("leader lease not renewed in time: stopping PostgreSQL at once so no two primaries accept writes",
		"deadline_passed_by", l.now().Sub(deadline).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.pg.Stop(ctx, "immediate", 20*time.Second); err != nil {
		l.log.Error("stopping PostgreSQL after the lease ran out", "err", err)
	}
	l.Wake()
}

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
		if err := l.pg.Promote(ctx, 60*time.Second); err != nil {
			return false, fmt.Errorf("promoting: %w", err)
		}
		l.log.Warn("role change: promoted to primary", "reason", reason, "timeline_before", o.PG.Timeline, "wal", dcs.FormatLSN(o.PG.WALPosition))
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
			l.mem.StartFailures++
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

// shutdown stops PostgreSQL cleanly, then gives up the leader key so the
// replicas race at once instead of after the ttl. In maintenance mode it
// leaves PostgreSQL running and the leader key to expire, as Patroni does.
func (l *Loop) shutdown() {
	if l.paused {
		l.log.Info("shutting down in maintenance mode: PostgreSQL is left running")
		l.guard.Disarm()
		return
	}
	l.log.Info("shutting down: stopping PostgreSQL")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	wasLeader := l.mem.WasLeader
	if err := l.pg.Stop(ctx, "fast", 60*time.Second); err != nil {
		l.log.Error("stopping PostgreSQL", "err", err)
	}
	l.guard.Disarm()
	if wasLeader {
		c, cancel := context.WithTimeout(ctx, l.opTimeout())
		defer cancel()
		if ok, err := l.dcs.DeleteLeader(c); err != nil {
			l.log.Error("releasing the leader key", "err", err)
		} else if ok {
			l.log.Warn("role change: released the leader key on shutdown")
		}
	}
	obs := Observation{Name: l.cfg.Name, Cluster: l.cluster, LeaseID: l.dcs.LeaseID()}
	if l.cluster != nil && obs.LeaseID != 0 {
		c, cancel := context.WithTimeout(ctx, l.opTimeout())
		defer cancel()
		_ = l.dcs.TouchMember(c, l.memberValue(obs, "stopped"))
	}
	l.publishState(obs, "stopped", false)
}
