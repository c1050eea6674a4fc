package fence

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// victim starts a process standing in for the postmaster and records its
// pid in dir/postmaster.pid.
func victim(t *testing.T) (dir string, exited <-chan struct{}) {
	t.Helper()
	dir = t.TempDir()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, done
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestFence(t *testing.T) {
	cases := []struct {
		name     string
		script   func(w io.WriteCloser)
		wantKill bool
	}{
		{"armed deadline passes: stops the postmaster", func(w io.WriteCloser) {
			io.WriteString(w, "arm 150\n")
		}, true},
		{"deadline moved before it passes: no stop", func(w io.WriteCloser) {
			io.WriteString(w, "arm 200\n")
			time.Sleep(100 * time.Millisecond)
			io.WriteString(w, "arm 1500\n")
		}, false},
		{"disarmed: no stop", func(w io.WriteCloser) {
			io.WriteString(w, "arm 200\n")
			io.WriteString(w, "disarm\n")
		}, false},
		{"daemon gone while armed: still stops at the deadline", func(w io.WriteCloser) {
			io.WriteString(w, "arm 200\n")
			w.Close()
		}, true},
		{"garbage lines are ignored", func(w io.WriteCloser) {
			io.WriteString(w, "bogus\narm x\narm 150\n")
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, exited := victim(t)
			r, w := io.Pipe()
			done := make(chan struct{})
			go func() { Watch(r, dir, quiet()); close(done) }()
			tc.script(w)
			select {
			case <-exited:
				if !tc.wantKill {
					t.Fatal("the postmaster was stopped")
				}
			case <-time.After(800 * time.Millisecond):
				if tc.wantKill {
					t.Fatal("the postmaster was not stopped after the deadline")
				}
			}
			w.Close()
			io.WriteString(w, "exit\n")
			select {
			case <-done:
			case <-time.After(6 * time.Second):
				t.Fatal("Watch did not return after its input closed")
			}
		})
	}
}

func TestFenceExitsWhenDaemonGoneUnarmed(t *testing.T) {
	dir, exited := victim(t)
	r, w := io.Pipe()
	done := make(chan struct{})
	go func() { Watch(r, dir, quiet()); close(done) }()
	w.Close()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("an unarmed fence did not exit when its input closed")
	}
	select {
	case <-exited:
		t.Fatal("the postmaster was stopped")
	default:
	}
}
