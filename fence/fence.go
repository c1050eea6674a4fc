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
package fence

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/internal/proc"
)

// Watch is the fence's side: it reads commands from r and stops the
// postmaster recorded in dataDir/postmaster.pid when a deadline passes.
// It returns when told to exit, or when r is closed and nothing is armed
// any more.
func Watch(r io.Reader, dataDir string, log *slog.Logger) {
	w := &watcher{dataDir: dataDir, log: log, timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
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
		w.armed = true
		w.timer.Reset(time.Until(w.deadline))
	case "disarm":
		w.timer.Stop()
		w.armed = false
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
	mu   sync.Mutex
	argv []string
	log  *slog.Logger
	cmd  *process
}

// process is the running fence process.
type process struct {
	proc  *os.Process
	stdin io.WriteCloser
}

// Start runs `<binary> args...` as the fence (the pgwarden binary with
// its hidden --fence flag) in its own process group.
func Start(argv []string, log *slog.Logger) (*Client, error) {
	c := &Client{argv: argv, log: log}
	if err := c.spawn(); err != nil {
		return nil, err
	}
	return c, nil
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
}

// Disarm removes the deadline.
func (c *Client) Disarm() { c.send("disarm") }

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
