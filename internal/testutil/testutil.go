// Package testutil has small helpers shared by tests that start real
// processes: free loopback ports and temp directories the postgres OS user
// can enter.
package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := FreePortNoT()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	return p
}

// FreePortNoT is FreePort for code that has no testing.TB.
//
// The port is taken below the kernel's ephemeral range when there is room
// there: a port handed out by the kernel (port 0) comes from that range,
// and an outgoing connection made before the test's server binds it could
// take it as its source port ("Address already in use"). A port is not
// handed out twice by one process.
func FreePortNoT() (int, error) {
	lo := ephemeralLow()
	portMu.Lock()
	defer portMu.Unlock()
	if lo > 11000 {
		for try := 0; try < 200; try++ {
			p := 10000 + rand.IntN(lo-10000)
			if usedPorts[p] {
				continue
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				continue
			}
			l.Close()
			usedPorts[p] = true
			return p, nil
		}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPorts[p] {
			usedPorts[p] = true
			return p, nil
		}
	}
}

var (
	portMu    sync.Mutex
	usedPorts = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (0 when
// unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}

// WorldTempDir makes a temp directory under os.TempDir() that every OS user
// can traverse (mode 0755), removed when the test ends. t.TempDir() is 0700
// and owned by root in CI, which the postgres user cannot enter.
func WorldTempDir(t testing.TB, pattern string) string {
	t.Helper()
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatalf("making temp dir: %v", err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatalf("chmod temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Clean(d)
}

// Eventually polls cond every 100 ms until it returns "" (done) or timeout
// passes, then fails the test with what and cond's last answer.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
