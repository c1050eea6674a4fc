package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/testutil"
)

// TestReplication walks one cluster through bootstrap, cloning, streaming,
// promotion, re-pointing a standby without restart, and demotion.
func TestReplication(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p1 := newTestInstance(t, "p1", nil)
	s2 := newTestInstance(t, "s2", nil)
	s3 := newTestInstance(t, "s3", nil)

	// Bootstrap the primary.
	if empty, err := p1.DataDirEmpty(); err != nil || !empty {
		t.Fatalf("DataDirEmpty before initdb = %v, %v", empty, err)
	}
	if err := p1.Initdb(ctx); err != nil {
		t.Fatalf("Initdb: %v", err)
	}
	if empty, err := p1.DataDirEmpty(); err != nil || empty {
		t.Fatalf("DataDirEmpty after initdb = %v, %v", empty, err)
	}
	if err := p1.Initdb(ctx); !errors.Is(err, ErrDataDirNotEmpty) {
		t.Fatalf("second Initdb: %v, want ErrDataDirNotEmpty", err)
	}
	if p1.IsRunning() {
		t.Fatal("IsRunning before Start")
	}
	if err := p1.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !p1.IsRunning() {
		t.Fatal("not IsRunning after Start")
	}
	st, err := p1.Observe(ctx)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if !st.Running || !st.Accepting || st.InRecovery || st.Timeline != 1 || st.SystemID == "" ||
		st.WALPosition <= 0 || st.ServerVersion < 150000 || st.StartTime.IsZero() || st.Streaming {
		t.Fatalf("primary state: %+v", st)
	}
	if err := p1.CreateRoles(ctx); err != nil {
		t.Fatalf("CreateRoles: %v", err)
	}
	if err := p1.CreateRoles(ctx); err != nil { // idempotent
		t.Fatalf("CreateRoles again: %v", err)
	}
	sqlExec(t, p1, "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('one')")
	sysID := st.SystemID

	// Two standbys cloned from it.
	for _, s := range []*Instance{s2, s3} {
		if err := s.Basebackup(ctx, p1.connInfo()); err != nil {
			t.Fatalf("%s: Basebackup: %v", s.s.Name, err)
		}
		if _, err := os.Stat(filepath.Join(s.s.DataDir, standbySig)); err != nil {
			t.Fatalf("%s: standby.signal: %v", s.s.Name, err)
		}
		if err := s.Start(ctx, 30*time.Second); err != nil {
			t.Fatalf("%s: Start: %v", s.s.Name, err)
		}
		st := waitState(t, s, "streaming from p1", func(st State) string {
			switch {
			case !st.InRecovery:
				return "not in recovery"
			case !st.Streaming:
				return "not streaming"
			case st.UpstreamHost != "127.0.0.1" || st.UpstreamPort != p1.s.Port:
				return "wrong upstream"
			}
			return ""
		})
		if st.SystemID != sysID || st.Timeline != 1 || st.ReceivedLSN <= 0 || st.ReplayedLSN <= 0 ||
			st.WALPosition != max(st.ReceivedLSN, st.ReplayedLSN) || st.ReplayPaused {
			t.Fatalf("%s: standby state %+v", s.s.Name, st)
		}
	}
	st = waitState(t, p1, "two replicas in pg_stat_replication", func(st State) string {
		if len(st.Replication) != 2 {
			return "want 2 replicas"
		}
		return ""
	})
	for k, name := range []string{"s2", "s3"} {
		r := st.Replication[k]
		if r.ApplicationName != name || r.Usename != testRepl.Username || r.ClientAddr != "127.0.0.1" || r.State != "streaming" || r.SyncState != "async" {
			t.Fatalf("replica %d: %+v", k, r)
		}
	}

	// A row written on the primary reaches the standbys.
	sqlExec(t, p1, "INSERT INTO t VALUES ('two')")
	for _, s := range []*Instance{s2, s3} {
		waitFor(t, 20*time.Second, s.s.Name+": row two", func() string {
			if n := sqlCount(s, "SELECT count(*) FROM t WHERE v = 'two'"); n != 1 {
				return fmt.Sprintf("count = %d", n)
			}
			return ""
		})
	}

	// Promote s2: timeline 2 right away.
	if err := s2.Promote(ctx, 30*time.Second); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	st, err = s2.Observe(ctx)
	if err != nil {
		t.Fatalf("Observe after promote: %v", err)
	}
	if st.InRecovery || st.Timeline != 2 || st.Streaming || st.ReceivedLSN != 0 || st.SystemID != sysID {
		t.Fatalf("promoted state: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(s2.s.DataDir, standbySig)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("standby.signal after promote: %v", err)
	}
	if err := s2.Promote(ctx, 5*time.Second); err != nil {
		t.Fatalf("Promote on a primary: %v", err)
	}
	sqlExec(t, s2, "INSERT INTO t VALUES ('three')")

	// Where did timeline 1 end, according to s2?
	sw, found, err := s3.TimelineSwitchpoint(ctx, s2.connInfo(), 1)
	if err != nil || !found {
		t.Fatalf("TimelineSwitchpoint(1) = %v, %v, %v", sw, found, err)
	}
	st2, err := s2.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sw <= 0 || sw > st2.WALPosition {
		t.Fatalf("switchpoint %s not in (0, %s]", FormatLSN(sw), FormatLSN(st2.WALPosition))
	}
	if _, found, err := s3.TimelineSwitchpoint(ctx, s2.connInfo(), 2); err != nil || found {
		t.Fatalf("TimelineSwitchpoint(2) found=%v err=%v, want not found", found, err)
	}
	if _, _, err := s3.TimelineSwitchpoint(ctx, s2.connInfo(), 3); err == nil {
		t.Fatal("TimelineSwitchpoint(3) on a timeline-2 server: no error")
	}
	t.Logf("timeline 1 ended at %s", FormatLSN(sw))

	// s3 follows s2 without a restart and moves to timeline 2.
	startBefore := waitState(t, s3, "observe s3", func(State) string { return "" }).StartTime
	restarted, err := s3.Follow(ctx, s2.connInfo())
	if err != nil || restarted {
		t.Fatalf("Follow = %v, %v; want no restart", restarted, err)
	}
	st = waitStreaming(t, s3, s2, 2)
	if !st.StartTime.Equal(startBefore) {
		t.Fatalf("s3 restarted: start time %v -> %v", startBefore, st.StartTime)
	}
	waitFor(t, 20*time.Second, "s3: row three", func() string {
		if n := sqlCount(s3, "SELECT count(*) FROM t WHERE v = 'three'"); n != 1 {
			return fmt.Sprintf("count = %d", n)
		}
		return ""
	})

	// The old primary is made a standby of s2: that takes a restart.
	restarted, err = p1.Follow(ctx, s2.connInfo())
	if err != nil || !restarted {
		t.Fatalf("Follow on the primary = %v, %v; want a restart", restarted, err)
	}
	st, err = p1.Observe(ctx)
	if err != nil || !st.InRecovery {
		t.Fatalf("old primary after Follow: %+v, %v", st, err)
	}
	conf, err := os.ReadFile(filepath.Join(p1.s.DataDir, confFile))
	if err != nil || !strings.Contains(string(conf), fmt.Sprintf("port=''%d''", s2.s.Port)) {
		t.Fatalf("old primary's postgresql.conf does not point at s2 (%v):\n%s", err, conf)
	}

	// A fast shutdown of s2 waits for its standby s3 to confirm the
	// shutdown checkpoint. With s3's WAL receiver frozen that never
	// happens, and Stop escalates to immediate.
	var walrcv int
	waitFor(t, 10*time.Second, "s3's walreceiver pid", func() string {
		walrcv = sqlCount(s3, "SELECT pid FROM pg_stat_wal_receiver")
		if walrcv <= 0 {
			return "no walreceiver"
		}
		return ""
	})
	if err := syscall.Kill(walrcv, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { _ = syscall.Kill(walrcv, syscall.SIGCONT) }
	t.Cleanup(cont) // before the instances' cleanups run (LIFO)
	sqlExec(t, s2, "INSERT INTO t VALUES ('four')")
	began := time.Now()
	if err := s2.Stop(ctx, "fast", 2*time.Second); err != nil {
		t.Fatalf("Stop fast with a frozen standby: %v", err)
	}
	took := time.Since(began)
	cont()
	if s2.IsRunning() {
		t.Fatal("s2 still running")
	}
	log, err := os.ReadFile(s2.s.LogFile)
	if err != nil || !strings.Contains(string(log), "received immediate shutdown request") || took < 2*time.Second {
		t.Fatalf("no escalation to immediate visible (took %v, %v); log:\n%s", took, err, log)
	}
	// The shutdown checkpoint was written before the walsender waited.
	if cd, err := s2.ControlData(); err != nil || cd.State != "shut down" || cd.CheckpointTLI != 2 {
		t.Fatalf("s2 after an escalated stop: %+v, %v", cd, err)
	}
	t.Logf("fast stop escalated to immediate after %v", took)
}

// TestStopControlDataMoveAside covers stopping, pg_controldata, start
// failures and moving a data directory aside.
func TestStopControlDataMoveAside(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst := newTestInstance(t, "solo", nil)

	if st, err := inst.Observe(ctx); err != nil || st.Running {
		t.Fatalf("Observe with no data dir: %+v, %v", st, err)
	}
	if err := inst.Stop(ctx, "fast", 5*time.Second); err != nil {
		t.Fatalf("Stop with no data dir: %v", err)
	}
	if err := inst.Initdb(ctx); err != nil {
		t.Fatalf("Initdb: %v", err)
	}
	if err := inst.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := inst.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start when running: %v", err)
	}
	st, err := inst.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := inst.MoveAside(); err == nil {
		t.Fatal("MoveAside while running: no error")
	}

	// Clean shutdown.
	if err := inst.Stop(ctx, "fast", 20*time.Second); err != nil {
		t.Fatalf("Stop fast: %v", err)
	}
	if inst.IsRunning() {
		t.Fatal("IsRunning after Stop")
	}
	if st, err := inst.Observe(ctx); err != nil || st.Running || st.Accepting {
		t.Fatalf("Observe when stopped: %+v, %v", st, err)
	}
	cd, err := inst.ControlData()
	if err != nil {
		t.Fatalf("ControlData: %v", err)
	}
	if cd.State != "shut down" || cd.SystemID != st.SystemID || cd.CheckpointTLI != 1 || cd.CheckpointLSN <= 0 {
		t.Fatalf("ControlData after fast stop: %+v (system id %s)", cd, st.SystemID)
	}
	if err := inst.Stop(ctx, "fast", 5*time.Second); err != nil {
		t.Fatalf("Stop when stopped: %v", err)
	}
	if err := inst.Stop(ctx, "bogus", 5*time.Second); err == nil {
		t.Fatal("Stop with a bogus mode: no error")
	}

	// Crash-like shutdown.
	if err := inst.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	if err := inst.Stop(ctx, "immediate", 20*time.Second); err != nil {
		t.Fatalf("Stop immediate: %v", err)
	}
	if inst.IsRunning() {
		t.Fatal("IsRunning after immediate Stop")
	}
	if cd, err := inst.ControlData(); err != nil || cd.State != "in production" {
		t.Fatalf("ControlData after immediate stop: %+v, %v", cd, err)
	}

	// A start that fails reports the server log.
	bad := inst.Settings()
	bad.Parameters["shared_buffers"] = "lots"
	badInst, err := New(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := badInst.WriteConfig(false, nil); err != nil {
		t.Fatal(err)
	}
	err = badInst.Start(ctx, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "shared_buffers") {
		t.Fatalf("Start with a bad parameter: %v", err)
	}
	t.Logf("Start with a bad parameter: %v", err)
	if inst.IsRunning() {
		t.Fatal("running after a failed start")
	}
	if err := inst.WriteConfig(false, nil); err != nil {
		t.Fatal(err)
	}

	// Moving aside keeps everything.
	old, err := inst.MoveAside()
	if err != nil {
		t.Fatalf("MoveAside: %v", err)
	}
	if !strings.HasPrefix(old, inst.s.DataDir+".pgwarden-old-") {
		t.Fatalf("MoveAside path %s", old)
	}
	for _, f := range []string{"PG_VERSION", "global/pg_control", confFile, baseConfFile} {
		if _, err := os.Stat(filepath.Join(old, f)); err != nil {
			t.Fatalf("after MoveAside: %v", err)
		}
	}
	if empty, err := inst.DataDirEmpty(); err != nil || !empty {
		t.Fatalf("DataDirEmpty after MoveAside = %v, %v", empty, err)
	}
	old2, err := func() (string, error) {
		if err := os.Mkdir(inst.s.DataDir, 0o700); err != nil {
			return "", err
		}
		return inst.MoveAside()
	}()
	if err != nil || old2 == old {
		t.Fatalf("second MoveAside = %s, %v (first %s)", old2, err, old)
	}
}

// TestInaccessibleDataDir: as root, a data directory the OS user cannot
// reach is refused up front with an explanation.
func TestInaccessibleDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only meaningful as root")
	}
	dir := testutil.WorldTempDir(t, "pgw-*")
	priv := filepath.Join(dir, "private")
	if err := os.Mkdir(priv, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := New(Settings{Name: "x", DataDir: filepath.Join(priv, "pg", "data"), Port: 5432})
	want := fmt.Sprintf("postgresql.data_dir %s/pg/data: directory %s is not accessible to OS user postgres; put data directories in a world-traversable place such as /tmp", priv, priv)
	if err == nil || err.Error() != want {
		t.Fatalf("New: %v\nwant: %s", err, want)
	}

	_, err = New(Settings{Name: "x", DataDir: filepath.Join(dir, "data"), OSUser: "no-such-user-pgw"})
	if err == nil || !strings.Contains(err.Error(), "no-such-user-pgw") {
		t.Fatalf("New with an unknown OS user: %v", err)
	}
}
