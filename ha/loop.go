package ha

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
	ReleaseLeader(ctx context.Context, optime int64, handover *dcs.Failover) (bool, error)
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
	// Citus, when set, makes this member part of a Citus cluster, in
	// CitusGroup (0: the coordinator).
	Citus      Citus
	CitusGroup int
}

// Citus is what the loop needs of the Citus integration.
type Citus interface {
	// AdjustParameters adds what a Citus node needs to the parameters.
	AdjustParameters(params map[string]string)
	// Bootstrap sets Citus up in the primary initdb just made.
	Bootstrap(ctx context.Context) error
	// Notify tells the coordinator group's leader about a worker primary
	// change (citus.BeforeDemote, BeforePromote, AfterPromote); timeout
	// is how long it may hold the group's statements, cooldown
	// citus_update_node's lock_cooldown. A no-op on the coordinator.
	Notify(ctx context.Context, event string, timeout, cooldown time.Duration) error
	// Leading is told after every cycle whether this member leads its
	// group with a writable primary (the coordinator's leader keeps
	// pg_dist_node then).
	Leading(ctx context.Context, leading bool)
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
	standbyTLI   int    // newest timeline this standby was seen on
	citusWarned  bool   // the asynchronous worker group warning was logged
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
	if st.Running && st.InRecovery {
		// Without a running WAL receiver a standby's timeline is read from
		// its last restartpoint, which can be older than the WAL it has:
		// remember the newest one seen.
		if st.Timeline < l.standbyTLI {
			st.Timeline = l.standbyTLI
		}
		l.standbyTLI = st.Timeline
	} else if st.Running {
		l.standbyTLI = 0
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
