package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// connectTimeout bounds establishing a connection (TCP + authentication).
	connectTimeout = 2 * time.Second
	// defaultQueryTimeout bounds a database round trip when the caller's
	// context has no deadline (pg_promote's own wait comes on top).
	defaultQueryTimeout = 10 * time.Second
)

// connConfig returns a pgx configuration for the superuser on host:port.
func (i *Instance) connConfig(host string, port int) (*pgx.ConnConfig, error) {
	cs := strings.Join([]string{
		"host=" + quoteConnValue(host),
		"port=" + strconv.Itoa(port),
		"user=" + quoteConnValue(i.s.Superuser.Username),
		"password=" + quoteConnValue(i.s.Superuser.Password),
		"passfile=" + quoteConnValue(i.s.PgPass),
		"dbname=postgres",
		"sslmode=prefer",
		"application_name=pgwarden",
		"connect_timeout=" + strconv.Itoa(int(connectTimeout/time.Second)),
	}, " ")
	cfg, err := pgx.ParseConfig(cs)
	if err != nil {
		return nil, err
	}
	// Every statement here is run once or is cheap to parse: the simple
	// protocol avoids prepared statements and their cache across reconnects.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return cfg, nil
}

// ConnectDB opens a new superuser connection to the local instance, to
// database db, with the given server settings (e.g. statement_timeout=0)
// sent at connection start. The caller closes it.
func (i *Instance) ConnectDB(ctx context.Context, db string, settings map[string]string) (*pgx.Conn, error) {
	cfg, err := i.connConfig(i.s.ConnectHost, i.s.Port)
	if err != nil {
		return nil, err
	}
	cfg.Database = db
	for k, v := range settings {
		cfg.RuntimeParams[k] = v
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout+time.Second)
	defer cancel()
	return pgx.ConnectConfig(cctx, cfg)
}

func (i *Instance) connect(ctx context.Context, host string, port int) (*pgx.Conn, error) {
	cfg, err := i.connConfig(host, port)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout+time.Second)
	defer cancel()
	return pgx.ConnectConfig(cctx, cfg)
}

// dropConnLocked closes the persistent connection; connMu must be held.
func (i *Instance) dropConnLocked() {
	if i.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = i.conn.Close(ctx)
		cancel()
		i.conn = nil
	}
}

// withConn runs fn on the persistent connection to the local instance,
// connecting first when needed. A failure that is not an SQL error drops
// the connection; if the connection was an old one (the server may have
// restarted under it) fn is retried once on a new connection.
func (i *Instance) withConn(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultQueryTimeout)
		defer cancel()
	}
	i.connMu.Lock()
	defer i.connMu.Unlock()
	for attempt := 0; ; attempt++ {
		reused := i.conn != nil && !i.conn.IsClosed()
		if !reused {
			i.dropConnLocked()
			c, err := i.connect(ctx, i.s.ConnectHost, i.s.Port)
			if err != nil {
				return fmt.Errorf("connecting to %s:%d: %w", i.s.ConnectHost, i.s.Port, err)
			}
			i.conn = c
		}
		err := fn(ctx, i.conn)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && !i.conn.IsClosed() {
			return err
		}
		i.dropConnLocked()
		if !reused || attempt > 0 || ctx.Err() != nil {
			return err
		}
	}
}

// observeSQL gathers everything Observe reports in one round trip.
// pg_walfile_name and pg_get_wal_replay_pause_state only work on one side of
// recovery, hence the CASEs.
const observeSQL = `
SELECT r.rec,
  CASE WHEN r.rec THEN NULL ELSE (pg_current_wal_lsn() - '0/0')::bigint END,
  CASE WHEN r.rec THEN 0 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  (pg_last_wal_receive_lsn() - '0/0')::bigint,
  (pg_last_wal_replay_lsn() - '0/0')::bigint,
  pg_last_xact_replay_timestamp(),
  CASE WHEN r.rec THEN pg_get_wal_replay_pause_state() <> 'not paused' ELSE false END,
  coalesce(w.status, ''),
  coalesce(w.received_tli, 0),
  coalesce(w.sender_host, ''),
  coalesce(w.sender_port, 0),
  (SELECT timeline_id FROM pg_control_checkpoint()),
  (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
  (SELECT system_identifier::text FROM pg_control_system()),
  current_setting('server_version_num')::int,
  pg_postmaster_start_time(),
  EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart),
  (SELECT coalesce(json_agg(json_build_object(
      'usename', coalesce(usename::text, ''),
      'application_name', coalesce(application_name, ''),
      'client_addr', coalesce(host(client_addr), ''),
      'state', coalesce(state, ''),
      'sync_state', coalesce(sync_state, ''),
      'sync_priority', coalesce(sync_priority, 0),
      'write_lsn', coalesce((write_lsn - '0/0')::bigint, 0),
      'flush_lsn', coalesce((flush_lsn - '0/0')::bigint, 0),
      'replay_lsn', coalesce((replay_lsn - '0/0')::bigint, 0)) ORDER BY application_name, pid), '[]'::json)
   FROM pg_stat_replication)
FROM (SELECT pg_is_in_recovery() AS rec OFFSET 0) r
LEFT JOIN pg_stat_wal_receiver w ON true`

// Observe queries the local instance. When no postmaster runs it returns
// State{} and no error; when one runs but does not answer (starting up,
// shutting down, wedged) it returns State{Running: true} and the error.
//
// Timeline is the WAL insert timeline on a primary (exact right after a
// promotion, unlike the checkpoint's). On a standby it is the timeline of
// the WAL last received when a WAL receiver runs, otherwise the newest of
// the last restartpoint's and the minimum recovery point's timelines.
func (i *Instance) Observe(ctx context.Context) (State, error) {
	if !i.IsRunning() {
		i.Close()
		return State{}, nil
	}
	var st State
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		err := scanState(ctx, c, &st)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55000" {
			// The server was promoted between pg_is_in_recovery() and a
			// function that only works on one side: ask again.
			st = State{}
			err = scanState(ctx, c, &st)
		}
		return err
	})
	if err != nil {
		return State{Running: i.IsRunning()}, fmt.Errorf("observing postgres: %w", err)
	}
	st.Running = true
	st.Accepting = true
	return st, nil
}

func scanState(ctx context.Context, c *pgx.Conn, st *State) error {
	var (
		walLSN, recvLSN, replayLSN *int64
		replayTime, startTime      *time.Time
		primaryTLI, receivedTLI    int
		checkpointTLI, minRecTLI   int
		walStatus                  string
	)
	err := c.QueryRow(ctx, observeSQL).Scan(
		&st.InRecovery, &walLSN, &primaryTLI, &recvLSN, &replayLSN, &replayTime,
		&st.ReplayPaused, &walStatus, &receivedTLI, &st.UpstreamHost, &st.UpstreamPort,
		&checkpointTLI, &minRecTLI, &st.SystemID, &st.ServerVersion, &startTime,
		&st.PendingRestart, &st.Replication,
	)
	if err != nil {
		return err
	}
	if startTime != nil {
		st.StartTime = *startTime
	}
	st.Timeline = timelineOf(st.InRecovery, primaryTLI, receivedTLI, checkpointTLI, minRecTLI)
	if !st.InRecovery {
		if walLSN != nil {
			st.WALPosition = *walLSN
		}
		st.ReplayPaused = false
		return nil
	}
	if recvLSN != nil {
		st.ReceivedLSN = *recvLSN
	}
	if replayLSN != nil {
		st.ReplayedLSN = *replayLSN
	}
	if replayTime != nil {
		st.ReplayedTime = *replayTime
	}
	st.WALPosition = max(st.ReceivedLSN, st.ReplayedLSN)
	st.Streaming = walStatus == "streaming"
	return nil
}

// timelineOf picks the timeline a server is on from what observeSQL (or
// the switchpoint query) returns.
func timelineOf(inRecovery bool, primaryTLI, receivedTLI, checkpointTLI, minRecTLI int) int {
	if !inRecovery {
		return primaryTLI
	}
	if receivedTLI > 0 {
		return receivedTLI
	}
	return max(checkpointTLI, minRecTLI)
}

// CreateRoles, on a running primary, sets the superuser's password and
// creates (or updates) the replication role with REPLICATION LOGIN and its
// password. Statement logging is suppressed so passwords stay out of the
// server log.
func (i *Instance) CreateRoles(ctx context.Context) error {
	su, repl := i.s.Superuser, i.s.Replication
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.Background()) }()
		var inRecovery bool
		if err := tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return err
		}
		if inRecovery {
			return errors.New("the instance is a standby")
		}
		stmts := []string{
			"SET LOCAL log_statement = 'none'",
			"SET LOCAL log_min_duration_statement = -1",
			"SET LOCAL log_min_error_statement = 'panic'",
			"SET LOCAL synchronous_commit = 'local'",
		}
		if su.Password != "" {
			stmts = append(stmts, "ALTER ROLE "+pgx.Identifier{su.Username}.Sanitize()+" WITH PASSWORD "+quoteLiteral(su.Password))
		}
		if repl.Username != su.Username {
			var exists bool
			q := "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = " + quoteLiteral(repl.Username) + ")"
			if err := tx.QueryRow(ctx, q).Scan(&exists); err != nil {
				return err
			}
			verb := "CREATE"
			if exists {
				verb = "ALTER"
			}
			s := verb + " ROLE " + pgx.Identifier{repl.Username}.Sanitize() + " WITH REPLICATION LOGIN"
			if repl.Password != "" {
				s += " PASSWORD " + quoteLiteral(repl.Password)
			}
			stmts = append(stmts, s)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return fmt.Errorf("creating roles: %w", err)
	}
	return nil
}

// timelineSQL returns what timelineOf needs.
const timelineSQL = `
SELECT r.rec,
  CASE WHEN r.rec THEN 0 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0),
  (SELECT timeline_id FROM pg_control_checkpoint()),
  (SELECT min_recovery_end_timeline FROM pg_control_recovery())
FROM (SELECT pg_is_in_recovery() AS rec OFFSET 0) r`

// TimelineSwitchpoint asks the server at upstream (as the superuser) where
// timeline tli ended, i.e. the LSN at which tli+1 or a later timeline of
// the upstream's history branched off it. found is false when tli is the
// upstream's current timeline. A tli newer than the upstream's is an
// error, and one that is not in its history wraps ErrNotInHistory.
func (i *Instance) TimelineSwitchpoint(ctx context.Context, upstream ConnInfo, tli int) (int64, bool, error) {
	if tli < 1 {
		return 0, false, fmt.Errorf("timeline switchpoint: invalid timeline %d", tli)
	}
	c, err := i.connect(ctx, upstream.Host, upstream.Port)
	if err != nil {
		return 0, false, fmt.Errorf("timeline switchpoint: connecting to %s: %w", upstream, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(cctx)
		cancel()
	}()
	var (
		inRecovery                                        bool
		primaryTLI, receivedTLI, checkpointTLI, minRecTLI int
	)
	err = c.QueryRow(ctx, timelineSQL).Scan(&inRecovery, &primaryTLI, &receivedTLI, &checkpointTLI, &minRecTLI)
	if err != nil {
		return 0, false, fmt.Errorf("timeline switchpoint: querying %s: %w", upstream, err)
	}
	cur := timelineOf(inRecovery, primaryTLI, receivedTLI, checkpointTLI, minRecTLI)
	switch {
	case tli == cur:
		return 0, false, nil
	case tli > cur:
		return 0, false, fmt.Errorf("timeline switchpoint: timeline %d is newer than %s's current timeline %d", tli, upstream, cur)
	}
	var history string
	q := fmt.Sprintf("SELECT pg_read_file('pg_wal/%08X.history')", cur)
	if err := c.QueryRow(ctx, q).Scan(&history); err != nil {
		return 0, false, fmt.Errorf("timeline switchpoint: reading the history of timeline %d on %s: %w", cur, upstream, err)
	}
	lsn, ok, err := parseHistory(history, tli)
	if err != nil {
		return 0, false, fmt.Errorf("timeline switchpoint: history of timeline %d on %s: %w", cur, upstream, err)
	}
	if !ok {
		return 0, false, fmt.Errorf("timeline switchpoint: timeline %d on %s: %w", tli, upstream, ErrNotInHistory)
	}
	return lsn, true, nil
}

// parseHistory finds the switchpoint of timeline tli in a timeline history
// file ("parentTLI<tab>switchpoint<tab>reason" lines, # comments).
func parseHistory(history string, tli int) (int64, bool, error) {
	lines, err := parseHistoryLines(history)
	if err != nil {
		return 0, false, err
	}
	for _, l := range lines {
		if l.Timeline == tli {
			return l.LSN, true, nil
		}
	}
	return 0, false, nil
}

// parseLSN parses PostgreSQL's "XXXXXXXX/XXXXXXXX" notation.
func parseLSN(s string) (int64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return int64(h<<32 | l), nil
}

// FormatLSN renders an LSN the way PostgreSQL does ("0/3000060").
func FormatLSN(lsn int64) string {
	return fmt.Sprintf("%X/%X", uint64(lsn)>>32, uint64(lsn)&0xFFFFFFFF)
}
