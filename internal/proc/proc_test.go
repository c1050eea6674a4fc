package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestAliveAndZombie(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Not reaped yet: a zombie once it exits.
	for i := 0; i < 200 && !Zombie(pid); i++ {
		_ = exec.Command("sleep", "0.01").Run()
	}
	if !Zombie(pid) || Alive(pid) {
		t.Fatalf("exited child: zombie=%v alive=%v", Zombie(pid), Alive(pid))
	}
	_ = cmd.Wait()
	if Alive(pid) {
		t.Fatal("reaped child still alive")
	}
}

func TestPostmasterPID(t *testing.T) {
	dir := t.TempDir()
	if PostmasterPID(dir) != 0 {
		t.Fatal("pid without a file")
	}
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(strconv.Itoa(4242)+"\n/data\n"), 0o600)
	if got := PostmasterPID(dir); got != 4242 {
		t.Fatalf("PostmasterPID = %d", got)
	}
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("garbage\n"), 0o600)
	if PostmasterPID(dir) != 0 {
		t.Fatal("garbage parsed as a pid")
	}
}
