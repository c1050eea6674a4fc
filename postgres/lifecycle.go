package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/proc"
)

// DataDirEmpty reports whether the data directory does not exist or has no
// entries.
func (i *Instance) DataDirEmpty() (bool, error) {
	f, err := os.Open(i.s.DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgresql.data_dir: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgresql.data_dir %s: %w", i.s.DataDir, err)
	}
	return len(names) == 0, nil
}

// Initdb creates a new cluster in the (empty or missing) data directory and
// writes the managed configuration for a primary. Data checksums are turned
// on unless InitdbOptions already asks for them.
func (i *Instance) Initdb(ctx context.Context) error {
	if err := i.prepareEmptyDataDir(); err != nil {
		return err
	}
	var args []string
	checksums := false
	for _, o := range i.s.InitdbOptions {
		o = normalizeInitdbOption(o)
		if o == "" {
			continue
		}
		if o == "--data-checksums" || o == "-k" {
			checksums = true
		}
		args = append(args, o)
	}
	if !checksums {
		args = append(args, "--data-checksums")
	}
	// Ours come last so that they win over anything in InitdbOptions.
	args = append(args, "-D", i.s.DataDir, "-U", i.s.Superuser.Username, "--auth-local=trust")
	if pw := i.s.Superuser.Password; pw != "" {
		pwfile, err := i.writeTempOwned(filepath.Dir(i.s.DataDir), ".pgwarden-pwfile-*", pw+"\n")
		if err != nil {
			return fmt.Errorf("initdb: password file: %w", err)
		}
		defer os.Remove(pwfile)
		args = append(args, "--pwfile="+pwfile, "--auth-host=scram-sha-256")
	} else {
		args = append(args, "--auth-host=trust")
	}
	i.log.Info("running initdb", "data_dir", i.s.DataDir)
	if _, _, err := i.run(ctx, "initdb", args); err != nil {
		return err
	}
	return i.WriteConfig(false, nil)
}

// normalizeInitdbOption turns "data-checksums" or "encoding=UTF8" into
// "--data-checksums" / "--encoding=UTF8"; options with dashes are kept.
func normalizeInitdbOption(o string) string {
	o = strings.TrimSpace(o)
	switch {
	case o == "" || strings.HasPrefix(o, "-"):
		return o
	case len(o) == 1:
		return "-" + o
	}
	return "--" + o
}

// writeTempOwned writes content to a new 0600 temp file in dir owned by
// the OS user and returns its path.
func (i *Instance) writeTempOwned(dir, pattern, content string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(name, 0o600)
	}
	if err == nil {
		err = i.chown(name)
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// Basebackup clones the cluster at from into the (empty or missing) data
// directory with pg_basebackup as the replication user, then configures
// the instance as a standby of from. On failure the data directory is
// emptied again.
func (i *Instance) Basebackup(ctx context.Context, from ConnInfo) error {
	if from.Host == "" || from.Port <= 0 {
		return fmt.Errorf("basebackup: invalid source %q", from.String())
	}
	if err := i.prepareEmptyDataDir(); err != nil {
		return err
	}
	if err := i.writePgPass(); err != nil {
		return err
	}
	args := []string{
		"-D", i.s.DataDir, "-X", "stream", "-c", "fast",
		"-h", from.Host, "-p", strconv.Itoa(from.Port),
		"-U", i.s.Replication.Username, "--no-password",
	}
	i.log.Info("running pg_basebackup", "from", from.String(), "data_dir", i.s.DataDir)
	_, _, err := i.run(ctx, "pg_basebackup", args, "PGPASSFILE="+i.s.PgPass,
		// Not the member's name: the source would take the backup's WAL
		// stream for that member streaming, and could count its
		// acknowledgements as a synchronous standby's.
		"PGAPPNAME=pgwarden basebackup for "+i.s.Name)
	if err != nil {
		if cerr := emptyDir(i.s.DataDir); cerr != nil {
			i.log.Error("cleaning up after failed pg_basebackup", "data_dir", i.s.DataDir, "err", cerr)
		}
		return fmt.Errorf("basebackup from %s: %w", from, err)
	}
	// The source's Unix socket lock files come along when its socket lives
	// in the data directory; they describe a server that is not ours.
	if locks, _ := filepath.Glob(filepath.Join(i.s.DataDir, ".s.PGSQL.*")); len(locks) > 0 {
		for _, l := range locks {
			_ = os.Remove(l)
		}
	}
	return i.WriteConfig(true, &from)
}

// emptyDir removes everything inside dir but not dir itself.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var first error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Start starts the server with pg_ctl start -w and waits up to timeout for
// it to accept connections. The server's stderr goes to Settings.LogFile.
// Nothing happens when it is already running. If pg_ctl gives up waiting
// while the postmaster keeps running, the error wraps ErrStartTimeout and
// the server is left running; otherwise the error carries the log's tail.
func (i *Instance) Start(ctx context.Context, timeout time.Duration) error {
	if err := i.checkAccess(); err != nil {
		return err
	}
	if i.IsRunning() {
		return nil
	}
	if _, err := os.Stat(filepath.Join(i.s.DataDir, "PG_VERSION")); err != nil {
		return fmt.Errorf("postgresql.data_dir %s does not hold a cluster: %w", i.s.DataDir, err)
	}
	// A postmaster.pid whose process is gone (or a zombie) would make the
	// postmaster refuse to start if the pid has been reused meanwhile.
	if err := os.Remove(filepath.Join(i.s.DataDir, "postmaster.pid")); err == nil {
		i.log.Info("removed stale postmaster.pid", "data_dir", i.s.DataDir)
	}
	i.removeStaleSocketLocks()
	logOffset, err := i.prepareLogFile()
	if err != nil {
		return err
	}
	secs := timeoutSecs(timeout)
	args := []string{"start", "-D", i.s.DataDir, "-w", "-t", strconv.Itoa(secs), "-l", i.s.LogFile}
	i.log.Info("starting postgres", "data_dir", i.s.DataDir, "port", i.s.Port)
	// The server's own libpq connections (Citus between nodes, dblink,
	// postgres_fdw) find the superuser's password in the pgpass file.
	_, _, err = i.run(ctx, "pg_ctl", args, "PGPASSFILE="+i.s.PgPass)
	if err == nil {
		return nil
	}
	if i.IsRunning() {
		return fmt.Errorf("%w (waited %ds): %v", ErrStartTimeout, secs, err)
	}
	if tail := i.logTail(logOffset, 20); tail != "" {
		return fmt.Errorf("starting postgres failed: %w\nserver log %s:\n%s", err, i.s.LogFile, tail)
	}
	return fmt.Errorf("starting postgres failed: %w", err)
}

// prepareLogFile makes sure the log file exists and is writable by the OS
// user, and returns its current size.
func (i *Instance) prepareLogFile() (int64, error) {
	if err := mkdirParents(i.s.LogFile); err != nil {
		return 0, fmt.Errorf("log file %s: %w", i.s.LogFile, err)
	}
	f, err := os.OpenFile(i.s.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return 0, fmt.Errorf("log file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("log file: %w", err)
	}
	if err := i.chown(i.s.LogFile); err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// logTail returns the last n lines the server logged after offset.
func (i *Instance) logTail(offset int64, n int) string {
	f, err := os.Open(i.s.LogFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > max {
		offset = fi.Size() - max
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	data, _ := io.ReadAll(io.LimitReader(f, max))
	return tailLines(string(data), n)
}

// Stop stops the server with pg_ctl stop -m mode ("smart", "fast" or
// "immediate") and waits up to timeout. A fast shutdown that does not
// finish in time is escalated to immediate. Stopping a stopped server is
// not an error.
func (i *Instance) Stop(ctx context.Context, mode string, timeout time.Duration) error {
	switch mode {
	case "smart", "fast", "immediate":
	case "":
		mode = "fast"
	default:
		return fmt.Errorf("stop: unknown shutdown mode %q", mode)
	}
	i.Close()
	if !i.IsRunning() {
		return nil
	}
	err := i.pgctlStop(ctx, mode, timeout)
	if err == nil || !i.IsRunning() {
		return nil
	}
	if mode == "fast" && ctx.Err() == nil {
		i.log.Warn("fast shutdown did not finish in time, escalating to immediate", "err", err)
		err = i.pgctlStop(ctx, "immediate", 30*time.Second)
		if err == nil || !i.IsRunning() {
			return nil
		}
	}
	return fmt.Errorf("stopping postgres (%s): %w", mode, err)
}

func (i *Instance) pgctlStop(ctx context.Context, mode string, timeout time.Duration) error {
	i.log.Info("stopping postgres", "mode", mode, "data_dir", i.s.DataDir)
	args := []string{"stop", "-D", i.s.DataDir, "-m", mode, "-w", "-t", strconv.Itoa(timeoutSecs(timeout))}
	_, _, err := i.run(ctx, "pg_ctl", args)
	return err
}

// IsRunning reports whether a postmaster runs on the data directory: the
// pid in postmaster.pid names a live (non-zombie) process. It only reads
// files, so it is cheap enough to poll.
func (i *Instance) IsRunning() bool {
	pid := proc.PostmasterPID(i.s.DataDir)
	if pid <= 0 {
		return false
	}
	if proc.Zombie(pid) {
		// Reap it if it happens to be our child; otherwise this fails
		// harmlessly (an init that does not reap leaves it a zombie).
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		return false
	}
	return proc.Alive(pid)
}

// removeStaleSocketLocks deletes socket lock files (.s.PGSQL.<port>.lock)
// left by a postmaster that died: PostgreSQL refuses to start while the
// pid inside still exists, and a killed postmaster that nobody reaped
// stays a zombie.
func (i *Instance) removeStaleSocketLocks() {
	dirs := []string{i.s.DataDir}
	if i.s.SocketDir != "" {
		dirs = append(dirs, i.s.SocketDir)
	}
	if v, ok := i.s.Parameters["unix_socket_directories"]; ok {
		for _, d := range strings.Split(v, ",") {
			if d = strings.Trim(strings.TrimSpace(d), "'\""); d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, fmt.Sprintf(".s.PGSQL.%d.lock", i.s.Port))
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || proc.Alive(pid) {
			continue
		}
		if os.Remove(p) == nil {
			os.Remove(strings.TrimSuffix(p, ".lock"))
			i.log.Info("removed stale socket lock file", "path", p, "pid", pid)
		}
	}
}

// Promote promotes a running standby with pg_promote(wait => true) and
// rewrites the configuration as a primary's. Promoting a primary is a no-op.
func (i *Instance) Promote(ctx context.Context, timeout time.Duration) error {
	secs := timeoutSecs(timeout)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs)*time.Second+defaultQueryTimeout)
		defer cancel()
	}
	var promoted bool
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		var inRecovery bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return err
		}
		if !inRecovery {
			promoted = true
			return nil
		}
		// pg_promote(true) looks every 100 ms whether recovery ended: ask
		// without waiting and look every 5 ms instead, which takes up to
		// ~90 ms off every promotion.
		var asked bool
		if err := c.QueryRow(ctx, "SELECT pg_promote(false)").Scan(&asked); err != nil {
			return err
		}
		if !asked {
			return errors.New("pg_promote refused to signal the promotion")
		}
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		for time.Now().Before(deadline) {
			if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
				return err
			}
			if !inRecovery {
				promoted = true
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !promoted {
		return fmt.Errorf("promote: not promoted within %ds", secs)
	}
	if err := i.WriteConfig(false, nil); err != nil {
		return fmt.Errorf("promote: promoted, but rewriting the configuration failed: %w", err)
	}
	return nil
}

// Follow makes the instance a standby of upstream. A running standby gets
// the new primary_conninfo by a reload (restarted=false). A running primary
// is stopped (fast), configured as a standby and started again
// (restarted=true); it must not have diverged from upstream (run pg_rewind
// first otherwise). A stopped instance is only reconfigured.
func (i *Instance) Follow(ctx context.Context, upstream ConnInfo) (restarted bool, err error) {
	if upstream.Host == "" || upstream.Port <= 0 {
		return false, fmt.Errorf("follow: invalid upstream %q", upstream.String())
	}
	if !i.IsRunning() {
		return false, i.WriteConfig(true, &upstream)
	}
	var inRecovery bool
	err = i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
	})
	if err != nil {
		return false, fmt.Errorf("follow: %w", err)
	}
	if inRecovery {
		if err := i.WriteConfig(true, &upstream); err != nil {
			return false, err
		}
		if err := i.Reload(ctx); err != nil {
			return false, fmt.Errorf("follow: %w", err)
		}
		i.log.Info("following new upstream", "upstream", upstream.String())
		return false, nil
	}
	timeout := 60 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	i.log.Info("demoting primary to follow", "upstream", upstream.String())
	if err := i.Stop(ctx, "fast", timeout); err != nil {
		return true, fmt.Errorf("follow: %w", err)
	}
	if err := i.WriteConfig(true, &upstream); err != nil {
		return true, err
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := i.Start(ctx, timeout); err != nil {
		return true, fmt.Errorf("follow: %w", err)
	}
	return true, nil
}

// Reload makes the server re-read its configuration (pg_reload_conf()).
func (i *Instance) Reload(ctx context.Context) error {
	return i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		var ok bool
		if err := c.QueryRow(ctx, "SELECT pg_reload_conf()").Scan(&ok); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		if !ok {
			return errors.New("reload: pg_reload_conf() returned false")
		}
		return nil
	})
}

// MoveAside renames the data directory of a stopped instance to
// <data_dir>.pgwarden-old-<timestamp> and returns the new path. Nothing is
// deleted.
func (i *Instance) MoveAside() (string, error) {
	if i.IsRunning() {
		return "", errors.New("move aside: postgres is still running")
	}
	i.Close()
	if _, err := os.Lstat(i.s.DataDir); err != nil {
		return "", fmt.Errorf("move aside: %w", err)
	}
	base := i.s.DataDir + ".pgwarden-old-" + time.Now().Format("20060102T150405")
	dst := base
	for n := 1; ; n++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, n)
	}
	if err := os.Rename(i.s.DataDir, dst); err != nil {
		return "", fmt.Errorf("move aside: %w", err)
	}
	i.log.Warn("moved data directory aside", "from", i.s.DataDir, "to", dst)
	return dst, nil
}
