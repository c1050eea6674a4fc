package ha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// This file holds what operators ask of the loop through the REST API:
// restarts, reinitialize, and the DCS reads and writes the endpoints need.
// The loop goroutine performs every change to PostgreSQL; other goroutines
// hand it requests and wait for the answer.

type opRequest struct {
	run   func(ctx context.Context) (bool, string)
	reply chan opReply
}

type opReply struct {
	ok  bool
	msg string
}

// errLoopBusy is returned when the loop did not take a request in time.
var errLoopBusy = errors.New("the HA loop is busy")

// do runs fn on the loop goroutine and waits for its answer or ctx.
func (l *Loop) do(ctx context.Context, fn func(ctx context.Context) (bool, string)) (bool, string) {
	req := opRequest{run: fn, reply: make(chan opReply, 1)}
	select {
	case l.ops <- req:
	case <-ctx.Done():
		return false, errLoopBusy.Error()
	}
	select {
	case r := <-req.reply:
		return r.ok, r.msg
	case <-ctx.Done():
		return false, "timed out waiting for the operation to finish (it goes on)"
	}
}

// Cluster reads a fresh snapshot from etcd.
func (l *Loop) Cluster(ctx context.Context) (*dcs.Cluster, error) { return l.dcs.Snapshot(ctx) }

// SetFailover writes the failover key.
func (l *Loop) SetFailover(ctx context.Context, f *dcs.Failover, prevRevision int64) (bool, error) {
	return l.dcs.SetFailover(ctx, f, prevRevision)
}

// SetConfig writes the config key with compare-and-swap.
func (l *Loop) SetConfig(ctx context.Context, cfg map[string]any, prevRevision int64) (bool, error) {
	return l.dcs.SetConfig(ctx, cfg, prevRevision)
}

// Restart restarts PostgreSQL now in its current role if r's conditions
// hold, and waits for it (or ctx).
func (l *Loop) Restart(ctx context.Context, r ScheduledRestart) (bool, string) {
	return l.do(ctx, func(ctx context.Context) (bool, string) { return l.restartNow(ctx, r, false) })
}

// ScheduleRestart records a restart for r.At; false if one is scheduled.
func (l *Loop) ScheduleRestart(r ScheduledRestart) bool {
	ok, _ := l.do(context.Background(), func(context.Context) (bool, string) {
		if l.mem.ScheduledRestart != nil {
			return false, ""
		}
		r.AskedAt = l.now()
		l.mem.ScheduledRestart = &r
		l.log.Info("restart scheduled", "at", r.At.Format(time.RFC3339))
		return true, ""
	})
	l.Wake()
	return ok
}

// CancelRestart drops the scheduled restart; false if there was none.
func (l *Loop) CancelRestart() bool {
	ok, _ := l.do(context.Background(), func(context.Context) (bool, string) {
		if l.mem.ScheduledRestart == nil {
			return false, ""
		}
		l.mem.ScheduledRestart = nil
		l.log.Info("scheduled restart cancelled")
		return true, ""
	})
	return ok
}

// Reinitialize asks the loop to wipe the data directory and clone it
// again. It returns "" when accepted, else why not.
func (l *Loop) Reinitialize(ctx context.Context, force bool) string {
	c, err := l.dcs.Snapshot(ctx)
	if err != nil {
		return "cannot read the cluster state from etcd: " + err.Error()
	}
	if c.Leader == nil {
		return "Cluster has no leader, can not reinitialize"
	}
	if c.Leader.Name == l.cfg.Name {
		return "I am the leader, can not reinitialize"
	}
	_, msg := l.do(ctx, func(context.Context) (bool, string) {
		if l.mem.Reinit && !force {
			return false, "reinitialize already in progress"
		}
		l.mem.Reinit = true
		l.log.Warn("reinitialize requested: the data directory will be removed and cloned again", "force", force)
		return true, ""
	})
	l.Wake()
	return msg
}

// serveOps answers the requests waiting for the loop, between cycles.
func (l *Loop) serveOps(ctx context.Context, first opRequest) {
	req := first
	for {
		ok, msg := req.run(ctx)
		req.reply <- opReply{ok, msg}
		select {
		case req = <-l.ops:
		default:
			return
		}
	}
}

// restartMatches checks a restart's conditions against the instance.
func restartMatches(r ScheduledRestart, st postgres.State) (bool, string) {
	switch r.Role {
	case "primary", "master":
		if !st.Running || st.InRecovery {
			return false, "restart conditions are not satisfied (role is not primary)"
		}
	case "replica":
		if !st.Running || !st.InRecovery {
			return false, "restart conditions are not satisfied (role is not replica)"
		}
	}
	if r.RestartPending && !st.PendingRestart {
		return false, "restart conditions are not satisfied (no restart pending)"
	}
	if r.PostgresVersion > 0 && st.ServerVersion >= r.PostgresVersion {
		return false, "restart conditions are not satisfied (PostgreSQL version is not older)"
	}
	return true, ""
}

// restartNow stops and starts PostgreSQL in its current role. A leader
// renews its lease first, so the restart has a whole lease to finish in.
func (l *Loop) restartNow(ctx context.Context, r ScheduledRestart, scheduled bool) (bool, string) {
	pgCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	st, _ := l.pg.Observe(pgCtx)
	cancel()
	if ok, why := restartMatches(r, st); !ok {
		return false, why
	}
	primary := st.Running && !st.InRecovery
	leader := l.mem.WasLeader && l.cluster != nil && l.cluster.Leader != nil && l.cluster.Leader.Name == l.cfg.Name
	if primary && !leader {
		return false, "PostgreSQL runs as primary without the leader key; not restarting it"
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = l.cfg.StartTimeout
	}
	obs := Observation{Name: l.cfg.Name, PG: st, LeaseID: l.dcs.LeaseID()}
	l.publishState(obs, "restarting", false)
	if leader {
		c, cancel := l.dcsCtx(ctx)
		start := l.now()
		_, err := l.dcs.RefreshLease(c)
		cancel()
		if err != nil {
			return false, "restart refused: could not renew the leader lease first: " + err.Error()
		}
		l.renewedAt = start
		l.guard.Arm(start.Add(l.settings.TTL-safetyMargin(l.settings.TTL)), l.now())
	}
	l.log.Warn("restarting PostgreSQL on request", "primary", primary)
	if primary {
		// A Citus worker's primary: the coordinator holds the group's
		// statements until it is back (after_promote below).
		l.citusNotify(ctx, citusBeforeDemote)
	}
	if err := l.pg.Stop(ctx, "fast", 60*time.Second); err != nil {
		return false, "restart failed: " + err.Error()
	}
	if err := l.pg.WriteConfig(!primary && !leader, l.upstreamInfo()); err != nil {
		return false, "restart failed: " + err.Error()
	}
	if err := l.pg.Start(ctx, timeout); err != nil {
		return false, "restart failed: " + err.Error()
	}
	if primary {
		l.citusNotify(ctx, citusAfterPromote)
	}
	if l.mem.ScheduledRestart != nil && !l.mem.ScheduledRestart.At.After(l.now()) {
		l.mem.ScheduledRestart = nil
	}
	if !scheduled {
		// Publish the restarted state before answering, so that health
		// checks agree with the answer.
		l.cycle(ctx)
	}
	return true, "restarted successfully"
}

func (l *Loop) upstreamInfo() *postgres.ConnInfo {
	host, port, err := net.SplitHostPort(l.mem.Upstream)
	if err != nil {
		return nil
	}
	p, _ := strconv.Atoi(port)
	return &postgres.ConnInfo{Host: host, Port: p}
}

// demote hands over to a switchover candidate: see the Demote action.
func (l *Loop) demote(ctx context.Context, o Observation, reason string) error {
	obs := o
	l.publishState(obs, "stopping", false) // out of /primary at once
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := l.pg.Checkpoint(cctx); err != nil {
		l.log.Warn("switchover: CHECKPOINT before the shutdown failed; stopping anyway", "err", err)
	}
	cancel()
	// A Citus worker: the coordinator holds the group's distributed
	// statements from now until the new primary is promoted.
	l.citusNotify(ctx, citusBeforeDemote)
	start := l.now()
	if err := l.pg.Stop(ctx, "fast", 60*time.Second); err != nil {
		return fmt.Errorf("switchover: stopping PostgreSQL: %w", err)
	}
	cd, err := l.pg.ControlData()
	if err != nil {
		return fmt.Errorf("switchover: reading pg_controldata after the shutdown: %w", err)
	}
	c, cancel := l.dcsCtx(ctx)
	defer cancel()
	// A failover request sent to a healthy leader is a switchover: name
	// ourselves in it, so that the candidate waits for our shutdown
	// checkpoint and nobody else races.
	var handover *dcs.Failover
	if f := o.Cluster.FailoverRequest; f != nil && f.Leader == "" {
		handover = &dcs.Failover{Leader: l.cfg.Name, Candidate: f.Candidate}
	}
	ok, err := l.dcs.ReleaseLeader(c, cd.CheckpointLSN, handover)
	if err != nil {
		return fmt.Errorf("switchover: releasing the leader key: %w", err)
	}
	l.mem.WasLeader = false
	l.mem.Demoted = true
	l.mem.Upstream = ""
	l.guard.Disarm()
	l.log.Warn("role change: demoted for a switchover (PostgreSQL stopped cleanly, leader key released)",
		"reason", reason, "shutdown_checkpoint", dcs.FormatLSN(cd.CheckpointLSN), "stop_took", l.now().Sub(start).Round(time.Millisecond), "released", ok)
	return nil
}
