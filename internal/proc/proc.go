// Package proc answers two questions about local processes without
// running anything: which postmaster a data directory records, and whether
// a pid names a live (non-zombie) process.
package proc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PostmasterPID returns the pid on the first line of
// dataDir/postmaster.pid, or 0 when there is none.
func PostmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Alive reports whether pid names a process that exists and is not a
// zombie (an exited process nobody reaped still answers signal 0).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !Zombie(pid)
}

// Zombie reports whether pid is an exited process not reaped yet.
func Zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	k := bytes.LastIndexByte(stat, ')')
	return k >= 0 && k+2 < len(stat) && stat[k+2] == 'Z'
}
