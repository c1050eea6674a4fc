package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CanRewind reports whether pg_rewind can be used on the data directory:
// the pg_rewind binary is there and pg_controldata shows data checksums or
// wal_log_hints (as of the server's last run: a data directory that never
// ran with the managed configuration, which sets wal_log_hints, may say
// off). When it cannot, the string says why.
func (i *Instance) CanRewind() (bool, string) {
	if _, err := os.Stat(filepath.Join(i.s.BinDir, "pg_rewind")); err != nil {
		return false, fmt.Sprintf("pg_rewind is not available: %v", err)
	}
	cd, err := i.ControlData()
	if err != nil {
		return false, fmt.Sprintf("pg_controldata: %v", err)
	}
	if cd.DataChecksumVersion == 0 && !cd.WALLogHints {
		return false, "neither data checksums nor wal_log_hints are enabled"
	}
	return true, ""
}

// RewindLogFile is where Rewind appends pg_rewind's output: next to the
// server log, pg_rewind.<name>.log.
func (i *Instance) RewindLogFile() string {
	return filepath.Join(filepath.Dir(i.s.LogFile), "pg_rewind."+i.s.Name+".log")
}

// Rewind synchronizes the stopped local data directory with source after
// their timelines diverged, with pg_rewind, connecting to source as the
// superuser (password from the pgpass file), and leaves the instance
// configured as a standby of source (WriteConfig(true, &source); call
// WriteConfig again to stream from elsewhere).
//
// Before pg_rewind runs, source is checked: when it is a primary whose
// last checkpoint is still on an older timeline (right after a promotion)
// a CHECKPOINT is run there, since pg_rewind reads the source's timeline
// from its control file. If that fails, the error wraps both
// ErrRewindFailed and ErrRewindSourceUnavailable and nothing was changed.
//
// A target that was not shut down cleanly is first put through crash
// recovery by pg_rewind itself (PostgreSQL 13+: postgres --single); for
// that, standby.signal and recovery.signal are removed beforehand
// (single-user mode refuses standby mode). The source's copies of
// postgresql.conf, pg_hba.conf and postgresql.auto.conf arrive with the
// rewind; the rewritten configuration replaces the first two and node
// settings are removed from the third (see WriteConfig). The source's
// Unix socket lock files are removed.
//
// pg_rewind's output goes to the logger and is appended to
// RewindLogFile(). On failure the error wraps ErrRewindFailed and carries
// pg_rewind's last lines; standby.signal is then put back if it was there.
func (i *Instance) Rewind(ctx context.Context, source ConnInfo) error {
	if source.Host == "" || source.Port <= 0 || source.Port > 65535 {
		return fmt.Errorf("%w: invalid source %q", ErrRewindFailed, source.String())
	}
	if i.IsRunning() {
		return fmt.Errorf("%w: %w", ErrRewindFailed, ErrRunning)
	}
	i.Close()
	if err := i.checkAccess(); err != nil {
		return fmt.Errorf("%w: %w", ErrRewindFailed, err)
	}
	if _, err := os.Stat(filepath.Join(i.s.DataDir, "PG_VERSION")); err != nil {
		return fmt.Errorf("%w: postgresql.data_dir %s does not hold a cluster: %w", ErrRewindFailed, i.s.DataDir, err)
	}
	if err := i.writePgPass(); err != nil {
		return fmt.Errorf("%w: %w", ErrRewindFailed, err)
	}
	if err := i.prepareRewindSource(ctx, source); err != nil {
		return fmt.Errorf("%w: %w: %w", ErrRewindFailed, ErrRewindSourceUnavailable, err)
	}

	hadStandbySignal := false
	for _, sig := range []string{standbySig, recoverySig} {
		err := os.Remove(filepath.Join(i.s.DataDir, sig))
		if err == nil && sig == standbySig {
			hadStandbySignal = true
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrRewindFailed, err)
		}
	}

	began := time.Now()
	tail, err := i.runRewind(ctx, source)
	if err != nil {
		if hadStandbySignal {
			if serr := i.writeOwned(filepath.Join(i.s.DataDir, standbySig), nil, 0o600); serr != nil {
				i.log.Error("putting standby.signal back after a failed rewind", "err", serr)
			}
		}
		if tail != "" {
			return fmt.Errorf("%w (from %s): %w\n%s", ErrRewindFailed, source, err, tail)
		}
		return fmt.Errorf("%w (from %s): %w", ErrRewindFailed, source, err)
	}
	i.log.Info("pg_rewind finished", "source", source.String(), "took", time.Since(began).Round(time.Millisecond))

	// What came from the source and describes the source, not us.
	if locks, _ := filepath.Glob(filepath.Join(i.s.DataDir, ".s.PGSQL.*")); len(locks) > 0 {
		for _, l := range locks {
			_ = os.Remove(l)
		}
	}
	for _, f := range []string{recoverySig, "postmaster.pid", "postmaster.opts"} {
		_ = os.Remove(filepath.Join(i.s.DataDir, f))
	}
	if err := i.WriteConfig(true, &source); err != nil {
		return fmt.Errorf("%w: rewound, but writing the configuration failed: %w", ErrRewindFailed, err)
	}
	return nil
}

// prepareRewindSource connects to source as the superuser and, when it is
// a primary whose checkpoint has not caught up with its timeline yet,
// runs a CHECKPOINT there.
func (i *Instance) prepareRewindSource(ctx context.Context, source ConnInfo) error {
	c, err := i.connect(ctx, source.Host, source.Port)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", source, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(cctx)
		cancel()
	}()
	qctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeout(ctx, 5*time.Minute) // a checkpoint may take long
		defer cancel()
	}
	var (
		inRecovery                                        bool
		primaryTLI, receivedTLI, checkpointTLI, minRecTLI int
	)
	if err := c.QueryRow(qctx, timelineSQL).Scan(&inRecovery, &primaryTLI, &receivedTLI, &checkpointTLI, &minRecTLI); err != nil {
		return fmt.Errorf("querying %s: %w", source, err)
	}
	if inRecovery || checkpointTLI == primaryTLI {
		return nil
	}
	i.log.Info("running a checkpoint on the rewind source so that its control file shows its timeline",
		"source", source.String(), "timeline", primaryTLI, "checkpoint_timeline", checkpointTLI)
	if _, err := c.Exec(qctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint on %s: %w", source, err)
	}
	return nil
}

// rewindConnString is the libpq connection string pg_rewind uses.
func (i *Instance) rewindConnString(source ConnInfo) string {
	kv := []confSetting{
		{"host", source.Host},
		{"port", strconv.Itoa(source.Port)},
		{"user", i.s.Superuser.Username},
		{"dbname", "postgres"},
		{"passfile", i.s.PgPass},
		{"application_name", "pgwarden_rewind"},
		{"sslmode", "prefer"},
		{"connect_timeout", "5"},
	}
	parts := make([]string, len(kv))
	for k, s := range kv {
		parts[k] = s.name + "=" + quoteConnValue(s.value)
	}
	return strings.Join(parts, " ")
}

// runRewind runs pg_rewind, streaming its output to the logger and the
// rewind log file, and returns its last lines.
func (i *Instance) runRewind(ctx context.Context, source ConnInfo) (string, error) {
	cs := i.rewindConnString(source)
	args := []string{"--target-pgdata=" + i.s.DataDir, "--source-server=" + cs, "--progress"}

	logPath := i.RewindLogFile()
	var logf *os.File
	if err := mkdirParents(logPath); err == nil {
		logf, err = os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			i.log.Warn("cannot open the pg_rewind log file", "path", logPath, "err", err)
		}
	}
	if logf != nil {
		defer logf.Close()
		fmt.Fprintf(logf, "%s pgwarden: running pg_rewind --target-pgdata=%s --source-server=%q --progress\n",
			time.Now().Format(time.RFC3339), i.s.DataDir, cs)
	}

	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	cmd := i.command(ctx, "pg_rewind", args,
		"PGPASSFILE="+i.s.PgPass, "PGOPTIONS=-c statement_timeout=0", "LC_ALL=C", "LANG=C", "LANGUAGE=C")
	cmd.Stdout = w
	cmd.Stderr = w
	i.log.Info("running pg_rewind", "source", source.String(), "data_dir", i.s.DataDir, "log", logPath)

	var (
		mu    sync.Mutex
		lines []string
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sc.Split(scanLinesCR)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), " ")
			if line == "" {
				continue
			}
			i.log.Info("pg_rewind", "output", line)
			if logf != nil {
				fmt.Fprintf(logf, "%s\n", line)
			}
			mu.Lock()
			lines = append(lines, line)
			if len(lines) > 40 {
				lines = lines[len(lines)-20:]
			}
			mu.Unlock()
		}
	}()
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		<-done
		return "", fmt.Errorf("pg_rewind: %w", err)
	}
	err = cmd.Wait()
	<-done
	r.Close()
	mu.Lock()
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	tail := strings.Join(lines, "\n")
	mu.Unlock()
	if logf != nil {
		status := "ok"
		if err != nil {
			status = err.Error()
		}
		fmt.Fprintf(logf, "%s pgwarden: pg_rewind finished: %s\n", time.Now().Format(time.RFC3339), status)
	}
	if err != nil {
		return tail, fmt.Errorf("pg_rewind: %w", err)
	}
	return tail, nil
}

// scanLinesCR splits on \n, \r\n and lone \r (progress lines written for a
// terminal).
func scanLinesCR(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if k := bytes.IndexAny(data, "\r\n"); k >= 0 {
		adv := k + 1
		if data[k] == '\r' && k+1 < len(data) && data[k+1] == '\n' {
			adv++
		} else if data[k] == '\r' && k+1 == len(data) && !atEOF {
			return 0, nil, nil // maybe \r\n split across reads
		}
		return adv, data[:k], nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// dangerousDataDirs are never emptied by RemoveDataDir.
var dangerousDataDirs = map[string]bool{
	"/": true, "/bin": true, "/boot": true, "/dev": true, "/etc": true, "/home": true,
	"/lib": true, "/lib32": true, "/lib64": true, "/media": true, "/mnt": true, "/opt": true,
	"/proc": true, "/root": true, "/run": true, "/sbin": true, "/srv": true, "/sys": true,
	"/tmp": true, "/usr": true, "/var": true, "/var/lib": true, "/var/tmp": true,
	"/var/lib/postgresql": true, "/usr/lib": true, "/usr/local": true,
}

// RemoveDataDir deletes everything in the data directory of a stopped
// instance (the directory itself stays, with its owner and mode), for a
// reinitialization. When pg_wal is a symbolic link its target is emptied
// too, and so are the PG_* directories of tablespaces (pg_tblspc links).
// It refuses while the server runs, for system directories (/, /usr, /var,
// the OS user's home...), and for a non-empty directory that has no
// PG_VERSION file (it does not look like a data directory). A missing data
// directory is fine.
func (i *Instance) RemoveDataDir() error {
	dd := filepath.Clean(i.s.DataDir)
	if dangerousDataDirs[dd] || (i.runAs != nil && filepath.Clean(i.runAs.home) == dd) {
		return fmt.Errorf("remove data directory: refusing to empty %s", dd)
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.Clean(home) == dd {
		return fmt.Errorf("remove data directory: refusing to empty %s", dd)
	}
	if i.IsRunning() {
		return fmt.Errorf("remove data directory: %w", ErrRunning)
	}
	i.Close()
	empty, err := i.DataDirEmpty()
	if err != nil {
		return fmt.Errorf("remove data directory: %w", err)
	}
	if empty {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(dd, "PG_VERSION")); err != nil {
		return fmt.Errorf("remove data directory: refusing to empty %s: it has no PG_VERSION, so it does not look like a PostgreSQL data directory", dd)
	}
	i.log.Warn("removing the data directory's contents", "data_dir", dd)
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if target, err := os.Readlink(filepath.Join(dd, "pg_wal")); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(dd, target)
		}
		i.log.Warn("removing the WAL directory's contents", "wal_dir", target)
		keep(emptyDir(target))
	}
	if links, err := os.ReadDir(filepath.Join(dd, "pg_tblspc")); err == nil {
		for _, l := range links {
			target, err := os.Readlink(filepath.Join(dd, "pg_tblspc", l.Name()))
			if err != nil {
				continue
			}
			versions, _ := filepath.Glob(filepath.Join(target, "PG_*"))
			for _, v := range versions {
				i.log.Warn("removing a tablespace directory", "path", v)
				keep(os.RemoveAll(v))
			}
		}
	}
	keep(emptyDir(dd))
	if first != nil {
		return fmt.Errorf("remove data directory: %w", first)
	}
	return nil
}
