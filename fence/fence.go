// Package fence is pgwarden's software watchdog: a small child process
// that stops the local PostgreSQL (immediate shutdown) when the leader's
// lease deadline passes without the daemon extending it.
//
// The daemon's own timer does the same, but a daemon that is frozen
// (SIGSTOP, a stalled VM) or killed cannot act; its PostgreSQL would stay
// writable while a replica is promoted. The fence is a separate process,
// so it keeps its deadline whatever happens to the daemon.
//
// Protocol, one line each on the fence's standard input:
//
//	arm <milliseconds>   the deadline is now + milliseconds
//	disarm               no deadline (this member does not lead)
//	exit                 disarm and exit
//
// When standard input closes without "exit" (the daemon died), an armed
// fence still fires at its deadline, then exits; a disarmed one exits.
//
// The fence records its pid and deadline (on the system's monotonic
// clock) in <data_dir>.fence. A daemon that starts while a previous
// daemon's fence is still armed (the daemon was killed and restarted)
// gives that deadline to its own fence before ending the old one, so
// PostgreSQL is never left unfenced and a quick daemon restart does not
// stop it.
package fence

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgwarden/pgwarden/internal/proc"
)

// Watch is the fence's side: it reads commands from r and stops the
// postmaster recorded in dataDir/postmaster.pid when a deadline passes.
// It returns when told to exit, or when r is closed and nothing is armed
// any more.
func Watch(r io.Reader, dataDir string, log *slog.Logger) {
	w := &watcher{dataDir: dataDir, log: log, timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
	w.record()
	defer w.forget()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if !w.armed {
					return
				}
				log.Warn("fence: the daemon went away while leading; keeping the deadline", "in", time.Until(w.deadline).Round(time.Millisecond))
				<-w.timer.C
				w.fire()
				return
			}
			if !w.command(line) {
				return
			}
		case <-w.timer.C:
			w.fire()
		}
	}
}

type watcher struct {
	dataDir  string
	log      *slog.Logger
	timer    *time.Timer
	armed    bool
	deadline time.Time
	monoNS   int64 // deadline on CLOCK_MONOTONIC, for the state file
}

// record writes "<pid> <deadline ns on CLOCK_MONOTONIC, 0: disarmed>".
func (w *watcher) record() {
	mono := int64(0)
	if w.armed {
		mono = w.monoNS
	}
	line := fmt.Sprintf("%d %d\n", os.Getpid(), mono)
	if err := os.WriteFile(StatePath(w.dataDir), []byte(line), 0o600); err != nil {
		w.log.Warn("fence: recording the deadline", "err", err)
	}
}

// forget removes the state file if it is still ours.
func (w *watcher) forget() {
	if pid, _, ok := readState(w.dataDir); ok && pid == os.Getpid() {
		os.Remove(StatePath(w.dataDir))
	}
}

func (w *watcher) command(line string) bool {
	f := strings.Fields(line)
	if len(f) == 0 {
		return true
	}
	switch f[0] {
	case "arm":
		if len(f) != 2 {
			w.log.Error("fence: bad command", "line", line)
			return true
		}
		ms, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			w.log.Error("fence: bad command", "line", line)
			return true
		}
		w.timer.Stop()
		w.deadline = time.Now().Add(time.Duration(ms) * time.Millisecond)
		w.monoNS = monoNow() + ms*int64(time.Millisecond)
		w.armed = true
		w.timer.Reset(time.Until(w.deadline))
		w.record()
	case "disarm":
		w.timer.Stop()
		w.armed = false
		w.record()
	case "exit":
		w.timer.Stop()
		return false
	default:
		w.log.Error("fence: unknown command", "line", line)
	}
	return true
}

func (w *watcher) fire() {
	if !w.armed {
		return
	}
	w.armed = false
	w.record()
	pid := proc.PostmasterPID(w.dataDir)
	if !proc.Alive(pid) {
		return
	}
	w.log.Error("fence: leader lease deadline passed without renewal: stopping PostgreSQL (immediate shutdown)", "postmaster_pid", pid)
	// SIGQUIT is PostgreSQL's immediate shutdown: every backend exits at once.
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	for i := 0; i < 100 && proc.Alive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if proc.Alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Client is the daemon's side: it runs the fence process and tells it the
// deadline.
type Client struct {
	mu    sync.Mutex
	argv  []string
	log   *slog.Logger
	cmd   *process
	armed bool
}

// process is the running fence process.
type process struct {
	proc  *os.Process
	stdin io.WriteCloser
}

// Start runs argv (the pgwarden binary with its hidden --fence flag and
// dataDir) as the fence, in its own process group. A still-armed fence of
// a previous daemon on the same data directory hands its deadline over
// and is ended.
func Start(argv []string, dataDir string, log *slog.Logger) (*Client, error) {
	c := &Client{argv: argv, log: log}
	oldPID, oldDeadline, found := readState(dataDir)
	if err := c.spawn(); err != nil {
		return nil, err
	}
	if found && oldPID != c.cmd.proc.Pid && isFence(oldPID, dataDir) {
		if oldDeadline > 0 {
			remaining := time.Duration(oldDeadline - monoNow())
			c.Arm(time.Now().Add(remaining))
			log.Warn("fence: took over the deadline of the previous daemon's fence", "old_pid", oldPID, "in", remaining.Round(time.Millisecond))
		}
		_ = syscall.Kill(oldPID, syscall.SIGTERM)
	}
	return c, nil
}

// StatePath is where the fence of dataDir records its pid and deadline.
func StatePath(dataDir string) string { return filepath.Clean(dataDir) + ".fence" }

func readState(dataDir string) (pid int, deadline int64, ok bool) {
	b, err := os.ReadFile(StatePath(dataDir))
	if err != nil {
		return 0, 0, false
	}
	if _, err := fmt.Sscan(string(b), &pid, &deadline); err != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, deadline, true
}

// isFence checks that pid is a live fence process of dataDir (and not an
// unrelated process that reused the pid).
func isFence(pid int, dataDir string) bool {
	if !proc.Alive(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--fence" && filepath.Clean(args[i+1]) == filepath.Clean(dataDir) {
			return true
		}
	}
	return false
}

func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

func (c *Client) spawn() error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	attr := &os.ProcAttr{
		Files: []*os.File{pr, os.Stderr, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	p, err := os.StartProcess(c.argv[0], c.argv, attr)
	pr.Close()
	if err != nil {
		pw.Close()
		return fmt.Errorf("starting the fence process: %w", err)
	}
	go func() { _, _ = p.Wait() }()
	c.cmd = &process{proc: p, stdin: pw}
	return nil
}

func (c *Client) send(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		if err := c.spawn(); err != nil {
			c.log.Error("fence unavailable", "err", err)
			return
		}
	}
	if _, err := io.WriteString(c.cmd.stdin, line+"\n"); err != nil {
		c.log.Error("fence process gone; starting a new one", "err", err)
		c.cmd.stdin.Close()
		c.cmd = nil
		if err := c.spawn(); err == nil {
			_, _ = io.WriteString(c.cmd.stdin, line+"\n")
		}
	}
}

// Arm sets the deadline at which the fence stops PostgreSQL.
func (c *Client) Arm(deadline time.Time) {
	ms := time.Until(deadline).Milliseconds()
	if ms < 0 {
		ms = 0
	}
	c.send("arm " + strconv.FormatInt(ms, 10))
	c.mu.Lock()
	c.armed = true
	c.mu.Unlock()
}

// Disarm removes the deadline (a no-op when none is set).
func (c *Client) Disarm() {
	c.mu.Lock()
	armed := c.armed
	c.armed = false
	c.mu.Unlock()
	if armed {
		c.send("disarm")
	}
}

// Close disarms the fence and lets it exit.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_, _ = io.WriteString(c.cmd.stdin, "exit\n")
	c.cmd.stdin.Close()
	c.cmd = nil
}
