package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/testutil"
)

// startPair bootstraps a primary and a streaming standby of it (the
// standby uses primary_slot_name when slot is not empty; the slot must be
// created by then, which before is called for, on the started primary).
func startPair(t *testing.T, ctx context.Context, p, s *Instance, slot string, before func()) {
	t.Helper()
	if err := p.Initdb(ctx); err != nil {
		t.Fatalf("Initdb: %v", err)
	}
	if err := p.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := p.CreateRoles(ctx); err != nil {
		t.Fatalf("CreateRoles: %v", err)
	}
	sqlExec(t, p, "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('one')")
	if before != nil {
		before()
	}
	s.SetPrimarySlotName(slot)
	if err := s.Basebackup(ctx, p.connInfo()); err != nil {
		t.Fatalf("Basebackup: %v", err)
	}
	if err := s.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start standby: %v", err)
	}
	waitStreaming(t, s, p, 1)
}

// waitStreaming waits until s streams from up on timeline tli.
func waitStreaming(t *testing.T, s, up *Instance, tli int) State {
	t.Helper()
	return waitState(t, s, fmt.Sprintf("streaming from %s on timeline %d", up.s.Name, tli), func(st State) string {
		switch {
		case !st.InRecovery:
			return "not in recovery"
		case !st.Streaming:
			return "not streaming"
		case st.UpstreamPort != up.s.Port:
			return "wrong upstream"
		case st.Timeline != tli:
			return "wrong timeline"
		}
		return ""
	})
}

func findSlot(t *testing.T, inst *Instance, name string) (Slot, bool) {
	t.Helper()
	slots, err := inst.ReplicationSlots(context.Background())
	if err != nil {
		t.Fatalf("ReplicationSlots: %v", err)
	}
	for _, s := range slots {
		if s.Name == name {
			return s, true
		}
	}
	return Slot{}, false
}

func waitSlotActive(t *testing.T, inst *Instance, name string, active bool) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("slot %s active=%v", name, active), func() string {
		s, ok := findSlot(t, inst, name)
		if !ok || s.Active != active {
			return fmt.Sprintf("slot %+v (exists %v)", s, ok)
		}
		return ""
	})
}

// TestSlotsAndSync: replication slots (create, list, advance, drop while
// in use, switching primary_slot_name by reload) and strict synchronous
// replication.
func TestSlotsAndSync(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newTestInstance(t, "p1", nil)
	s := newTestInstance(t, "Standby-2", nil)
	slot := SlotName(s.s.Name)
	if slot != "standby_2" {
		t.Fatalf("SlotName = %s", slot)
	}

	startPair(t, ctx, p, s, slot, func() {
		if err := p.CreatePhysicalSlot(ctx, slot, true); err != nil {
			t.Fatalf("CreatePhysicalSlot: %v", err)
		}
		if err := p.CreatePhysicalSlot(ctx, slot, true); err != nil {
			t.Fatalf("CreatePhysicalSlot again: %v", err)
		}
		sl, ok := findSlot(t, p, slot)
		if !ok || sl.Type != "physical" || sl.Active || sl.RestartLSN <= 0 || sl.ConfirmedFlushLSN != 0 {
			t.Fatalf("new slot: %+v, %v", sl, ok)
		}
	})
	waitSlotActive(t, p, slot, true)
	if conf, err := os.ReadFile(filepath.Join(s.s.DataDir, confFile)); err != nil || !strings.Contains(string(conf), "primary_slot_name = 'standby_2'") {
		t.Fatalf("standby's postgresql.conf (%v):\n%s", err, conf)
	}

	// A temporary slot (pg_basebackup's, for one) is a session's own: it is
	// not listed, so that nothing drops it under a running clone.
	tmp, err := p.connect(ctx, p.s.ConnectHost, p.s.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close(context.Background())
	if _, err := tmp.Exec(ctx, "SELECT pg_create_physical_replication_slot('pg_basebackup_42', true, true)"); err != nil {
		t.Fatal(err)
	}
	if sl, ok := findSlot(t, p, "pg_basebackup_42"); ok {
		t.Fatalf("a temporary slot is listed: %+v", sl)
	}

	// A slot that reserves no WAL, and advancing one that does.
	if err := p.CreatePhysicalSlot(ctx, "lazy", false); err != nil {
		t.Fatal(err)
	}
	if sl, ok := findSlot(t, p, "lazy"); !ok || sl.RestartLSN != 0 {
		t.Fatalf("lazy slot: %+v, %v", sl, ok)
	}
	if err := p.CreatePhysicalSlot(ctx, "adv", true); err != nil {
		t.Fatal(err)
	}
	before, _ := findSlot(t, p, "adv")
	sqlExec(t, p, "INSERT INTO t SELECT 'filler' FROM generate_series(1, 1000)")
	st, err := p.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AdvanceSlot(ctx, "adv", st.WALPosition); err != nil {
		t.Fatalf("AdvanceSlot: %v", err)
	}
	if err := p.AdvanceSlot(ctx, "adv", before.RestartLSN); err != nil { // backwards: nothing
		t.Fatalf("AdvanceSlot backwards: %v", err)
	}
	if after, _ := findSlot(t, p, "adv"); after.RestartLSN != st.WALPosition || after.RestartLSN <= before.RestartLSN {
		t.Fatalf("advanced slot: %s -> %s, want %s", FormatLSN(before.RestartLSN), FormatLSN(after.RestartLSN), FormatLSN(st.WALPosition))
	}
	if err := p.AdvanceSlot(ctx, "nope", st.WALPosition); err == nil {
		t.Fatal("AdvanceSlot of a missing slot: no error")
	}

	// Strict synchronous replication with the standby as the sync one.
	ssn := SyncStandbyNames(1, []string{s.s.Name})
	if err := p.SetSynchronousStandbyNames(ctx, ssn); err != nil {
		t.Fatalf("SetSynchronousStandbyNames: %v", err)
	}
	if got := showSetting(t, p, "synchronous_standby_names"); got != ssn {
		t.Fatalf("SHOW synchronous_standby_names = %q, want %q", got, ssn)
	}
	waitFor(t, 10*time.Second, "standby sync", func() string {
		reps, err := p.SyncState(ctx)
		if err != nil {
			return err.Error()
		}
		if len(reps) != 1 || reps[0].ApplicationName != s.s.Name || reps[0].SyncState != "sync" || reps[0].State != "streaming" || reps[0].FlushLSN <= 0 {
			return fmt.Sprintf("%+v", reps)
		}
		return ""
	})
	sqlExec(t, p, "INSERT INTO t VALUES ('synced')") // returns: the standby confirms

	// With the standby stopped a commit waits; it returns once the standby
	// is back.
	stopCtx, stopCancel := context.WithTimeout(ctx, 20*time.Second)
	if err := s.Stop(stopCtx, "fast", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	stopCancel()
	done := asyncInsert(p, "blocked1")
	select {
	case err := <-done:
		t.Fatalf("commit returned without the sync standby: %v", err)
	case <-time.After(time.Second):
	}
	if err := s.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocked commit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("commit still waiting after the standby came back")
	}

	// Again, released by turning synchronous replication off.
	if err := s.Stop(ctx, "fast", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	done = asyncInsert(p, "blocked2")
	select {
	case err := <-done:
		t.Fatalf("commit returned without the sync standby: %v", err)
	case <-time.After(time.Second):
	}
	if err := p.SetSynchronousStandbyNames(ctx, ""); err != nil {
		t.Fatalf("SetSynchronousStandbyNames(\"\"): %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocked commit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("commit still waiting after synchronous_standby_names was cleared")
	}
	if got := showSetting(t, p, "synchronous_standby_names"); got != "" {
		t.Fatalf("SHOW synchronous_standby_names = %q", got)
	}
	// Survives a restart (it is in the managed file).
	if err := p.SetSynchronousStandbyNames(ctx, SyncStrictPlaceholder); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx, "fast", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := showSetting(t, p, "synchronous_standby_names"); got != SyncStrictPlaceholder {
		t.Fatalf("after restart: synchronous_standby_names = %q", got)
	}
	if err := p.SetSynchronousStandbyNames(ctx, ""); err != nil {
		t.Fatal(err)
	}
	// A value PostgreSQL rejects is reported, not waited for.
	if err := p.SetSynchronousStandbyNames(ctx, "FIRST 1 (a"); err == nil || !strings.Contains(err.Error(), "not applied") {
		t.Fatalf("invalid synchronous_standby_names: %v", err)
	}
	if err := p.SetSynchronousStandbyNames(ctx, ""); err != nil {
		t.Fatal(err)
	}

	// Dropping the slot the streaming standby uses.
	if err := s.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitSlotActive(t, p, slot, true)
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	if err := p.DropSlot(dctx, slot); err != nil {
		t.Fatalf("DropSlot of an active slot: %v", err)
	}
	dcancel()
	if _, ok := findSlot(t, p, slot); ok {
		t.Fatal("slot still there after DropSlot")
	}
	if err := p.DropSlot(ctx, slot); err != nil {
		t.Fatalf("DropSlot of a missing slot: %v", err)
	}
	// Follow switches the standby to another slot by a reload.
	if err := p.CreatePhysicalSlot(ctx, "other", true); err != nil {
		t.Fatal(err)
	}
	s.SetPrimarySlotName("other")
	if restarted, err := s.Follow(ctx, p.connInfo()); err != nil || restarted {
		t.Fatalf("Follow = %v, %v", restarted, err)
	}
	waitSlotActive(t, p, "other", true)
	waitStreaming(t, s, p, 1)
	for _, name := range []string{"other", "lazy", "adv"} {
		if err := p.DropSlot(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if slots, err := p.ReplicationSlots(ctx); err != nil || len(slots) != 0 {
		t.Fatalf("slots left: %+v, %v", slots, err)
	}
	if err := p.CreatePhysicalSlot(ctx, "", true); err == nil {
		t.Fatal("CreatePhysicalSlot with an empty name: no error")
	}
}

func showSetting(t *testing.T, inst *Instance, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := inst.connect(ctx, inst.s.ConnectHost, inst.s.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var v string
	if err := c.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// asyncInsert inserts a row on its own connection and reports the commit's
// outcome on the channel; it gives up after 60 s.
func asyncInsert(inst *Instance, v string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := inst.connect(ctx, inst.s.ConnectHost, inst.s.Port)
		if err != nil {
			done <- err
			return
		}
		defer c.Close(context.Background())
		_, err = c.Exec(ctx, "INSERT INTO t VALUES ('"+v+"')")
		done <- err
	}()
	return done
}

// TestRewind makes two real divergences and repairs them with pg_rewind:
// the old primary stopped by crash (immediate), then the other node
// stopped cleanly (fast).
func TestRewind(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := newTestInstance(t, "a", nil)
	b := newTestInstance(t, "b", nil)
	startPair(t, ctx, a, b, "", nil)

	if h, err := a.HistoryFile(ctx); err != nil || len(h) != 0 {
		t.Fatalf("HistoryFile on timeline 1 = %+v, %v", h, err)
	}

	// Round 1: promote b, a keeps writing on timeline 1, then crashes.
	diverge(t, ctx, b, a, "diverged_a")
	h, err := b.HistoryFile(ctx)
	if err != nil || len(h) != 1 || h[0].Timeline != 1 || h[0].LSN <= 0 || h[0].Reason == "" {
		t.Fatalf("HistoryFile after one promotion = %+v, %v", h, err)
	}
	// The new primary's postgresql.auto.conf names a slot; the rewound
	// node must not inherit that.
	sqlExec(t, b, "ALTER SYSTEM SET primary_slot_name = 'b_only'")
	if err := a.Stop(ctx, "immediate", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if cd, err := a.ControlData(); err != nil || cd.State != "in production" {
		t.Fatalf("a after an immediate stop: %+v, %v", cd, err)
	}
	if ok, why := a.CanRewind(); !ok {
		t.Fatalf("CanRewind: %s", why)
	}
	logBefore := fileSize(a.RewindLogFile())
	rewindAndCheck(t, ctx, a, b, 2, "diverged_a")
	if log, _ := os.ReadFile(a.RewindLogFile()); !strings.Contains(string(log[logBefore:]), "crash recovery") {
		t.Errorf("no crash recovery before the rewind of an unclean target:\n%s", log[logBefore:])
	}
	if auto, err := os.ReadFile(filepath.Join(a.s.DataDir, autoConfFile)); err != nil || strings.Contains(string(auto), "b_only") {
		t.Fatalf("rewound postgresql.auto.conf (%v):\n%s", err, auto)
	}

	// Round 2: promote a (timeline 3), b keeps writing on timeline 2 and is
	// shut down cleanly.
	diverge(t, ctx, a, b, "diverged_b")
	if err := b.Stop(ctx, "fast", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if cd, err := b.ControlData(); err != nil || cd.State != "shut down" || cd.DataChecksumVersion == 0 || !cd.WALLogHints {
		t.Fatalf("b after a fast stop: %+v, %v", cd, err)
	}
	rewindAndCheck(t, ctx, b, a, 3, "diverged_b")
	h, err = a.HistoryFile(ctx)
	if err != nil || len(h) != 2 || h[0].Timeline != 1 || h[1].Timeline != 2 || h[1].LSN <= h[0].LSN {
		t.Fatalf("HistoryFile after two promotions = %+v, %v", h, err)
	}
	if h2, err := b.HistoryFile(ctx); err != nil || len(h2) != 2 || h2[1] != h[1] {
		t.Fatalf("HistoryFile on the standby = %+v, %v", h2, err)
	}

	// Failures. While running:
	if err := b.Rewind(ctx, a.connInfo()); !errors.Is(err, ErrRewindFailed) || !errors.Is(err, ErrRunning) {
		t.Fatalf("Rewind while running: %v", err)
	}
	if err := b.Stop(ctx, "fast", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Unreachable source: nothing is touched.
	nobody := ConnInfo{Host: "127.0.0.1", Port: testutil.FreePort(t)}
	err = b.Rewind(ctx, nobody)
	if !errors.Is(err, ErrRewindFailed) || !errors.Is(err, ErrRewindSourceUnavailable) {
		t.Fatalf("Rewind from nowhere: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(b.s.DataDir, standbySig)); serr != nil {
		t.Fatalf("standby.signal after a failed rewind: %v", serr)
	}
	t.Logf("Rewind from nowhere: %v", err)
	// A source that is another cluster: pg_rewind itself fails and says why.
	c := newTestInstance(t, "c", nil)
	if err := c.Initdb(ctx); err != nil {
		t.Fatal(err)
	}
	err = c.Rewind(ctx, a.connInfo())
	if !errors.Is(err, ErrRewindFailed) || errors.Is(err, ErrRewindSourceUnavailable) || !strings.Contains(err.Error(), "different systems") {
		t.Fatalf("Rewind from another cluster: %v", err)
	}
	t.Logf("Rewind from another cluster: %v", err)
	// b still starts and follows a.
	if err := b.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitStreaming(t, b, a, 3)

	// RemoveDataDir refuses while running, then empties.
	if err := b.RemoveDataDir(); !errors.Is(err, ErrRunning) {
		t.Fatalf("RemoveDataDir while running: %v", err)
	}
	if err := b.Stop(ctx, "immediate", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveDataDir(); err != nil {
		t.Fatal(err)
	}
	if empty, err := b.DataDirEmpty(); err != nil || !empty {
		t.Fatalf("after RemoveDataDir: empty=%v, %v", empty, err)
	}
}

// diverge promotes standby newPrimary and writes a row on oldPrimary
// (still a primary on the old timeline), so both have WAL past the fork.
func diverge(t *testing.T, ctx context.Context, newPrimary, oldPrimary *Instance, row string) {
	t.Helper()
	sqlExec(t, oldPrimary, "INSERT INTO t VALUES ('before_"+row+"')")
	waitFor(t, 20*time.Second, "replicated before the fork", func() string {
		if n := sqlCount(newPrimary, "SELECT count(*) FROM t WHERE v = 'before_"+row+"'"); n != 1 {
			return fmt.Sprintf("count = %d", n)
		}
		return ""
	})
	if err := newPrimary.Promote(ctx, 30*time.Second); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	sqlExec(t, newPrimary, "INSERT INTO t VALUES ('after_"+row+"')")
	sqlExec(t, oldPrimary, "INSERT INTO t VALUES ('"+row+"')", "SELECT pg_switch_wal()", "INSERT INTO t VALUES ('"+row+"')")
}

// rewindAndCheck rewinds stopped target from source and checks it then
// streams from source on timeline tli with source's rows and without its
// own diverged one.
func rewindAndCheck(t *testing.T, ctx context.Context, target, source *Instance, tli int, diverged string) {
	t.Helper()
	began := time.Now()
	if err := target.Rewind(ctx, source.connInfo()); err != nil {
		t.Fatalf("Rewind: %v", err)
	}
	t.Logf("%s: Rewind took %v", target.s.Name, time.Since(began).Round(time.Millisecond))
	if err := target.WriteConfig(true, ptr(source.connInfo())); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(target.s.DataDir, confFile))
	if err != nil || !strings.Contains(string(conf), fmt.Sprintf("port = '%d'", target.s.Port)) ||
		!strings.Contains(string(conf), "application_name=''"+target.s.Name+"''") ||
		!strings.Contains(string(conf), fmt.Sprintf("port=''%d''", source.s.Port)) {
		t.Fatalf("rewound postgresql.conf (%v):\n%s", err, conf)
	}
	if err := target.Start(ctx, 30*time.Second); err != nil {
		t.Fatalf("Start after rewind: %v", err)
	}
	waitStreaming(t, target, source, tli)
	sqlExec(t, source, "INSERT INTO t VALUES ('post_rewind_"+diverged+"')")
	waitFor(t, 20*time.Second, "source's rows on the rewound node", func() string {
		if n := sqlCount(target, "SELECT count(*) FROM t WHERE v IN ('after_"+diverged+"', 'post_rewind_"+diverged+"')"); n != 2 {
			return fmt.Sprintf("count = %d", n)
		}
		return ""
	})
	if n := sqlCount(target, "SELECT count(*) FROM t WHERE v = '"+diverged+"'"); n != 0 {
		t.Fatalf("the diverged row is still there (%d)", n)
	}
	reps, err := source.SyncState(ctx)
	if err != nil || len(reps) != 1 || reps[0].ApplicationName != target.s.Name || reps[0].SyncState != "async" {
		t.Fatalf("source's replicas: %+v, %v", reps, err)
	}
}

func ptr[T any](v T) *T { return &v }

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
