// Package testutil has small helpers shared by tests that start real
// processes: free loopback ports and temp directories the postgres OS user
// can enter.
package testutil

import (
	"net"
	"os"
	"path/filepath"
	"testing"
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
func FreePortNoT() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
