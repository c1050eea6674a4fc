package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
	"github.com/pgwarden/pgwarden/status"
)

// A simulation of several loops against an in-memory etcd and in-memory
// PostgreSQL instances, driven by a fake clock: the executor's logic
// (not just Decide) under bootstrap, crash and freeze, step by step.

var errDown = errors.New("simulated etcd is unreachable")

type simClock struct{ t time.Time }

func (c *simClock) now() time.Time { return c.t }

// simEtcd is the shared store: keys, leases with expiry on the fake clock.
type simEtcd struct {
	clock  *simClock
	kv     map[string]simKV
	leases map[int64]time.Time // lease id -> expiry
	next   int64
	down   bool
}

type simKV struct {
	val   string
	lease int64
	rev   int64
}

func (s *simEtcd) expire() {
	for id, exp := range s.leases {
		if !s.clock.now().Before(exp) {
			delete(s.leases, id)
			for k, v := range s.kv {
				if v.lease == id {
					delete(s.kv, k)
				}
			}
		}
	}
}

// simDCS is one member's handle on simEtcd.
type simDCS struct {
	s     *simEtcd
	name  string
	ttl   time.Duration
	lease int64
}

func (d *simDCS) check() error {
	if d.s.down {
		return errDown
	}
	d.s.expire()
	return nil
}

func (d *simDCS) RefreshLease(context.Context) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if _, ok := d.s.leases[d.lease]; ok && d.lease != 0 {
		d.s.leases[d.lease] = d.s.clock.now().Add(d.ttl)
		return false, nil
	}
	d.s.next++
	d.lease = d.s.next
	d.s.leases[d.lease] = d.s.clock.now().Add(d.ttl)
	return true, nil
}
func (d *simDCS) LeaseID() int64                        { return d.lease }
func (d *simDCS) SetTTL(ttl time.Duration)              { d.ttl = ttl }
func (d *simDCS) Watch(context.Context) <-chan struct{} { return make(chan struct{}) }

func (d *simDCS) Snapshot(context.Context) (*dcs.Cluster, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	c := &dcs.Cluster{}
	if v, ok := d.s.kv["initialize"]; ok {
		c.Initialized, c.SystemID = true, v.val
	}
	if v, ok := d.s.kv["leader"]; ok {
		c.Leader = &dcs.Leader{Name: v.val, Lease: v.lease}
	}
	for k, v := range d.s.kv {
		if name, ok := strings.CutPrefix(k, "members/"); ok {
			m, err := dcs.ParseMember(name, []byte(v.val))
			if err != nil {
				return nil, err
			}
			c.Members = append(c.Members, m)
		}
	}
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].Name < c.Members[j].Name })
	if v, ok := d.s.kv["config"]; ok {
		c.ConfigRevision = v.rev
		_ = json.Unmarshal([]byte(v.val), &c.Config)
	}
	if v, ok := d.s.kv["failover"]; ok {
		c.FailoverRevision = v.rev
		if f, err := dcs.ParseFailover([]byte(v.val)); err == nil && !f.Empty() {
			f.ModRevision = v.rev
			c.FailoverRequest = &f
		}
	}
	if v, ok := d.s.kv["sync"]; ok {
		c.SyncRevision = v.rev
		if st, err := dcs.ParseSync([]byte(v.val)); err == nil {
			st.ModRevision = v.rev
			c.SyncState = &st
		}
	}
	if v, ok := d.s.kv["history"]; ok {
		c.HistoryRevision = v.rev
		c.History = json.RawMessage(v.val)
		c.HistoryEntries, _ = dcs.ParseHistory([]byte(v.val))
	}
	if v, ok := d.s.kv["status"]; ok {
		var optime int64
		fmt.Sscan(v.val, &optime)
		c.Status = &dcs.Status{Optime: optime}
	}
	return c, nil
}

func (d *simDCS) put(k, v string, lease int64) {
	d.s.kv[k] = simKV{val: v, lease: lease, rev: d.s.kv[k].rev + 1}
}

func (d *simDCS) TouchMember(_ context.Context, m dcs.Member) error {
	if err := d.check(); err != nil {
		return err
	}
	b, err := dcs.MemberJSON(m)
	if err != nil {
		return err
	}
	d.put("members/"+d.name, string(b), d.lease)
	return nil
}

func (d *simDCS) AcquireLeader(context.Context) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if _, ok := d.s.kv["leader"]; ok {
		return false, nil
	}
	d.put("leader", d.name, d.lease)
	return true, nil
}

func (d *simDCS) ReclaimLeader(context.Context) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if v, ok := d.s.kv["leader"]; !ok || v.val != d.name {
		return false, nil
	}
	d.put("leader", d.name, d.lease)
	return true, nil
}

func (d *simDCS) DeleteLeader(context.Context) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if v, ok := d.s.kv["leader"]; ok && v.val == d.name {
		delete(d.s.kv, "leader")
		return true, nil
	}
	return false, nil
}

func (d *simDCS) Initialize(_ context.Context, sysid string, create bool) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	v, ok := d.s.kv["initialize"]
	if create {
		if ok {
			return false, nil
		}
		d.put("initialize", sysid, 0)
		return true, nil
	}
	if !ok || (v.val != "" && v.val != sysid) {
		return false, nil
	}
	d.put("initialize", sysid, 0)
	return true, nil
}

func (d *simDCS) CancelInitialization(context.Context) error {
	if v, ok := d.s.kv["initialize"]; ok && v.val == "" {
		delete(d.s.kv, "initialize")
	}
	return nil
}

func (d *simDCS) SetConfig(_ context.Context, cfg map[string]any, prev int64) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if d.s.kv["config"].rev != prev {
		return false, nil
	}
	b, _ := json.Marshal(cfg)
	d.put("config", string(b), 0)
	return true, nil
}

func (d *simDCS) SetFailover(_ context.Context, f *dcs.Failover, prev int64) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if prev > 0 && d.s.kv["failover"].rev != prev {
		return false, nil
	}
	v := []byte("{}")
	if !f.Empty() {
		v, _ = f.MarshalJSON()
	}
	d.put("failover", string(v), 0)
	return true, nil
}

func (d *simDCS) ReleaseLeader(_ context.Context, optime int64, handover *dcs.Failover) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if v, ok := d.s.kv["leader"]; ok && v.val == d.name {
		d.put("status", fmt.Sprint(optime), 0)
		if !handover.Empty() {
			b, _ := handover.MarshalJSON()
			d.put("failover", string(b), 0)
		}
		delete(d.s.kv, "leader")
		return true, nil
	}
	return false, nil
}

func (d *simDCS) SetSync(_ context.Context, st dcs.SyncState, prev int64) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if d.s.kv["sync"].rev != prev {
		return false, nil
	}
	b, _ := st.MarshalJSON()
	d.put("sync", string(b), 0)
	return true, nil
}

func (d *simDCS) SetHistory(_ context.Context, h []dcs.HistoryEntry, prev int64) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	if d.s.kv["history"].rev != prev {
		return false, nil
	}
	b, _ := dcs.HistoryJSON(h)
	d.put("history", string(b), 0)
	return true, nil
}

func (d *simDCS) WriteStatus(_ context.Context, st dcs.Status) error {
	if err := d.check(); err != nil {
		return err
	}
	d.put("status", fmt.Sprint(st.Optime), 0)
	return nil
}

// simWorld holds every simulated PostgreSQL, so that standbys can copy
// WAL from the instance they stream from.
type simWorld struct {
	mu    sync.Mutex
	nodes map[string]*simPG // by port
	sysid string
}

type simPG struct {
	w        *simWorld
	port     int
	hasData  bool
	running  bool
	recovery bool
	tli      int
	wal      int64
	upstream int // port streamed from, 0 none
	cleanly  bool
	ckpt     int64 // shutdown checkpoint of the last clean stop
	restarts int
	slots    map[string]bool
	ssn      string
	rewinds  int
	forks    map[int]int64 // timeline -> the WAL position where the next one branched off
}

func (p *simPG) DataDirEmpty() (bool, error) { return !p.hasData, nil }
func (p *simPG) Initdb(context.Context) error {
	p.hasData, p.tli, p.wal, p.recovery = true, 1, 100, false
	return nil
}
func (p *simPG) CreateRoles(context.Context) error { return nil }
func (p *simPG) Basebackup(_ context.Context, from postgres.ConnInfo) error {
	src := p.w.nodes[fmt.Sprint(from.Port)]
	if src == nil || !src.running {
		return errors.New("source down")
	}
	p.hasData, p.tli, p.wal, p.recovery, p.upstream = true, src.tli, src.wal, true, from.Port
	return nil
}
func (p *simPG) WriteConfig(standby bool, up *postgres.ConnInfo) error {
	p.recovery = standby
	p.upstream = 0
	if up != nil {
		p.upstream = up.Port
	}
	return nil
}
func (p *simPG) Start(context.Context, time.Duration) error {
	if !p.hasData {
		return errors.New("no data")
	}
	p.running = true
	return nil
}
func (p *simPG) Stop(_ context.Context, mode string, _ time.Duration) error {
	wasPrimary := p.running && !p.recovery
	p.running = false
	p.cleanly = mode != "immediate"
	if wasPrimary && p.cleanly {
		// The shutdown checkpoint record, sent to every streaming standby
		// before the postmaster exits.
		p.ckpt = p.wal
		p.wal++
		for _, q := range p.w.nodes {
			if q.running && q.recovery && q.upstream == p.port && q.tli == p.tli {
				q.wal = p.wal
			}
		}
	}
	return nil
}
func (p *simPG) IsRunning() bool { return p.running }
func (p *simPG) Observe(context.Context) (postgres.State, error) {
	if !p.running {
		return postgres.State{}, nil
	}
	st := postgres.State{Running: true, Accepting: true, InRecovery: p.recovery, Timeline: p.tli, WALPosition: p.wal, SystemID: p.w.sysid}
	if !p.recovery {
		for _, q := range p.w.nodes {
			if q.running && q.recovery && q.upstream == p.port {
				name := fmt.Sprintf("node%d", q.port-5440)
				sync := "async"
				if strings.Contains(p.ssn, `"`+name+`"`) {
					sync = "sync"
				}
				st.Replication = append(st.Replication, postgres.Replica{ApplicationName: name, State: "streaming", SyncState: sync})
			}
		}
	}
	if p.recovery {
		st.ReceivedLSN, st.ReplayedLSN = p.wal, p.wal
		if up := p.w.nodes[fmt.Sprint(p.upstream)]; up != nil && up.running && !up.recovery {
			st.Streaming = true
		}
	}
	return st, nil
}
func (p *simPG) Promote(context.Context, time.Duration) error {
	p.recovery, p.upstream = false, 0
	if p.forks == nil {
		p.forks = map[int]int64{}
	}
	p.forks[p.tli] = p.wal
	p.tli++
	return nil
}
func (p *simPG) Follow(_ context.Context, up postgres.ConnInfo) (bool, error) {
	p.upstream = up.Port
	return false, nil
}
func (p *simPG) ControlData() (postgres.ControlData, error) {
	state := "shut down in recovery"
	if !p.recovery {
		state = "in production"
		if p.cleanly {
			state = "shut down"
		}
	}
	ckpt := p.wal
	if p.cleanly && !p.recovery {
		ckpt = p.ckpt
	}
	return postgres.ControlData{SystemID: p.w.sysid, State: state, CheckpointTLI: p.tli, CheckpointLSN: ckpt}, nil
}
func (p *simPG) Checkpoint(context.Context) error { return nil }
func (p *simPG) ReplicationSlots(context.Context) ([]postgres.Slot, error) {
	var out []postgres.Slot
	for n := range p.slots {
		out = append(out, postgres.Slot{Name: n, Type: "physical"})
	}
	return out, nil
}
func (p *simPG) CreatePhysicalSlot(_ context.Context, n string, _ bool) error {
	if p.slots == nil {
		p.slots = map[string]bool{}
	}
	p.slots[n] = true
	return nil
}
func (p *simPG) DropSlot(_ context.Context, n string) error { delete(p.slots, n); return nil }
func (p *simPG) SetPrimarySlotName(string)                  {}
func (p *simPG) SetSynchronousStandbyNames(_ context.Context, v string) error {
	p.ssn = v
	return nil
}
func (p *simPG) CanRewind() (bool, string)                     { return true, "" }
func (p *simPG) LastLogLine(string, ...string) (string, error) { return "", nil }
func (p *simPG) Rewind(_ context.Context, src postgres.ConnInfo) error {
	up := p.w.nodes[fmt.Sprint(src.Port)]
	if up == nil || !up.running {
		return errors.New("source down")
	}
	p.tli, p.wal, p.cleanly, p.recovery = up.tli, up.wal, true, true
	p.rewinds++
	return nil
}
func (p *simPG) SetParameters(map[string]string) error { return nil }
func (p *simPG) RemoveDataDir() error                  { p.hasData = false; return nil }
func (p *simPG) HistoryFile(context.Context) ([]postgres.TimelineHistoryLine, error) {
	var out []postgres.TimelineHistoryLine
	for tl := 1; tl < p.tli; tl++ {
		out = append(out, postgres.TimelineHistoryLine{Timeline: tl, LSN: int64(tl) * 1000, Reason: "no recovery target specified"})
	}
	return out, nil
}
func (p *simPG) MoveAside() (string, error) { p.hasData = false; return "aside", nil }
func (p *simPG) TimelineSwitchpoint(_ context.Context, up postgres.ConnInfo, tli int) (int64, bool, error) {
	src := p.w.nodes[fmt.Sprint(up.Port)]
	if src == nil || !src.running {
		return 0, false, errors.New("upstream down")
	}
	at, ok := src.forks[tli]
	return at, ok, nil
}
func (p *simPG) Reload(context.Context) error { return nil }

// replicate copies WAL along streaming links and lets primaries write.
func (w *simWorld) replicate() {
	for _, p := range w.nodes {
		if p.running && !p.recovery {
			p.wal += 10
		}
	}
	for _, p := range w.nodes {
		if up := w.nodes[fmt.Sprint(p.upstream)]; p.running && p.recovery && up != nil && up.running && !up.recovery && up.tli >= p.tli {
			p.wal, p.tli = up.wal, up.tli
		}
	}
}

type simNode struct {
	name   string
	loop   *Loop
	dcs    *simDCS
	pg     *simPG
	board  *status.Board
	frozen bool
	dead   bool
}

type sim struct {
	t     *testing.T
	clock *simClock
	etcd  *simEtcd
	world *simWorld
	nodes []*simNode
}

func newSim(t *testing.T, n int) *sim {
	clock := &simClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := &sim{t: t, clock: clock, etcd: &simEtcd{clock: clock, kv: map[string]simKV{}, leases: map[int64]time.Time{}},
		world: &simWorld{nodes: map[string]*simPG{}, sysid: "42"}}
	dyn := config.Dynamic{TTL: 5 * time.Second, LoopWait: time.Second, RetryTimeout: 2 * time.Second, MaximumLagOnFailover: 1 << 20,
		UsePgRewind: true, UseSlots: true, SynchronousNodeCount: 1, MemberSlotsTTL: time.Hour}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node%d", i+1)
		port := 5441 + i
		pg := &simPG{w: s.world, port: port}
		s.world.nodes[fmt.Sprint(port)] = pg
		d := &simDCS{s: s.etcd, name: name, ttl: dyn.TTL}
		board := &status.Board{}
		l := New(Config{Name: name, Scope: "sim", Version: "test", ConnURL: fmt.Sprintf("postgres://127.0.0.1:%d/postgres", port),
			Bootstrap: dyn}, d, pg, board, simLogger(name))
		l.now = clock.now
		l.guard = newLeaseGuard(func(time.Time) {}, nil) // deadlines are on the fake clock
		s.nodes = append(s.nodes, &simNode{name: name, loop: l, dcs: d, pg: pg, board: board})
	}
	return s
}

// step runs one cycle of every live, unfrozen loop, advances the clock by
// d, and checks the invariant: at most one node both runs a writable
// primary and answers 200 on /primary.
func (s *sim) step(d time.Duration) {
	s.t.Helper()
	for _, n := range s.nodes {
		if !n.dead && !n.frozen {
			n.loop.cycle(context.Background())
		}
	}
	s.world.replicate()
	s.clock.t = s.clock.t.Add(d)
	var primaries []string
	for _, n := range s.nodes {
		if n.dead || n.frozen {
			continue
		}
		if n.board.Load().IsRunningPrimary(s.clock.now()) {
			primaries = append(primaries, n.name)
		}
	}
	if len(primaries) > 1 {
		s.t.Fatalf("%s: two nodes answer /primary: %v", s.clock.now().Format("15:04:05"), primaries)
	}
}

func (s *sim) run(steps int) {
	s.t.Helper()
	for i := 0; i < steps; i++ {
		s.step(time.Second)
	}
}

func (s *sim) leader() string {
	if v, ok := s.etcd.kv["leader"]; ok {
		return v.val
	}
	return ""
}

func (s *sim) node(name string) *simNode {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// healthy: one primary holding the key, every other live node a running
// standby streaming from it.
func (s *sim) healthy() error {
	l := s.node(s.leader())
	if l == nil || !l.pg.running || l.pg.recovery {
		return fmt.Errorf("leader %q is not a running primary", s.leader())
	}
	for _, n := range s.nodes {
		if n == l || n.dead || n.frozen {
			continue
		}
		if !n.pg.running || !n.pg.recovery || n.pg.upstream != l.pg.port {
			return fmt.Errorf("%s: running=%v recovery=%v upstream=%d, want a standby of %s", n.name, n.pg.running, n.pg.recovery, n.pg.upstream, l.name)
		}
	}
	return nil
}

func (s *sim) runUntilHealthy(max int) {
	s.t.Helper()
	var err error
	for i := 0; i < max; i++ {
		s.step(time.Second)
		if err = s.healthy(); err == nil {
			return
		}
	}
	s.t.Fatalf("not healthy after %d steps: %v", max, err)
}

func TestSimBootstrapOnePrimary(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	initdbs := 0
	for _, n := range s.nodes {
		if n.pg.hasData && n.pg.upstream == 0 {
			initdbs++
		}
	}
	if initdbs != 1 {
		t.Fatalf("%d nodes ran initdb, want 1", initdbs)
	}
}

func TestSimPrimaryDiesReplicaTakesOver(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	old := s.node(s.leader())
	old.dead = true
	old.pg.running = false
	steps := 0
	for ; s.leader() == "" || s.leader() == old.name; steps++ {
		if steps > 10 {
			t.Fatal("no new leader 10 s after the primary died")
		}
		s.step(time.Second)
	}
	if steps > 6 {
		t.Errorf("new leader after %d s, want within ttl (5 s) + 1", steps)
	}
	s.runUntilHealthy(3)
	if n := s.node(s.leader()); n.pg.tli != 2 {
		t.Errorf("new primary on timeline %d, want 2", n.pg.tli)
	}
	// The old node comes back: it crashed, so it is re-cloned and follows.
	old.dead = false
	s.runUntilHealthy(5)
}

func TestSimFrozenPrimaryDemotesOnResume(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	old := s.node(s.leader())
	old.frozen = true
	s.run(10) // 2 x ttl; its PostgreSQL keeps running as a primary meanwhile
	if s.leader() == old.name || s.leader() == "" {
		t.Fatalf("leader = %q after the primary froze for 10 s", s.leader())
	}
	old.frozen = false
	// Its first cycle after resuming must not leave it a writable primary
	// answering /primary (step checks that), and it ends up a standby.
	s.step(time.Second)
	if old.pg.running && !old.pg.recovery {
		t.Fatalf("resumed old primary still runs as a primary after its first cycle")
	}
	s.runUntilHealthy(5)
}

func TestSimEtcdOutageDemotesBeforeExpiry(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	l := s.node(s.leader())
	s.etcd.down = true
	stoppedAfter := 0
	for i := 1; i <= 6; i++ {
		s.step(time.Second)
		if !l.pg.running {
			stoppedAfter = i
			break
		}
	}
	if stoppedAfter == 0 || stoppedAfter >= 5 {
		t.Fatalf("primary stopped after %d s of etcd outage, want before the 5 s ttl", stoppedAfter)
	}
	s.etcd.down = false
	s.runUntilHealthy(12)
}

func (s *sim) request(f dcs.Failover) {
	s.t.Helper()
	d := s.nodes[0].dcs
	if ok, err := d.SetFailover(context.Background(), &f, 0); !ok || err != nil {
		s.t.Fatalf("writing the failover key: %v %v", ok, err)
	}
}

func TestSimSwitchoverToCandidate(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	old := s.node(s.leader())
	var cand *simNode
	for _, n := range s.nodes {
		if n != old {
			cand = n
			break
		}
	}
	s.run(2) // member keys show the standbys streaming
	s.request(dcs.Failover{Leader: old.name, Candidate: cand.name})
	for i := 0; s.leader() != cand.name; i++ {
		if i > 5 {
			t.Fatalf("leader is %q 5 s after a switchover to %s", s.leader(), cand.name)
		}
		s.step(time.Second)
	}
	s.runUntilHealthy(5)
	if old.pg.hasData == false || old.pg.tli != cand.pg.tli {
		t.Fatalf("old primary: hasData=%v tli=%d, want it rejoined on timeline %d", old.pg.hasData, old.pg.tli, cand.pg.tli)
	}
	if cand.pg.wal <= old.pg.ckpt {
		t.Fatalf("candidate promoted at %d without the old primary's shutdown checkpoint %d", cand.pg.wal, old.pg.ckpt)
	}
	if old.pg.rewinds != 0 {
		t.Errorf("the old primary needed pg_rewind after a clean switchover")
	}
	s.run(2)
	if f := s.etcd.kv["failover"].val; f != "{}" {
		t.Errorf("failover key = %q after the switchover, want {}", f)
	}
	if h := s.etcd.kv["history"].val; !strings.Contains(h, cand.name) {
		t.Errorf("history key = %q, want a line naming %s", h, cand.name)
	}
}

func TestSimSwitchoverRefusedForUnknownCandidate(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	old := s.leader()
	s.request(dcs.Failover{Leader: old, Candidate: "nosuch"})
	s.run(3)
	if s.leader() != old {
		t.Fatalf("leader moved to %q for an unknown candidate", s.leader())
	}
	if f := s.etcd.kv["failover"].val; f != "{}" {
		t.Errorf("failover key = %q, want it cleared", f)
	}
}

func TestSimScheduledSwitchoverFiresAtItsTime(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	old := s.leader()
	s.run(2)
	s.request(dcs.Failover{Leader: old, ScheduledAt: s.clock.now().Add(10 * time.Second)})
	s.run(8)
	if s.leader() != old {
		t.Fatalf("switchover ran before its time (leader %q)", s.leader())
	}
	s.run(5)
	if s.leader() == old || s.leader() == "" {
		t.Fatalf("scheduled switchover did not run (leader %q)", s.leader())
	}
	s.runUntilHealthy(5)
}

func TestSimPausePreventsFailover(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	old := s.node(s.leader())
	if ok, _ := s.nodes[0].dcs.SetConfig(context.Background(), map[string]any{"ttl": 5, "loop_wait": 1, "retry_timeout": 2, "pause": true}, s.etcd.kv["config"].rev); !ok {
		t.Fatal("could not write the config key")
	}
	s.run(2)
	old.pg.running = false // PostgreSQL crashes on the primary
	s.run(12)
	for _, n := range s.nodes {
		if n.pg.running && !n.pg.recovery {
			t.Fatalf("%s became a primary in maintenance mode", n.name)
		}
	}
	if old.pg.running {
		t.Fatal("the stopped primary was restarted in maintenance mode")
	}
	if ok, _ := s.nodes[0].dcs.SetConfig(context.Background(), map[string]any{"ttl": 5, "loop_wait": 1, "retry_timeout": 2}, s.etcd.kv["config"].rev); !ok {
		t.Fatal("could not write the config key")
	}
	s.runUntilHealthy(15)
}

func simLogger(name string) *slog.Logger {
	if os.Getenv("SIM_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", name)
}

func TestSimSynchronousModePromotesOnlyTheSyncStandby(t *testing.T) {
	s := newSim(t, 3)
	for _, n := range s.nodes {
		n.loop.cfg.Bootstrap.SynchronousMode = true
		n.loop.cfg.Bootstrap.Raw = map[string]any{"ttl": 5, "loop_wait": 1, "retry_timeout": 2, "synchronous_mode": true}
	}
	s.runUntilHealthy(5)
	s.run(3)
	var sync dcs.SyncState
	for round := 0; round < 3; round++ {
		l := s.node(s.leader())
		st, err := dcs.ParseSync([]byte(s.etcd.kv["sync"].val))
		if err != nil || st.Leader != l.name || len(st.Standbys) != 1 {
			t.Fatalf("round %d: sync key %q (%v), want leader %s and one standby", round, s.etcd.kv["sync"].val, err, l.name)
		}
		sync = st
		if !strings.Contains(l.pg.ssn, `"`+sync.Standbys[0]+`"`) {
			t.Fatalf("round %d: synchronous_standby_names %q does not name %s", round, l.pg.ssn, sync.Standbys[0])
		}
		l.dead, l.pg.running = true, false
		for i := 0; s.leader() == "" || s.leader() == l.name; i++ {
			if i > 10 {
				t.Fatalf("round %d: no new leader", round)
			}
			s.step(time.Second)
		}
		if s.leader() != sync.Standbys[0] {
			t.Fatalf("round %d: %s was promoted, but the sync key named %s", round, s.leader(), sync.Standbys[0])
		}
		l.dead = false
		s.runUntilHealthy(10)
		s.run(3)
		if l.pg.rewinds == 0 {
			t.Errorf("round %d: the old primary rejoined without pg_rewind", round)
		}
	}
}

func TestSimLeaderKeepsSlotsForOtherMembers(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	s.run(2)
	l := s.node(s.leader())
	for _, n := range s.nodes {
		if n == l {
			if l.pg.slots[n.name] {
				t.Errorf("the leader has a slot for itself")
			}
			continue
		}
		if !l.pg.slots[n.name] {
			t.Errorf("the leader has no slot for %s: %v", n.name, l.pg.slots)
		}
	}
	// A member removed for good loses its slot once member_slots_ttl has
	// passed.
	var gone *simNode
	for _, n := range s.nodes {
		if n != l {
			gone = n
			break
		}
	}
	cfg := map[string]any{"ttl": 5, "loop_wait": 1, "retry_timeout": 2, "member_slots_ttl": 8}
	if ok, _ := s.nodes[0].dcs.SetConfig(context.Background(), cfg, s.etcd.kv["config"].rev); !ok {
		t.Fatal("could not write the config key")
	}
	s.run(1)
	gone.dead, gone.pg.running = true, false
	s.run(8) // its member key expires after the ttl; the slot is still kept
	if !l.pg.slots[gone.name] {
		t.Fatalf("slot of %s dropped before member_slots_ttl", gone.name)
	}
	s.run(8)
	if l.pg.slots[gone.name] {
		t.Fatalf("slot of %s still kept after member_slots_ttl", gone.name)
	}
}

// A failover request (no leader named) sent while the leader is healthy
// is carried out as a switchover: the leader names itself in the request
// as it hands over, so the candidate waits for its shutdown checkpoint.
func TestSimFailoverRequestToHealthyLeaderActsAsSwitchover(t *testing.T) {
	s := newSim(t, 3)
	s.runUntilHealthy(5)
	old := s.node(s.leader())
	var cand *simNode
	for _, n := range s.nodes {
		if n != old {
			cand = n
			break
		}
	}
	s.run(2)
	s.request(dcs.Failover{Candidate: cand.name})
	for i := 0; s.leader() != cand.name; i++ {
		if i > 5 {
			t.Fatalf("leader is %q 5 s after a failover request to %s", s.leader(), cand.name)
		}
		s.step(time.Second)
	}
	if cand.pg.wal <= old.pg.ckpt {
		t.Fatalf("candidate promoted at %d without the old primary's shutdown checkpoint %d", cand.pg.wal, old.pg.ckpt)
	}
	s.runUntilHealthy(5)
	if old.pg.rewinds != 0 {
		t.Errorf("the old primary needed pg_rewind after a handover")
	}
}
