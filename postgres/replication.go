package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SlotName returns the replication slot name Patroni uses for a member
// (slot_name_from_member_name), so that slots survive a switch between
// Patroni and pgwarden: the name is lowercased the way Python's str.lower()
// does it, then '-' and '.' become '_', every other character outside
// [a-z0-9_] becomes 'u' followed by its code point in decimal, at least four
// digits ("é" -> "u0233", " " -> "u0032"), and the result is cut to 63
// bytes (it is ASCII by then). There is no Unicode normalization: a
// precomposed "é" and "e" + U+0301 give different names, as in Patroni.
// Invalid UTF-8 bytes count as U+FFFD. Different members may map to the
// same name.
func SlotName(member string) string {
	rs := []rune(member)
	var b strings.Builder
	for k := range rs {
		for _, r := range pyLower(rs, k) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
				b.WriteRune(r)
			case r == '-' || r == '.':
				b.WriteByte('_')
			default:
				fmt.Fprintf(&b, "u%04d", r)
			}
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// pyLower lowercases rs[k] like Python's str.lower(): Unicode simple
// lowercasing plus the two special cases Python applies, U+0130 (capital I
// with dot above, which becomes "i" + U+0307) and the final sigma rule.
func pyLower(rs []rune, k int) []rune {
	switch r := rs[k]; r {
	case 'İ':
		return []rune{'i', '\u0307'}
	case 'Σ':
		if finalSigma(rs, k) {
			return []rune{'ς'}
		}
		return []rune{'σ'}
	default:
		return []rune{unicode.ToLower(r)}
	}
}

// finalSigma: rs[k] is preceded by a cased letter and not followed by one,
// skipping case-ignorable characters either way (Unicode's Final_Sigma).
func finalSigma(rs []rune, k int) bool {
	j := k - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	j = k + 1
	for j < len(rs) && caseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !cased(rs[j])
}

func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

func caseIgnorable(r rune) bool {
	switch r {
	// Word_Break MidLetter, MidNumLet and Single_Quote.
	case '\'', '.', ':', '\u00b7', '\u0387', '\u055f', '\u05f4', '\u2018', '\u2019', '\u2024', '\u2027',
		'\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// ReplicationSlots lists the local server's replication slots, except
// temporary ones: those belong to a session (pg_basebackup streaming WAL
// for a clone, say) and go with it; dropping one would kill that session.
func (i *Instance) ReplicationSlots(ctx context.Context) ([]Slot, error) {
	var slots []Slot
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		slots = nil
		rows, err := c.Query(ctx, `
SELECT slot_name::text, slot_type, active, coalesce(active_pid, 0),
  coalesce((restart_lsn - '0/0')::bigint, 0),
  coalesce((confirmed_flush_lsn - '0/0')::bigint, 0)
FROM pg_replication_slots WHERE NOT temporary ORDER BY slot_name`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s Slot
			if err := rows.Scan(&s.Name, &s.Type, &s.Active, &s.ActivePID, &s.RestartLSN, &s.ConfirmedFlushLSN); err != nil {
				rows.Close()
				return err
			}
			slots = append(slots, s)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("listing replication slots: %w", err)
	}
	return slots, nil
}

// CreatePhysicalSlot creates a physical replication slot; with reserveWAL
// it reserves WAL from now on (immediately_reserve) rather than from the
// first connection. A physical slot of that name that already exists is
// fine; a logical one is an error.
func (i *Instance) CreatePhysicalSlot(ctx context.Context, name string, reserveWAL bool) error {
	if name == "" {
		return errors.New("create slot: empty name")
	}
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		var typ string
		err := c.QueryRow(ctx, "SELECT slot_type FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&typ)
		switch {
		case err == nil && typ == "physical":
			return nil
		case err == nil:
			return fmt.Errorf("a %s slot of that name exists", typ)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		_, err = c.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, $2)", name, reserveWAL)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created meanwhile
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("creating replication slot %q: %w", name, err)
	}
	return nil
}

// DropSlot drops a replication slot; one that does not exist is fine. An
// active slot's user (a walsender) is terminated first, as often as needed
// until the drop succeeds or ctx ends: a standby's WAL receiver reconnects
// within wal_retrieve_retry_interval and may grab the slot again meanwhile.
func (i *Instance) DropSlot(ctx context.Context, name string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultQueryTimeout)
		defer cancel()
	}
	for {
		var (
			gone    bool
			pid     int
			dropErr error
		)
		err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
			var active bool
			err := c.QueryRow(ctx, "SELECT active, coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&active, &pid)
			if errors.Is(err, pgx.ErrNoRows) {
				gone = true
				return nil
			}
			if err != nil {
				return err
			}
			if active && pid > 0 {
				i.log.Info("terminating the user of an active replication slot before dropping it", "slot", name, "pid", pid)
				if _, err := c.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
					return err
				}
			}
			_, err = c.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				switch pgErr.Code {
				case "42704": // undefined_object: dropped meanwhile
					gone = true
					return nil
				case "55006": // object_in_use: the terminated walsender has not let go yet
					dropErr = err
					return nil
				}
			}
			if err == nil {
				gone = true
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("dropping replication slot %q: %w", name, err)
		}
		if gone {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dropping replication slot %q: %w (last: %v)", name, ctx.Err(), dropErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// AdvanceSlot moves a slot's restart_lsn (physical) or confirmed flush
// position (logical) forward to lsn with pg_replication_slot_advance.
// Advancing to a position at or before the current one does nothing; lsn
// beyond the server's current (or, on a standby, replayed) position is
// capped by PostgreSQL. A physical slot must already reserve WAL.
func (i *Instance) AdvanceSlot(ctx context.Context, name string, lsn int64) error {
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		var cur *int64
		err := c.QueryRow(ctx, `SELECT CASE WHEN slot_type = 'logical' THEN (confirmed_flush_lsn - '0/0')::bigint
  ELSE (restart_lsn - '0/0')::bigint END FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&cur)
		if err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return errors.New("no such slot")
			}
			return err
		}
		if cur != nil && *cur >= lsn {
			return nil
		}
		_, err = c.Exec(ctx, "SELECT pg_replication_slot_advance($1, $2::pg_lsn)", name, FormatLSN(lsn))
		return err
	})
	if err != nil {
		return fmt.Errorf("advancing replication slot %q to %s: %w", name, FormatLSN(lsn), err)
	}
	return nil
}

// SyncStandbyNames formats a synchronous_standby_names value that makes
// the first n available standbys of names (in this priority order)
// synchronous: FIRST n ("a","b"). Names are always double-quoted (a " is
// doubled), so any application_name can be used; PostgreSQL compares them
// case-insensitively. n is capped to len(names); n < 1 or no names give "",
// which turns synchronous replication off.
func SyncStandbyNames(n int, names []string) string {
	if n < 1 || len(names) == 0 {
		return ""
	}
	n = min(n, len(names))
	q := make([]string, len(names))
	for k, name := range names {
		q[k] = `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	}
	return fmt.Sprintf("FIRST %d (%s)", n, strings.Join(q, ","))
}

// SyncStrictPlaceholder is the standby name Patroni puts in
// synchronous_standby_names when synchronous_mode_strict has no standby to
// name: no standby has it as application_name, so commits wait.
const SyncStrictPlaceholder = "__patroni_strict_sync_replica_placeholder__"

// SetSynchronousStandbyNames makes value synchronous_standby_names in the
// managed configuration (it wins over Parameters from now on and is kept
// by every later WriteConfig, until the process ends), rewrites the
// configuration for the role of the last WriteConfig, reloads and waits,
// bounded by ctx, until the server reports value. If WriteConfig was not
// called in this process, a data directory without standby.signal is
// configured as a primary; one with it is an error (its upstream is
// unknown).
//
// A value PostgreSQL rejects is reported as soon as pg_file_settings
// shows the error. Note that the setting only has an effect on a primary;
// a standby keeps it and applies it when promoted.
func (i *Instance) SetSynchronousStandbyNames(ctx context.Context, value string) error {
	if strings.ContainsAny(value, "\x00") {
		return errors.New("synchronous_standby_names: NUL character")
	}
	i.confMu.Lock()
	role := i.lastRole
	if role == nil {
		if _, err := os.Stat(filepath.Join(i.s.DataDir, standbySig)); err == nil {
			i.confMu.Unlock()
			return errors.New("synchronous_standby_names: the instance is a standby whose upstream is unknown; call WriteConfig first")
		}
		role = &configRole{}
	}
	old := i.syncNames
	v := value
	i.syncNames = &v
	err := i.writeConfigLocked(role.standby, role.upstream)
	if err != nil {
		i.syncNames = old
	}
	i.confMu.Unlock()
	if err != nil {
		return fmt.Errorf("synchronous_standby_names: %w", err)
	}
	if !i.IsRunning() {
		return nil
	}
	if err := i.Reload(ctx); err != nil {
		return fmt.Errorf("synchronous_standby_names: %w", err)
	}
	for {
		var cur string
		var fileErr *string
		err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
			return c.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'),
  (SELECT error FROM pg_file_settings WHERE name = 'synchronous_standby_names' AND error IS NOT NULL LIMIT 1)`).Scan(&cur, &fileErr)
		})
		if err != nil {
			return fmt.Errorf("synchronous_standby_names: %w", err)
		}
		if cur == value {
			i.log.Info("synchronous_standby_names applied", "value", value)
			return nil
		}
		if fileErr != nil {
			return fmt.Errorf("synchronous_standby_names %q not applied: %s (see the server log)", value, *fileErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("synchronous_standby_names: waiting for the server to apply %q (it has %q): %w", value, cur, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// SyncState returns pg_stat_replication, ordered by application_name.
// SyncState is "sync", "potential", "quorum" or "async".
func (i *Instance) SyncState(ctx context.Context) ([]Replica, error) {
	var out []Replica
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		out = nil
		rows, err := c.Query(ctx, `
SELECT coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(host(client_addr), ''),
  coalesce(state, ''), coalesce(sync_state, ''), coalesce(sync_priority, 0),
  coalesce((write_lsn - '0/0')::bigint, 0), coalesce((flush_lsn - '0/0')::bigint, 0),
  coalesce((replay_lsn - '0/0')::bigint, 0)
FROM pg_stat_replication ORDER BY application_name, pid`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r Replica
			if err := rows.Scan(&r.Usename, &r.ApplicationName, &r.ClientAddr, &r.State, &r.SyncState,
				&r.SyncPriority, &r.WriteLSN, &r.FlushLSN, &r.ReplayLSN); err != nil {
				rows.Close()
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("reading pg_stat_replication: %w", err)
	}
	return out, nil
}

// HistoryFile returns the history of the local server's current timeline
// (pg_wal/<TLI>.history, read with pg_read_file): one line per ancestor
// timeline, oldest first. It is empty on timeline 1. The current timeline
// is determined as Observe does.
func (i *Instance) HistoryFile(ctx context.Context) ([]TimelineHistoryLine, error) {
	var history string
	var tli int
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		var (
			inRecovery                                        bool
			primaryTLI, receivedTLI, checkpointTLI, minRecTLI int
		)
		if err := c.QueryRow(ctx, timelineSQL).Scan(&inRecovery, &primaryTLI, &receivedTLI, &checkpointTLI, &minRecTLI); err != nil {
			return err
		}
		tli = timelineOf(inRecovery, primaryTLI, receivedTLI, checkpointTLI, minRecTLI)
		if tli <= 1 {
			return nil
		}
		return c.QueryRow(ctx, fmt.Sprintf("SELECT pg_read_file('pg_wal/%08X.history')", tli)).Scan(&history)
	})
	if err != nil {
		return nil, fmt.Errorf("reading the timeline history: %w", err)
	}
	lines, err := parseHistoryLines(history)
	if err != nil {
		return nil, fmt.Errorf("timeline %d history: %w", tli, err)
	}
	return lines, nil
}

// parseHistoryLines parses a timeline history file: lines of
// "parentTLI<tab>switchpoint<tab>reason"; blank lines and # comments are
// skipped.
func parseHistoryLines(history string) ([]TimelineHistoryLine, error) {
	out := []TimelineHistoryLine{}
	for _, line := range strings.Split(history, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		tli, err := strconv.Atoi(fields[0])
		if err != nil || tli < 1 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		lsn, err := parseLSN(fields[1])
		if err != nil {
			return nil, fmt.Errorf("malformed line %q: %w", line, err)
		}
		// The reason is everything after the second field.
		rest := strings.TrimSpace(line[strings.Index(line, fields[0])+len(fields[0]):])
		rest = strings.TrimSpace(rest[len(fields[1]):])
		out = append(out, TimelineHistoryLine{Timeline: tli, LSN: lsn, Reason: rest})
	}
	return out, nil
}
