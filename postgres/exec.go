package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// osAccount is the OS user PostgreSQL binaries run as when we are root.
type osAccount struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups, including gid
	home   string
}

func lookupAccount(name string) (*osAccount, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("postgresql.os_user %q: %w (pgwarden runs as root and must start PostgreSQL as an unprivileged OS user; create it or set postgresql.os_user)", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %s: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("postgresql.os_user %q is root; PostgreSQL refuses to run as root", name)
	}
	a := &osAccount{name: name, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	a.groups = []uint32{a.gid}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			n, err := strconv.ParseUint(g, 10, 32)
			if err == nil && uint32(n) != a.gid {
				a.groups = append(a.groups, uint32(n))
			}
		}
	}
	return a, nil
}

// canTraverse reports whether the account may search (x) a directory with
// the given stat, by the classic owner/group/other rule (ACLs are ignored).
func (a *osAccount) canTraverse(st *syscall.Stat_t) bool {
	mode := st.Mode
	if st.Uid == a.uid {
		return mode&0o100 != 0
	}
	for _, g := range a.groups {
		if st.Gid == g {
			return mode&0o010 != 0
		}
	}
	return mode&0o001 != 0
}

// checkAccess verifies, when running as root, that the OS user can reach
// the data directory, the pgpass file and the log file. Directories that do
// not exist yet are skipped: pgwarden creates them 0755.
func (i *Instance) checkAccess() error {
	if i.runAs == nil {
		return nil
	}
	if err := i.checkAncestors(i.s.DataDir, "postgresql.data_dir"); err != nil {
		return err
	}
	if err := i.checkAncestors(i.s.PgPass, "postgresql.pgpass"); err != nil {
		return err
	}
	if err := i.checkAncestors(i.s.LogFile, "postgres log file"); err != nil {
		return err
	}
	if i.s.SocketDir != "" {
		return i.checkAncestors(filepath.Join(i.s.SocketDir, ".s.PGSQL"), "postgres socket directory")
	}
	return nil
}

func (i *Instance) checkAncestors(path, what string) error {
	var dirs []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == "/" || d == "." {
			break
		}
	}
	for k := len(dirs) - 1; k >= 0; k-- {
		d := dirs[k]
		fi, err := os.Stat(d)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s %s: %s is not a directory", what, path, d)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && !i.runAs.canTraverse(st) {
			return fmt.Errorf("%s %s: directory %s is not accessible to OS user %s; put data directories in a world-traversable place such as /tmp", what, path, d, i.runAs.name)
		}
	}
	return nil
}

// chown gives path to the OS user when running as root.
func (i *Instance) chown(path string) error {
	if i.runAs == nil {
		return nil
	}
	if err := os.Lchown(path, int(i.runAs.uid), int(i.runAs.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, i.runAs.name, err)
	}
	return nil
}

// mkdirParents creates the missing ancestors of path with mode 0755.
func mkdirParents(path string) error {
	parent := filepath.Dir(path)
	if fi, err := os.Stat(parent); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", parent)
		}
		return nil
	}
	if err := mkdirParents(parent); err != nil {
		return err
	}
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Chmod(parent, 0o755) // regardless of the umask
}

// prepareEmptyDataDir makes sure the data directory exists, is empty, has
// mode 0700 and belongs to the OS user.
func (i *Instance) prepareEmptyDataDir() error {
	if err := i.checkAccess(); err != nil {
		return err
	}
	empty, err := i.DataDirEmpty()
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("postgresql.data_dir %s: %w", i.s.DataDir, ErrDataDirNotEmpty)
	}
	if err := mkdirParents(i.s.DataDir); err != nil {
		return fmt.Errorf("postgresql.data_dir %s: creating parent directories: %w", i.s.DataDir, err)
	}
	if err := os.Mkdir(i.s.DataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("postgresql.data_dir: %w", err)
	}
	if err := os.Chmod(i.s.DataDir, 0o700); err != nil {
		return fmt.Errorf("postgresql.data_dir: %w", err)
	}
	return i.chown(i.s.DataDir)
}

// command builds an exec.Cmd for a PostgreSQL binary from BinDir. It runs
// as the OS user when we are root, always in a session of its own (so that
// signals to our process group do not reach postgres), in "/", with PG*
// variables removed from the environment and extra appended.
func (i *Instance) command(ctx context.Context, bin string, args []string, extra ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(i.s.BinDir, bin), args...)
	cmd.Dir = "/"
	env := make([]string, 0, len(os.Environ())+len(extra))
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		if i.runAs != nil && (strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=")) {
			continue
		}
		env = append(env, kv)
	}
	attr := &syscall.SysProcAttr{Setsid: true}
	if i.runAs != nil {
		env = append(env, "HOME="+i.runAs.home, "USER="+i.runAs.name, "LOGNAME="+i.runAs.name)
		attr.Credential = &syscall.Credential{Uid: i.runAs.uid, Gid: i.runAs.gid, Groups: i.runAs.groups}
	}
	cmd.Env = append(env, extra...)
	cmd.SysProcAttr = attr
	// pg_ctl start leaves the postmaster behind; should it ever inherit our
	// output pipes, do not wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs a PostgreSQL binary to completion and returns its output. The
// error includes the tail of stderr (or stdout when stderr is empty).
func (i *Instance) run(ctx context.Context, bin string, args []string, extra ...string) (stdout, stderr []byte, err error) {
	cmd := i.command(ctx, bin, args, extra...)
	var o, e bytes.Buffer
	cmd.Stdout = &o
	cmd.Stderr = &e
	i.log.Debug("running", "cmd", cmd.Path, "args", args)
	err = cmd.Run()
	if err != nil {
		out := e.Bytes()
		if len(bytes.TrimSpace(out)) == 0 {
			out = o.Bytes()
		}
		msg := tailLines(string(out), 15)
		if msg != "" {
			err = fmt.Errorf("%s: %w: %s", bin, err, msg)
		} else {
			err = fmt.Errorf("%s: %w", bin, err)
		}
	}
	return o.Bytes(), e.Bytes(), err
}

// tailLines returns the last n non-empty lines of s, joined by newlines.
func tailLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, "\r "); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// timeoutSecs converts a timeout to whole seconds for pg_ctl -t, at least
// 1; zero or negative means pg_ctl's default of 60 seconds.
func timeoutSecs(d time.Duration) int {
	if d <= 0 {
		return 60
	}
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
