package dcs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/etcdserver"
	"github.com/pgwarden/pgwarden/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestSnapshotReadsEveryKey(t *testing.T) {
	a := newEtcd(t, "node0")
	b := newEtcd(t, "node1")
	raw := rawClient(t, sharedEtcd.ClientURL())
	ctx := tctx(t)
	p := a.Prefix()
	if want := "/service/" + scopeFor(t) + "/"; p != want {
		t.Fatalf("prefix %q, want %q", p, want)
	}

	empty, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Initialized || empty.Leader != nil || len(empty.Members) != 0 || empty.Config != nil || empty.Status != nil || empty.Revision == 0 {
		t.Fatalf("empty scope read as %+v", empty)
	}

	mustLease(t, a)
	mustLease(t, b)
	// Members are written out of order and come back sorted.
	if err := b.TouchMember(ctx, sampleReplica); err != nil {
		t.Fatal(err)
	}
	if err := a.TouchMember(ctx, samplePrimary); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Initialize(ctx, "7713459073105036598", true); err != nil || !ok {
		t.Fatalf("Initialize: %v, %v", ok, err)
	}
	if ok, err := a.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader: %v, %v", ok, err)
	}
	cfg := map[string]any{"ttl": 20, "loop_wait": 2, "postgresql": map[string]any{"use_pg_rewind": true}}
	if ok, err := a.SetConfig(ctx, cfg, 0); err != nil || !ok {
		t.Fatalf("SetConfig: %v, %v", ok, err)
	}
	if err := a.WriteStatus(ctx, Status{Optime: 67108944}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"history":  `[[1,67109296,"no recovery target specified","2026-11-29T05:21:05.269854+00:00","node1"]]`,
		"failover": `{}`,
		"sync":     `{"leader":"node0","quorum":0,"sync_standby":"node1"}`,
		// Not ours: a Citus group and a nested member path.
		"0/leader":        "other",
		"members/x/y":     `{}`,
		"unknown":         "whatever",
		"members/":        `{}`,
		"leaderboard":     "no",
		"initialize/more": "1",
	} {
		if _, err := raw.Put(ctx, p+k, v); err != nil {
			t.Fatal(err)
		}
	}
	// A neighbouring scope whose name starts like ours.
	if _, err := raw.Put(ctx, strings.TrimSuffix(p, "/")+"x/leader", "intruder"); err != nil {
		t.Fatal(err)
	}

	// What is stored is what Patroni stores.
	for k, want := range map[string]string{
		"leader":        "node0",
		"initialize":    "7713459073105036598",
		"status":        `{"optime":67108944,"slots":{}}`,
		"config":        `{"loop_wait":2,"postgresql":{"use_pg_rewind":true},"ttl":20}`,
		"members/node0": string(readTestdata(t, "patroni-4.1.4-member-primary.json")),
		"members/node1": string(readTestdata(t, "patroni-4.1.4-member-replica.json")),
	} {
		got, _, ok := getValue(t, raw, p+k)
		if !ok || got != want {
			t.Errorf("key %s = %q (present %t), want %q", k, got, ok, want)
		}
	}
	if _, lease, _ := getValue(t, raw, p+"leader"); lease != a.LeaseID() {
		t.Errorf("leader key lease %#x, want %#x", lease, a.LeaseID())
	}
	if _, lease, _ := getValue(t, raw, p+"members/node1"); lease != b.LeaseID() {
		t.Errorf("member key lease %#x, want %#x", lease, b.LeaseID())
	}
	if _, lease, _ := getValue(t, raw, p+"status"); lease != 0 {
		t.Errorf("status key has lease %#x, want none", lease)
	}

	c, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Initialized || c.SystemID != "7713459073105036598" {
		t.Errorf("initialize: %t %q", c.Initialized, c.SystemID)
	}
	if c.Leader == nil || c.Leader.Name != "node0" || c.Leader.Lease != a.LeaseID() || c.Leader.ModRevision == 0 {
		t.Errorf("leader: %+v", c.Leader)
	}
	if len(c.Members) != 2 || c.Members[0].Name != "node0" || c.Members[1].Name != "node1" {
		t.Fatalf("members: %+v", c.Members)
	}
	if c.Members[0].Lease != a.LeaseID() || c.Members[1].Lease != b.LeaseID() || c.Members[0].ModRevision == 0 {
		t.Errorf("member metadata: %+v", c.Members)
	}
	if lm := c.LeaderMember(); lm == nil || lm.Name != "node0" || !lm.IsPrimary() {
		t.Errorf("leader member: %+v", lm)
	}
	if got := c.Member("node1"); got == nil || *got.ReplayLSN != 67108944 || got.ReplicationState != "streaming" {
		t.Errorf("member node1: %+v", got)
	}
	wantCfg := map[string]any{"ttl": float64(20), "loop_wait": float64(2), "postgresql": map[string]any{"use_pg_rewind": true}}
	if !reflect.DeepEqual(c.Config, wantCfg) || c.ConfigRevision == 0 {
		t.Errorf("config %v at revision %d", c.Config, c.ConfigRevision)
	}
	if c.Status == nil || c.Status.Optime != 67108944 || c.Status.Slots == nil || len(c.Status.Slots) != 0 {
		t.Errorf("status %+v", c.Status)
	}
	if string(c.Failover) != `{}` || string(c.Sync) != `{"leader":"node0","quorum":0,"sync_standby":"node1"}` ||
		!strings.HasPrefix(string(c.History), `[[1,67109296,`) {
		t.Errorf("raw keys: failover %s sync %s history %s", c.Failover, c.Sync, c.History)
	}
	if c.Revision < c.ConfigRevision || c.Revision < c.Leader.ModRevision {
		t.Errorf("revision %d is older than the keys it read", c.Revision)
	}
}

func TestNoLeaseNoWrites(t *testing.T) {
	e := newEtcd(t, "node0")
	ctx := tctx(t)
	if e.LeaseID() != 0 {
		t.Fatalf("fresh handle has lease %#x", e.LeaseID())
	}
	if err := e.TouchMember(ctx, samplePrimary); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("TouchMember without a lease: %v", err)
	}
	if _, err := e.AcquireLeader(ctx); err == nil {
		t.Error("AcquireLeader without a lease succeeded")
	}
	if _, err := e.ReclaimLeader(ctx); err == nil {
		t.Error("ReclaimLeader without a lease succeeded")
	}
	if held, err := e.HoldsLeader(ctx); err != nil || held {
		t.Errorf("HoldsLeader without a lease: %v, %v", held, err)
	}
	mustLease(t, e)
	if err := e.TouchMember(ctx, sampleReplica); err == nil {
		t.Error("TouchMember wrote another member's key")
	}
	if fresh, err := e.RefreshLease(ctx); err != nil || fresh {
		t.Errorf("second RefreshLease: %v, %v", fresh, err)
	}
}

func TestAcquireLeaderRace(t *testing.T) {
	a := newEtcd(t, "node0")
	b := newEtcd(t, "node1")
	mustLease(t, a)
	mustLease(t, b)
	ctx := tctx(t)

	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		won := make([]bool, 2)
		errs := make([]error, 2)
		for i, e := range []*Etcd{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				won[i], errs[i] = e.AcquireLeader(ctx)
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: errors %v", round, errs)
		}
		if won[0] == won[1] {
			t.Fatalf("round %d: both or neither won: %v", round, won)
		}
		winner, loser := a, b
		if won[1] {
			winner, loser = b, a
		}
		if held, err := winner.HoldsLeader(ctx); err != nil || !held {
			t.Fatalf("round %d: winner HoldsLeader = %v, %v", round, held, err)
		}
		if held, err := loser.HoldsLeader(ctx); err != nil || held {
			t.Fatalf("round %d: loser HoldsLeader = %v, %v", round, held, err)
		}
		// The loser trying again still loses.
		if ok, err := loser.AcquireLeader(ctx); err != nil || ok {
			t.Fatalf("round %d: loser's second AcquireLeader = %v, %v", round, ok, err)
		}
		if deleted, err := loser.DeleteLeader(ctx); err != nil || deleted {
			t.Fatalf("round %d: loser DeleteLeader = %v, %v", round, deleted, err)
		}
		c, err := a.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Leader == nil || c.Leader.Name != winner.name || c.Leader.Lease != winner.LeaseID() {
			t.Fatalf("round %d: after the loser's delete the leader is %+v", round, c.Leader)
		}
		if deleted, err := winner.DeleteLeader(ctx); err != nil || !deleted {
			t.Fatalf("round %d: winner DeleteLeader = %v, %v", round, deleted, err)
		}
		c, err = a.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Leader != nil {
			t.Fatalf("round %d: leader key still there: %+v", round, c.Leader)
		}
		if held, err := winner.HoldsLeader(ctx); err != nil || held {
			t.Fatalf("round %d: HoldsLeader after delete = %v, %v", round, held, err)
		}
	}
}

func TestSetTTLAndReclaimLeader(t *testing.T) {
	e := newEtcd(t, "node0")
	raw := rawClient(t, sharedEtcd.ClientURL())
	mustLease(t, e)
	ctx := tctx(t)
	if ok, err := e.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader: %v, %v", ok, err)
	}
	old := e.LeaseID()

	e.SetTTL(10 * time.Second) // unchanged: the lease stays
	if e.LeaseID() != old {
		t.Fatal("SetTTL with the same TTL dropped the lease")
	}
	e.SetTTL(12500 * time.Millisecond) // 13 s: a new lease on the next refresh
	if e.LeaseID() != 0 {
		t.Fatal("SetTTL with a new TTL kept the lease")
	}
	fresh, err := e.RefreshLease(ctx)
	if err != nil || !fresh {
		t.Fatalf("RefreshLease after SetTTL: %v, %v", fresh, err)
	}
	if e.LeaseID() == old {
		t.Fatal("the new lease has the old id")
	}
	ttl, err := raw.TimeToLive(ctx, clientv3.LeaseID(e.LeaseID()))
	if err != nil || ttl.GrantedTTL != 13 {
		t.Fatalf("granted TTL %v, %v; want 13", ttl, err)
	}
	// The old lease was not revoked: the leader key is still there, on it.
	if held, err := e.HoldsLeader(ctx); err != nil || held {
		t.Fatalf("HoldsLeader before rebinding: %v, %v", held, err)
	}
	// The key exists: AcquireLeader does not take it, ReclaimLeader does.
	if ok, err := e.AcquireLeader(ctx); err != nil || ok {
		t.Fatalf("AcquireLeader over our old key: %v, %v; want false", ok, err)
	}
	if ok, err := e.ReclaimLeader(ctx); err != nil || !ok {
		t.Fatalf("ReclaimLeader: %v, %v", ok, err)
	}
	if held, err := e.HoldsLeader(ctx); err != nil || !held {
		t.Fatalf("HoldsLeader after rebinding: %v, %v", held, err)
	}
	if v, lease, ok := getValue(t, raw, e.Prefix()+"leader"); !ok || v != "node0" || lease != e.LeaseID() {
		t.Fatalf("leader key %q on %#x (present %t)", v, lease, ok)
	}

	// Another member never reclaims our key, and nobody reclaims a key
	// that does not exist.
	other := newEtcd(t, "node1")
	mustLease(t, other)
	if ok, err := other.ReclaimLeader(ctx); err != nil || ok {
		t.Fatalf("ReclaimLeader by another member: %v, %v; want false", ok, err)
	}
	if v, lease, _ := getValue(t, raw, e.Prefix()+"leader"); v != "node0" || lease != e.LeaseID() {
		t.Fatalf("leader key %q on %#x after another member's ReclaimLeader", v, lease)
	}
	if ok, err := e.DeleteLeader(ctx); err != nil || !ok {
		t.Fatalf("DeleteLeader: %v, %v", ok, err)
	}
	if ok, err := e.ReclaimLeader(ctx); err != nil || ok {
		t.Fatalf("ReclaimLeader without a key: %v, %v; want false", ok, err)
	}
	if _, _, ok := getValue(t, raw, e.Prefix()+"leader"); ok {
		t.Fatal("ReclaimLeader created the leader key")
	}
}

func TestLeaseExpiryFreesLeaderAndWakesWatch(t *testing.T) {
	const ttl = 2 * time.Second
	e := newEtcd(t, "node0", func(o *Options) { o.TTL = ttl })
	other := newEtcd(t, "node1")
	raw := rawClient(t, sharedEtcd.ClientURL())
	ctx := tctx(t)

	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	wake := other.Watch(wctx)
	waitSignal(t, wake, "the watch being set up")

	mustLease(t, e)
	if err := e.TouchMember(ctx, samplePrimary); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader: %v, %v", ok, err)
	}
	// The writes above wake the watch.
	waitSignal(t, wake, "writing the leader key")

	if fresh, err := e.RefreshLease(ctx); err != nil || fresh {
		t.Fatalf("RefreshLease: %v, %v", fresh, err)
	}
	lastRenewal := time.Now()
	old := e.LeaseID()
	// Drain the signal of the writes, if it came separately.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-wake:
	default:
	}

	// Nothing renews the lease any more: etcd must delete both keys.
	deadline := lastRenewal.Add(ttl + time.Second)
	select {
	case _, ok := <-wake:
		if !ok {
			t.Fatal("watch channel closed")
		}
	case <-time.After(time.Until(deadline) + 500*time.Millisecond):
		t.Fatalf("no watch signal %s after the last renewal", time.Since(lastRenewal))
	}
	woke := time.Since(lastRenewal)
	// The signal follows the deletion: the key is already gone.
	if v, _, ok := getValue(t, raw, e.Prefix()+"leader"); ok {
		t.Fatalf("watch woke after %s but the leader key is still %q", woke, v)
	}
	if woke > ttl+time.Second {
		t.Errorf("leader key disappeared %s after the last renewal, want at most %s", woke, ttl+time.Second)
	}
	if woke < ttl-200*time.Millisecond {
		t.Errorf("leader key disappeared after %s, before the TTL of %s", woke, ttl)
	}
	c, err := other.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leader != nil || len(c.Members) != 0 {
		t.Fatalf("after expiry: leader %+v members %+v", c.Leader, c.Members)
	}
	if held, err := e.HoldsLeader(ctx); err != nil || held {
		t.Fatalf("HoldsLeader after expiry: %v, %v", held, err)
	}

	fresh, err := e.RefreshLease(ctx)
	if err != nil || !fresh {
		t.Fatalf("RefreshLease after expiry: %v, %v; want a new lease", fresh, err)
	}
	if e.LeaseID() == old || e.LeaseID() == 0 {
		t.Fatalf("lease after expiry %#x, old %#x", e.LeaseID(), old)
	}
	if ok, err := e.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader on the new lease: %v, %v", ok, err)
	}

	stopWatch()
	select {
	case _, ok := <-wake:
		if ok {
			// A signal of the last write may still be in the buffer.
			if _, ok := <-wake; ok {
				t.Fatal("watch channel not closed after its context ended")
			}
		}
	case <-time.After(2 * time.Second):
		t.Fatal("watch channel not closed after its context ended")
	}
}

func TestGarbledValuesAreSkippedAndLoggedOnce(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := newEtcd(t, "good", func(o *Options) { o.Logger = logger })
	raw := rawClient(t, sharedEtcd.ClientURL())
	ctx := tctx(t)
	mustLease(t, e)
	if err := e.TouchMember(ctx, Member{ConnURL: "postgres://h:1/postgres", Role: "replica", State: "running"}); err != nil {
		t.Fatal(err)
	}
	p := e.Prefix()
	for k, v := range map[string]string{
		"members/bad":   `{"conn_url": "postgres://h:2/postgres", "role": `,
		"members/wrong": `{"xlog_location":"0/1"}`,
		"config":        `{not json`,
		"status":        `[1,2]`,
		"sync":          `{"leader":`,
		"leader":        "good",
	} {
		if _, err := raw.Put(ctx, p+k, v); err != nil {
			t.Fatal(err)
		}
	}

	c, err := e.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot with garbled values: %v", err)
	}
	if len(c.Members) != 1 || c.Members[0].Name != "good" || c.Members[0].ConnURL != "postgres://h:1/postgres" {
		t.Fatalf("members %+v, want only good", c.Members)
	}
	if c.Config != nil || c.ConfigRevision == 0 || c.Status != nil || c.Sync != nil {
		t.Fatalf("config %v (rev %d), status %+v, sync %s", c.Config, c.ConfigRevision, c.Status, c.Sync)
	}
	if c.Leader == nil || c.Leader.Name != "good" {
		t.Fatalf("leader %+v", c.Leader)
	}
	out := logs.String()
	for _, k := range []string{"members/bad", "members/wrong", "config", "status", "sync"} {
		if n := strings.Count(out, "key="+p+k+" "); n != 1 {
			t.Errorf("key %s logged %d times, want once:\n%s", k, n, out)
		}
	}
	if !strings.Contains(out, "level=WARN") {
		t.Errorf("not logged as a warning:\n%s", out)
	}

	// Reading again does not log again.
	if _, err := e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if again := logs.String(); again != out {
		t.Errorf("second Snapshot logged again:\n%s", strings.TrimPrefix(again, out))
	}

	// A new garbled value (new mod revision) is logged again; a fixed one
	// is read.
	if _, err := raw.Put(ctx, p+"members/bad", `{"role":`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(ctx, p+"members/wrong", `{"role":"replica","state":"running"}`); err != nil {
		t.Fatal(err)
	}
	c, err = e.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Members) != 2 || c.Members[1].Name != "wrong" || c.Members[1].Role != "replica" {
		t.Fatalf("members after the fix: %+v", c.Members)
	}
	if n := strings.Count(logs.String(), "key="+p+"members/bad "); n != 2 {
		t.Errorf("members/bad logged %d times after a new revision, want 2", n)
	}
}

func TestInitializeRace(t *testing.T) {
	a := newEtcd(t, "node0")
	b := newEtcd(t, "node1")
	raw := rawClient(t, sharedEtcd.ClientURL())
	ctx := tctx(t)
	key := a.Prefix() + "initialize"

	// Without the key, create=false does nothing.
	if ok, err := a.Initialize(ctx, "123", false); err != nil || ok {
		t.Fatalf("Initialize(create=false) on a missing key: %v, %v", ok, err)
	}
	if _, _, ok := getValue(t, raw, key); ok {
		t.Fatal("Initialize(create=false) created the key")
	}

	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		won := make([]bool, 2)
		errs := make([]error, 2)
		for i, e := range []*Etcd{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				won[i], errs[i] = e.Initialize(ctx, "", true)
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || won[0] == won[1] {
			t.Fatalf("round %d: won %v errors %v; want exactly one winner", round, won, errs)
		}
		// An empty value (initdb never finished) is cancelled.
		if err := a.CancelInitialization(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _, ok := getValue(t, raw, key); ok {
			t.Fatalf("round %d: CancelInitialization left %q", round, v)
		}
	}

	if ok, err := a.Initialize(ctx, "", true); err != nil || !ok {
		t.Fatalf("Initialize: %v, %v", ok, err)
	}
	// The winner fills in the system identifier.
	if ok, err := a.Initialize(ctx, "7713459073105036598", false); err != nil || !ok {
		t.Fatalf("Initialize(create=false) over \"\": %v, %v", ok, err)
	}
	// Writing the same again is fine; a different one is refused.
	if ok, err := a.Initialize(ctx, "7713459073105036598", false); err != nil || !ok {
		t.Fatalf("Initialize(create=false) with the same sysid: %v, %v", ok, err)
	}
	if ok, err := b.Initialize(ctx, "1111", false); err != nil || ok {
		t.Fatalf("Initialize(create=false) with another sysid: %v, %v", ok, err)
	}
	if ok, err := b.Initialize(ctx, "1111", true); err != nil || ok {
		t.Fatalf("Initialize(create=true) over an existing key: %v, %v", ok, err)
	}
	// A finished bootstrap is not cancelled.
	if err := b.CancelInitialization(ctx); err != nil {
		t.Fatal(err)
	}
	if v, lease, ok := getValue(t, raw, key); !ok || v != "7713459073105036598" || lease != 0 {
		t.Fatalf("initialize = %q on lease %#x (present %t)", v, lease, ok)
	}
	c, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Initialized || c.SystemID != "7713459073105036598" {
		t.Fatalf("snapshot: initialized %t sysid %q", c.Initialized, c.SystemID)
	}
}

func TestSetConfigCompareAndSwap(t *testing.T) {
	a := newEtcd(t, "node0")
	b := newEtcd(t, "node1")
	ctx := tctx(t)

	if ok, err := a.SetConfig(ctx, map[string]any{"ttl": 30}, 0); err != nil || !ok {
		t.Fatalf("create: %v, %v", ok, err)
	}
	if ok, err := b.SetConfig(ctx, map[string]any{"ttl": 31}, 0); err != nil || ok {
		t.Fatalf("second create: %v, %v; want refused", ok, err)
	}
	c, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rev := c.ConfigRevision
	if rev == 0 || c.Config["ttl"] != float64(30) {
		t.Fatalf("config %v at %d", c.Config, rev)
	}
	if ok, err := b.SetConfig(ctx, map[string]any{"ttl": 40, "tag": "<&>"}, rev); err != nil || !ok {
		t.Fatalf("update at the current revision: %v, %v", ok, err)
	}
	// a still believes rev is current: stale.
	if ok, err := a.SetConfig(ctx, map[string]any{"ttl": 50}, rev); err != nil || ok {
		t.Fatalf("update at a stale revision: %v, %v; want refused", ok, err)
	}
	if ok, err := a.SetConfig(ctx, map[string]any{"ttl": 50}, rev+1000); err != nil || ok {
		t.Fatalf("update at a future revision: %v, %v; want refused", ok, err)
	}
	c, err = a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Config["ttl"] != float64(40) || c.Config["tag"] != "<&>" || c.ConfigRevision <= rev {
		t.Fatalf("config %v at %d", c.Config, c.ConfigRevision)
	}
	raw := rawClient(t, sharedEtcd.ClientURL())
	if v, _, _ := getValue(t, raw, a.Prefix()+"config"); v != `{"tag":"<&>","ttl":40}` {
		t.Fatalf("stored config %s", v)
	}
}

func TestEtcdDown(t *testing.T) {
	// New succeeds with nothing listening, and calls fail within their
	// context's deadline.
	dead, err := New(Options{
		Endpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))},
		Scope:     scopeFor(t), Name: "node0", Logger: quietLogger(),
	})
	if err != nil {
		t.Fatalf("New without etcd: %v", err)
	}
	defer dead.Close()
	checkFailsFast(t, "Snapshot", func(ctx context.Context) error { _, err := dead.Snapshot(ctx); return err })
	checkFailsFast(t, "RefreshLease", func(ctx context.Context) error { _, err := dead.RefreshLease(ctx); return err })

	// A server of its own, stopped under a working handle, then started
	// again on the same data and ports: the watch comes back by itself.
	dir := testutil.WorldTempDir(t, "dcs-etcd-down-")
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	srv, err := etcdserver.Start(dir, clientURL, peerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Stop() }()
	e := newEtcd(t, "node0", func(o *Options) { o.Endpoints = []string{clientURL} })
	mustLease(t, e)
	if _, err := e.Snapshot(tctx(t)); err != nil {
		t.Fatalf("Snapshot while up: %v", err)
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	wake := e.Watch(wctx)
	// Make sure the watch runs before etcd goes away.
	waitSignal(t, wake, "the watch being set up")
	if err := e.WriteStatus(tctx(t), Status{Optime: 0}); err != nil {
		t.Fatal(err)
	}
	if err := e.TouchMember(tctx(t), samplePrimary); err != nil {
		t.Fatal(err)
	}
	// Member and status keys are rewritten every cycle: they must not wake the loop.
	select {
	case <-wake:
		t.Fatal("a member or status write woke the watch")
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := e.SetConfig(tctx(t), map[string]any{"ttl": 30}, 0); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, wake, "a write of the config key")

	srv.Stop()
	checkFailsFast(t, "Snapshot after stop", func(ctx context.Context) error { _, err := e.Snapshot(ctx); return err })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err = e.RefreshLease(ctx)
	cancel()
	if err == nil || !strings.HasPrefix(err.Error(), "renewing lease 0x") {
		t.Fatalf("RefreshLease while down: %v", err)
	}

	srv, err = etcdserver.Start(dir, clientURL, peerURL)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake: // nothing changed; drop a spurious signal if any
	default:
	}
	if _, err = e.Initialize(tctx(t), "1", true); err != nil {
		t.Fatalf("Initialize after restart: %v", err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not come back after etcd restarted")
	}
	// The lease survived the restart (leases are persisted).
	if fresh, err := e.RefreshLease(tctx(t)); err != nil || fresh {
		t.Fatalf("RefreshLease after restart: %v, %v", fresh, err)
	}
}

// checkFailsFast runs f with a 1 s deadline and wants an error within 2 s.
func checkFailsFast(t *testing.T, what string, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("%s succeeded without etcd", what)
	}
	if took > 2*time.Second {
		t.Fatalf("%s took %s to fail, past its 1 s deadline", what, took)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "etcd") {
		t.Errorf("%s error does not say what failed: %v", what, err)
	}
}

func TestClosedHandle(t *testing.T) {
	e := newEtcd(t, "node0")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Snapshot(tctx(t)); err == nil {
		t.Fatal("Snapshot on a closed handle succeeded")
	}
}

// waitSignal waits up to 3 s for a watch signal.
func waitSignal(t *testing.T, wake <-chan struct{}, after string) {
	t.Helper()
	select {
	case _, ok := <-wake:
		if !ok {
			t.Fatalf("watch channel closed, waiting for a signal after %s", after)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("no watch signal after %s", after)
	}
}
