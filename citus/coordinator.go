package citus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/dcs"
)

// Event types a worker group's leader sends to the coordinator's leader
// (POST /citus, Patroni's names and body).
const (
	BeforeDemote  = "before_demote"  // the worker primary is about to stop for a switchover
	BeforePromote = "before_promote" // a new worker leader is about to promote
	AfterPromote  = "after_promote"  // the new worker primary accepts writes
)

// Event is the body of POST /citus.
type Event struct {
	Type     string  `json:"type"`
	Group    int     `json:"group"`
	Leader   string  `json:"leader"`
	Timeout  float64 `json:"timeout"`  // seconds the transaction may stay open
	Cooldown float64 `json:"cooldown"` // seconds citus_update_node waits before it cancels blockers
}

// Check validates an event's fields.
func (e Event) Check() error {
	switch e.Type {
	case BeforeDemote, BeforePromote, AfterPromote:
	default:
		return fmt.Errorf("type must be %s, %s or %s, got %q", BeforeDemote, BeforePromote, AfterPromote, e.Type)
	}
	if e.Group < 0 {
		return fmt.Errorf("group must not be negative, got %d", e.Group)
	}
	if e.Leader == "" {
		return errors.New("leader is required")
	}
	if e.Timeout < 0 || e.Cooldown < 0 {
		return errors.New("timeout and cooldown must not be negative")
	}
	return nil
}

// Groups is what the coordinator reads from the DCS.
type Groups interface {
	SnapshotGroups(ctx context.Context) (map[int]*dcs.Cluster, int64, error)
	WatchScope(ctx context.Context) <-chan struct{}
}

// CoordinatorOptions configure a Coordinator.
type CoordinatorOptions struct {
	Groups Groups
	// Connect opens a connection to the local PostgreSQL, in the Citus
	// database, with statement_timeout and idle_in_transaction_session_timeout off.
	Connect             func(ctx context.Context) (*pgx.Conn, error)
	RegisterSecondaries bool
	Log                 *slog.Logger
	// Resync is how often pg_dist_node is compared with the DCS even
	// without a change (default 5 s).
	Resync time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Coordinator keeps pg_dist_node true on the coordinator group's leader.
// One goroutine (Run) owns the connection and the transaction a worker
// switchover or failover holds open; everything else talks to it through
// channels.
type Coordinator struct {
	o          CoordinatorOptions
	reqs       chan coordReq
	wantLead   atomic.Bool
	leadSignal chan struct{}

	// owned by Run
	leading  bool
	conn     *pgx.Conn
	inflight *inflight
	pending  []coordReq // events of other groups waiting for the one in flight
	lastErr  string
	errSince time.Time // since when reconcile fails
	warned   bool      // the lasting failure was logged as a warning
}

// errPatience is how long reconcile may fail before it is a warning.
const errPatience = 10 * time.Second

type inflight struct {
	group    int
	event    string
	deadline time.Time
	started  time.Time
}

type coordReq struct {
	ctx   context.Context // the sender's: it may give up while the event waits
	event *Event
	reply chan error
}

// NewCoordinator makes a coordinator; Run starts it.
func NewCoordinator(o CoordinatorOptions) *Coordinator {
	if o.Resync <= 0 {
		o.Resync = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Coordinator{o: o, reqs: make(chan coordReq), leadSignal: make(chan struct{}, 1)}
}

// SetLeading tells whether this member is the coordinator group's leader
// with a writable primary. It never blocks.
func (c *Coordinator) SetLeading(_ context.Context, v bool) {
	if c.wantLead.Swap(v) != v {
		select {
		case c.leadSignal <- struct{}{}:
		default:
		}
	}
}

// HandleEvent hands a worker's event to the coordinator and waits until it
// has been carried out (the metadata locks are held, or released). While
// another group changes primary, the event waits for that one to finish.
func (c *Coordinator) HandleEvent(ctx context.Context, ev Event) error {
	if err := ev.Check(); err != nil {
		return err
	}
	r := coordReq{ctx: ctx, event: &ev, reply: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrNotLeading is returned for an event sent to a member that is not the
// coordinator group's leader.
var ErrNotLeading = errors.New("this member is not the leader of the Citus coordinator group")

// Run serves until ctx ends; then an open transaction is rolled back.
func (c *Coordinator) Run(ctx context.Context) {
	watch := c.o.Groups.WatchScope(ctx)
	defer c.closeConn()
	dirty := true
	for {
		wait := c.o.Resync
		if c.lastErr != "" {
			wait = time.Second
		}
		if f := c.inflight; f != nil {
			wait = max(f.deadline.Sub(c.o.Now()), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case _, ok := <-watch:
			if !ok {
				watch = nil
			}
			dirty = true
		case <-c.leadSignal:
			dirty = c.syncLeading() || dirty
		case r := <-c.reqs:
			c.syncLeading()
			if f := c.inflight; f != nil && f.group != r.event.Group && c.leading {
				// Another group is changing primary: this one waits its
				// turn (its sender waits for the answer).
				c.pending = append(c.pending, r)
				break
			}
			r.reply <- c.event(ctx, *r.event)
			dirty = true
		case <-t.C:
			dirty = true
		}
		t.Stop()
		if f := c.inflight; f != nil && !c.o.Now().Before(f.deadline) {
			c.o.Log.Warn("citus: the worker group did not finish changing primary in time; rolling back", "group", f.group, "event", f.event)
			c.rollback("deadline passed")
		}
		for c.inflight == nil && len(c.pending) > 0 {
			r := c.pending[0]
			c.pending = c.pending[1:]
			if r.ctx.Err() != nil {
				continue // the sender went on without us
			}
			r.reply <- c.event(ctx, *r.event)
			dirty = true
		}
		if dirty && c.leading && c.inflight == nil {
			if err := c.reconcile(ctx); err != nil {
				// Right after a primary changed, Citus refuses to add or
				// remove nodes until its metadata is synced again: that
				// passes within seconds, so only a lasting error is a
				// warning.
				now := c.o.Now()
				if c.lastErr == "" {
					c.errSince = now
				}
				msg := err.Error()
				switch {
				case now.Sub(c.errSince) >= errPatience && !c.warned:
					c.o.Log.Warn("citus: pg_dist_node not in step", "err", err, "for", now.Sub(c.errSince).Round(time.Second))
					c.warned = true
				case msg != c.lastErr:
					c.o.Log.Info("citus: pg_dist_node not in step yet; trying again", "err", err)
				}
				c.lastErr = msg
			} else {
				if c.lastErr != "" {
					c.o.Log.Info("citus: pg_dist_node in step again")
				}
				c.lastErr, c.warned = "", false
				dirty = false
			}
		}
	}
}

// syncLeading takes the leadership last set; it reports whether this
// member leads now.
func (c *Coordinator) syncLeading() bool {
	if v := c.wantLead.Load(); v != c.leading {
		c.leading = v
		if c.leading {
			c.o.Log.Info("citus: leading the coordinator group: keeping pg_dist_node in step with every group's leader")
		} else {
			c.rollback("this member no longer leads the coordinator group")
			c.closeConn()
		}
	}
	return c.leading
}

func (c *Coordinator) ensureConn(ctx context.Context) (*pgx.Conn, error) {
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	conn, err := c.o.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to the coordinator's database: %w", err)
	}
	c.conn = conn
	return conn, nil
}

func (c *Coordinator) closeConn() {
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.conn.Close(ctx)
		cancel()
		c.conn = nil
	}
	c.inflight = nil
}

// rollback ends an open transaction (its metadata locks go with it).
func (c *Coordinator) rollback(why string) {
	f := c.inflight
	if f == nil {
		return
	}
	c.inflight = nil
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.conn.Exec(ctx, "ROLLBACK"); err != nil {
		c.o.Log.Warn("citus: rollback failed; closing the connection", "err", err)
		c.closeConn()
	}
	c.o.Log.Warn("citus: pg_dist_node change rolled back", "group", f.group, "why", why)
}

// fail ends an open transaction after an error by dropping the connection.
func (c *Coordinator) fail() {
	c.inflight = nil
	c.closeConn()
}

func readRows(ctx context.Context, conn *pgx.Conn) ([]Row, error) {
	rs, err := conn.Query(ctx, "SELECT nodeid, groupid, nodename, nodeport, noderole::text FROM pg_dist_node")
	if err != nil {
		return nil, fmt.Errorf("reading pg_dist_node: %w", err)
	}
	var out []Row
	for rs.Next() {
		var r Row
		var id, group, port int32
		if err := rs.Scan(&id, &group, &r.Addr.Host, &port, &r.Role); err != nil {
			rs.Close()
			return nil, fmt.Errorf("reading pg_dist_node: %w", err)
		}
		r.ID, r.Group, r.Addr.Port = int(id), int(group), int(port)
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_dist_node: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (c *Coordinator) exec(ctx context.Context, conn *pgx.Conn, s Step, cooldown time.Duration) error {
	var err error
	switch s.Kind {
	case Update:
		_, err = conn.Exec(ctx, "SELECT citus_update_node($1, $2, $3, true, $4)", s.NodeID, s.Addr.Host, s.Addr.Port, int(cooldown/time.Millisecond))
	case AddPrimary:
		_, err = conn.Exec(ctx, "SELECT citus_add_node($1, $2, $3, 'primary')", s.Addr.Host, s.Addr.Port, s.Group)
	case AddSecondary:
		_, err = conn.Exec(ctx, "SELECT citus_add_secondary_node($1, $2, $3, $4)", s.Addr.Host, s.Addr.Port, s.Primary.Host, s.Primary.Port)
	case Remove:
		_, err = conn.Exec(ctx, "SELECT citus_remove_node($1, $2)", s.Addr.Host, s.Addr.Port)
	default:
		err = fmt.Errorf("unknown step %v", s)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	return nil
}

// runSteps runs steps in a transaction of their own when there are several
// (inTx: one is open already).
func (c *Coordinator) runSteps(ctx context.Context, conn *pgx.Conn, steps []Step, cooldown time.Duration, inTx bool) error {
	if len(steps) == 0 {
		return nil
	}
	own := !inTx && len(steps) > 1
	if own {
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			return err
		}
	}
	for _, s := range steps {
		if err := c.exec(ctx, conn, s, cooldown); err != nil {
			if own {
				_, _ = conn.Exec(ctx, "ROLLBACK")
			}
			return err
		}
	}
	if own {
		if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
			return err
		}
	}
	return nil
}

const defaultCooldown = 10 * time.Second

// lockGroupTables takes ACCESS EXCLUSIVE locks, on the coordinator only,
// on every distributed table with a shard placement in the group
// (reference tables included), in the open transaction. citus_update_node
// holds the group's writes, but Citus reads take no shard metadata lock:
// without this they would go to the stopping primary and fail. Under a
// savepoint: if the locks cannot be had within cooldown (a long read, a
// deadlock), the transaction goes on without them. It returns the number
// of tables locked (0 without Citus's placement catalogue).
func lockGroupTables(ctx context.Context, conn *pgx.Conn, group int, cooldown time.Duration) (int, error) {
	var have bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('pg_dist_placement') IS NOT NULL AND to_regclass('pg_dist_shard') IS NOT NULL").Scan(&have); err != nil {
		return 0, err
	}
	if !have {
		return 0, nil
	}
	if _, err := conn.Exec(ctx, "SAVEPOINT pgwarden_tables"); err != nil {
		return 0, err
	}
	n, err := func() (int, error) {
		rows, err := conn.Query(ctx, `SELECT DISTINCT s.logicalrelid::oid, s.logicalrelid::regclass::text
			FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
			WHERE p.groupid = $1 ORDER BY 1`, group)
		if err != nil {
			return 0, err
		}
		var names []string
		for rows.Next() {
			var oid uint32
			var name string
			if err := rows.Scan(&oid, &name); err != nil {
				rows.Close()
				return 0, err
			}
			names = append(names, name)
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if len(names) == 0 {
			return 0, nil
		}
		// Locally only: Citus would otherwise take the locks on every
		// node, the stopping primary among them.
		if _, err := conn.Exec(ctx, "SET LOCAL citus.enable_ddl_propagation = off"); err != nil {
			return 0, err
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", max(int(cooldown/time.Millisecond), 1))); err != nil {
			return 0, err
		}
		if _, err := conn.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return 0, err
		}
		if _, err := conn.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
			return 0, err
		}
		if _, err := conn.Exec(ctx, "SET LOCAL citus.enable_ddl_propagation = DEFAULT"); err != nil {
			return 0, err
		}
		return len(names), nil
	}()
	if err != nil {
		if _, rerr := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT pgwarden_tables"); rerr != nil {
			return 0, errors.Join(err, rerr)
		}
		return 0, err
	}
	_, err = conn.Exec(ctx, "RELEASE SAVEPOINT pgwarden_tables")
	return n, err
}

// reconcile compares pg_dist_node with every group's leader and streaming
// standbys in the DCS, and makes it true: the coordinator group first,
// then the workers in order. A group without a running primary is left
// alone. Primary rows change in one transaction per group; secondary rows
// one call at a time (each needs every metadata node reachable in Citus).
func (c *Coordinator) reconcile(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	groups, _, err := c.o.Groups.SnapshotGroups(rctx)
	if err != nil {
		return err
	}
	conn, err := c.ensureConn(rctx)
	if err != nil {
		return err
	}
	rows, err := readRows(rctx, conn)
	if err != nil {
		c.closeConn()
		return err
	}
	ids := make([]int, 0, len(groups))
	for g := range groups {
		ids = append(ids, g)
	}
	sort.Ints(ids)
	var errs []error
	for _, g := range ids {
		w, ok := WantFrom(g, groups[g], c.o.RegisterSecondaries)
		if !ok {
			continue
		}
		steps, err := PrimarySteps(rows, g, w.Primary)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %d: %w", g, err))
			continue
		}
		if len(steps) > 0 {
			if err := c.runSteps(rctx, conn, steps, defaultCooldown, false); err != nil {
				errs = append(errs, fmt.Errorf("group %d: %w", g, err))
				continue
			}
			c.o.Log.Warn("citus: pg_dist_node points at the group's primary", "group", g, "primary", w.Primary.String(), "steps", stepList(steps))
			if rows, err = readRows(rctx, conn); err != nil {
				c.closeConn()
				return err
			}
		}
		if !c.o.RegisterSecondaries {
			continue
		}
		for _, s := range SecondarySteps(rows, g, w.Primary, w.Secondaries) {
			if err := c.exec(rctx, conn, s, defaultCooldown); err != nil {
				errs = append(errs, fmt.Errorf("group %d: %w", g, err))
				continue
			}
			c.o.Log.Info("citus: secondary registration changed", "group", g, "step", s.String())
		}
		if rows, err = readRows(rctx, conn); err != nil {
			c.closeConn()
			return err
		}
	}
	return errors.Join(errs...)
}

func stepList(steps []Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.String()
	}
	return out
}

// event carries out a worker's event: before_demote parks the group's
// primary row and before_promote points it at the new leader, both in a
// transaction left open so that the group's distributed statements wait on
// its metadata locks; after_promote commits it (or, without one, points
// the row at the new primary at once).
func (c *Coordinator) event(ctx context.Context, ev Event) error {
	if !c.leading {
		return ErrNotLeading
	}
	start := c.o.Now()
	cooldown := time.Duration(ev.Cooldown * float64(time.Second))
	if cooldown <= 0 {
		cooldown = defaultCooldown
	}
	timeout := time.Duration(ev.Timeout * float64(time.Second))
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ectx, cancel := context.WithTimeout(ctx, cooldown+5*time.Second)
	defer cancel()
	groups, _, err := c.o.Groups.SnapshotGroups(ectx)
	if err != nil {
		return err
	}
	cl := groups[ev.Group]
	if cl == nil || cl.Leader == nil || cl.Leader.Name != ev.Leader {
		c.o.Log.Info("citus: discarding an event from a member that does not hold its group's leader key", "event", ev.Type, "group", ev.Group, "leader", ev.Leader)
		return fmt.Errorf("%s does not hold the leader key of group %d", ev.Leader, ev.Group)
	}
	leader := cl.LeaderMember()
	if leader == nil {
		return fmt.Errorf("group %d: the leader %s has no member key", ev.Group, ev.Leader)
	}
	addr, ok := addrOf(leader)
	if !ok {
		return fmt.Errorf("group %d: the leader %s has no usable conn_url", ev.Group, ev.Leader)
	}
	if f := c.inflight; f != nil && f.group != ev.Group {
		return fmt.Errorf("group %d is changing primary; try again", f.group)
	}
	conn, err := c.ensureConn(ectx)
	if err != nil {
		return err
	}
	inTx := c.inflight != nil
	if !inTx && ev.Type != AfterPromote {
		if _, err := conn.Exec(ectx, "BEGIN"); err != nil {
			c.fail()
			return err
		}
		c.inflight = &inflight{group: ev.Group, started: start}
		inTx = true
		// The tables first, then (citus_update_node) the shard metadata
		// locks: a distributed statement takes them in that order too, so
		// the other order could deadlock with one.
		if n, err := lockGroupTables(ectx, conn, ev.Group, cooldown); err != nil {
			c.o.Log.Warn("citus: could not lock the group's distributed tables; reads may fail until the new primary is in", "group", ev.Group, "err", err)
		} else if n > 0 {
			c.o.Log.Info("citus: holding reads of the group's distributed tables too", "group", ev.Group, "tables", n)
		}
	}
	rows, err := readRows(ectx, conn)
	if err != nil {
		c.fail()
		return err
	}
	var steps []Step
	if ev.Type == BeforeDemote {
		steps = ParkSteps(rows, ev.Group)
	} else if steps, err = PrimarySteps(rows, ev.Group, addr); err != nil {
		c.rollback(err.Error())
		return err
	}
	if err := c.runSteps(ectx, conn, steps, cooldown, inTx); err != nil {
		c.o.Log.Error("citus: changing pg_dist_node for a worker's event failed", "event", ev.Type, "group", ev.Group, "err", err)
		c.fail()
		return err
	}
	if ev.Type != AfterPromote {
		c.inflight.event = ev.Type
		c.inflight.deadline = c.o.Now().Add(timeout)
		c.o.Log.Info("citus: holding the group's metadata locks", "event", ev.Type, "group", ev.Group, "leader", ev.Leader,
			"steps", stepList(steps), "took", c.o.Now().Sub(start).Round(time.Millisecond))
		return nil
	}
	held := time.Duration(0)
	if f := c.inflight; f != nil {
		if _, err := conn.Exec(ectx, "COMMIT"); err != nil {
			c.o.Log.Error("citus: committing pg_dist_node failed", "group", ev.Group, "err", err)
			c.fail()
			return err
		}
		held = c.o.Now().Sub(f.started)
		c.inflight = nil
	}
	c.o.Log.Warn("citus: pg_dist_node points at the group's new primary", "group", ev.Group, "primary", addr.String(),
		"steps", stepList(steps), "locks_held", held.Round(time.Millisecond))
	return nil
}
