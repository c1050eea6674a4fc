package restapi

import (
	"context"
	"errors"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
)

// Operations is what the unsafe endpoints (switchover, failover, restart,
// reinitialize, reload, config) ask of the daemon. The HA loop implements
// the member-local ones; the DCS ones go straight to etcd.
type Operations interface {
	// Cluster reads a fresh snapshot of the cluster from etcd.
	Cluster(ctx context.Context) (*dcs.Cluster, error)
	// SetFailover writes the failover key (nil or empty writes {}), with
	// compare-and-swap on prevRevision when > 0.
	SetFailover(ctx context.Context, f *dcs.Failover, prevRevision int64) (bool, error)
	// SetConfig writes the config key if its revision is still
	// prevRevision (0: the key must not exist).
	SetConfig(ctx context.Context, cfg map[string]any, prevRevision int64) (bool, error)
	// Wake makes the HA loop run a cycle at once (after a DCS write).
	Wake()

	// Restart restarts the local PostgreSQL now, if the request's
	// conditions hold, and waits until it is done or ctx ends. ok false
	// with a message when it did not restart ("restart conditions are not
	// satisfied", "restart failed", ...).
	Restart(ctx context.Context, r RestartRequest) (ok bool, message string)
	// ScheduleRestart records a restart to run at r.Schedule; false when
	// one is already scheduled.
	ScheduleRestart(r RestartRequest) bool
	// CancelRestart drops the scheduled restart; false when none was.
	CancelRestart() bool
	// Reinitialize starts wiping the local data directory and cloning it
	// again from the leader (or a clonefrom member). It returns "" when
	// started, else the reason it refused ("I am the leader, can not
	// reinitialize", "Cluster has no leader, can not reinitialize", "...
	// already in progress"). force cancels a running operation and stops
	// PostgreSQL without asking.
	Reinitialize(ctx context.Context, force bool) string
	// Reload re-reads the configuration file, as SIGHUP does.
	Reload() error
}

// RestartRequest is the body of POST /restart, parsed.
type RestartRequest struct {
	Schedule        time.Time     // zero: at once
	RestartPending  bool          // only if PostgreSQL reports pending_restart
	Role            string        // "primary" or "replica" ("master" is read as "primary"); "" any
	PostgresVersion int           // only if server_version_num is below this; 0 any
	Timeout         time.Duration // 0: the default start timeout
}

// ErrNoOperations is returned by a server built without Options.Ops.
var ErrNoOperations = errors.New("this server has no operations backend")
