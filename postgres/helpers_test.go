package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/testutil"
)

// Passwords with characters that need quoting in SQL, pgpass and conninfo.
var (
	testSuper = Credentials{Username: "postgres", Password: `su'pass:wo\rd`}
	testRepl  = Credentials{Username: "repl user", Password: `re:pl'pa\ss`}
)

func needPostgres(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(DefaultBinDir, "postgres")); err != nil {
		t.Skipf("PostgreSQL binaries not found in %s", DefaultBinDir)
	}
}

// newTestInstance makes an Instance with small settings on a free port in a
// fresh world-traversable directory. Cleanup stops it (immediate) whatever
// happens in the test; the directory is removed after that.
func newTestInstance(t *testing.T, name string, extra map[string]string) *Instance {
	t.Helper()
	needPostgres(t)
	dir := testutil.WorldTempDir(t, "pgw-*")
	params := map[string]string{
		"shared_buffers":               "16MB",
		"max_connections":              "20",
		"fsync":                        "off",
		"checkpoint_timeout":           "30s",
		"wal_receiver_status_interval": "1s",
	}
	for k, v := range extra {
		params[k] = v
	}
	inst, err := New(Settings{
		Name:          name,
		DataDir:       filepath.Join(dir, "data"),
		ListenHosts:   "127.0.0.1",
		Port:          testutil.FreePort(t),
		Superuser:     testSuper,
		Replication:   testRepl,
		Parameters:    params,
		InitdbOptions: []string{"no-sync", "--encoding=UTF8"},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := inst.Stop(ctx, "immediate", 20*time.Second); err != nil {
			t.Errorf("cleanup: stopping %s: %v", name, err)
		}
		inst.Close()
	})
	return inst
}

func (i *Instance) connInfo() ConnInfo { return ConnInfo{Host: i.s.ConnectHost, Port: i.s.Port} }

// sqlExec runs statements on a fresh superuser connection to inst.
func sqlExec(t *testing.T, inst *Instance, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := inst.connect(ctx, inst.s.ConnectHost, inst.s.Port)
	if err != nil {
		t.Fatalf("%s: connect: %v", inst.s.Name, err)
	}
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %s: %v", inst.s.Name, s, err)
		}
	}
}

// sqlCount returns SELECT count(*) of a query, or -1 on error.
func sqlCount(inst *Instance, query string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := inst.connect(ctx, inst.s.ConnectHost, inst.s.Port)
	if err != nil {
		return -1
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, query, pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
		return -1
	}
	return n
}

// waitFor is testutil.Eventually.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

// waitState polls Observe until ok accepts the state.
func waitState(t *testing.T, inst *Instance, what string, ok func(State) string) State {
	t.Helper()
	var last State
	waitFor(t, 20*time.Second, inst.s.Name+": "+what, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := inst.Observe(ctx)
		if err != nil {
			return err.Error()
		}
		last = st
		if why := ok(st); why != "" {
			return fmt.Sprintf("%s (state %+v)", why, st)
		}
		return ""
	})
	return last
}
