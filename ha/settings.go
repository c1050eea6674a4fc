package ha

import (
	"context"
	"maps"
	"sort"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// This file holds how the loop turns the configuration (file and config
// key) into its settings and into PostgreSQL parameters.

// Reload asks the loop to apply new tags and local PostgreSQL parameters
// (postgresql.parameters of the YAML file) at the start of the next
// cycle, which it runs at once.
func (l *Loop) Reload(tags config.Tags, localParams map[string]string) {
	l.reloadReq.Store(&reloadRequest{tags: tags, params: localParams})
	l.Wake()
}

func (l *Loop) applyReload(ctx context.Context) {
	r := l.reloadReq.Swap(nil)
	if r == nil {
		return
	}
	l.cfg.Tags = r.tags
	l.cfg.LocalParameters = r.params
	l.settings.NoFailover, l.settings.CloneFrom = r.tags.NoFailover, r.tags.CloneFrom
	l.applyParameters(ctx, true)
}

// applyParameters hands PostgreSQL the dynamic parameters overlaid by the
// local ones, and when they changed (or force) rewrites its configuration
// and reloads it. Parameters that need a restart then show as
// pending_restart.
func (l *Loop) applyParameters(ctx context.Context, force bool) {
	want := l.wantParameters()
	changed := !maps.Equal(want, l.params)
	if !changed && !force {
		return
	}
	l.params = want // refused or not, do not retry every cycle
	if err := l.pg.SetParameters(want); err != nil {
		l.log.Error("the PostgreSQL parameters from the configuration are refused; keeping the previous ones", "err", err)
		return
	}
	if !l.pg.IsRunning() {
		return // written at the next start
	}
	st, err := l.pg.Observe(ctx)
	if err != nil {
		l.log.Warn("applying parameters: observing PostgreSQL", "err", err)
		return
	}
	if err := l.pg.WriteConfig(st.InRecovery, l.upstreamInfo()); err != nil {
		l.log.Error("applying parameters: writing PostgreSQL configuration", "err", err)
		return
	}
	if err := l.pg.Reload(ctx); err != nil {
		l.log.Error("applying parameters: reloading PostgreSQL", "err", err)
		return
	}
	if changed {
		l.log.Info("PostgreSQL parameters changed: configuration rewritten and reloaded")
	}
}

// wantParameters: the dynamic configuration's postgresql.parameters (the
// config key, or bootstrap.dcs before it exists) overlaid by the local ones.
func (l *Loop) wantParameters() map[string]string {
	dyn := l.cfg.Bootstrap
	if l.cluster != nil && l.cluster.Config != nil {
		if d, err := config.DynamicFromMap(l.cluster.Config); err == nil {
			dyn = d
		}
	}
	want := make(map[string]string, len(dyn.Parameters)+len(l.cfg.LocalParameters))
	for k, v := range dyn.Parameters {
		want[k] = v
	}
	for k, v := range l.cfg.LocalParameters {
		want[k] = v
	}
	if l.cfg.Citus != nil {
		l.cfg.Citus.AdjustParameters(want)
	}
	return want
}

// safetyMargin is how long before the etcd lease can expire that a
// primary without a renewal stops accepting writes.
func safetyMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/5, time.Second), 5*time.Second)
}

func (l *Loop) settingsFrom(c *dcs.Cluster) Settings {
	dyn := l.cfg.Bootstrap
	if c != nil && c.Config != nil {
		if d, err := config.DynamicFromMap(c.Config); err == nil {
			dyn = d
		} else if l.log != nil && c.ConfigRevision != l.badConfigRev {
			l.badConfigRev = c.ConfigRevision
			l.log.Warn("ignoring the dynamic configuration in etcd; using bootstrap.dcs", "err", err)
		}
	}
	s := Settings{
		TTL:                  dyn.TTL,
		LoopWait:             dyn.LoopWait,
		RetryTimeout:         dyn.RetryTimeout,
		MaximumLagOnFailover: dyn.MaximumLagOnFailover,
		NoFailover:           l.cfg.Tags.NoFailover,
		CloneFrom:            l.cfg.Tags.CloneFrom,
		MaxPrimaryRestarts:   l.cfg.MaxPrimaryRestarts,
		StreamingGrace:       max(dyn.TTL, 10*time.Second),

		SynchronousMode:       dyn.SynchronousMode,
		SynchronousModeStrict: dyn.SynchronousMode && dyn.SynchronousModeStrict,
		SynchronousNodeCount:  max(dyn.SynchronousNodeCount, 1),
		UseSlots:              dyn.UseSlots,
		UsePgRewind:           dyn.UsePgRewind,
		RemoveOnRewindFailure: l.cfg.RemoveOnRewindFailure,
		RemoveOnDiverged:      l.cfg.RemoveOnDiverged,
		MemberSlotsTTL:        dyn.MemberSlotsTTL,
		CheckTimeline:         dyn.CheckTimeline,
	}
	if l.cfg.UsePgRewind != nil {
		s.UsePgRewind = *l.cfg.UsePgRewind
	}
	if l.cfg.UseSlots != nil {
		s.UseSlots = *l.cfg.UseSlots
	}
	for name, ps := range dyn.Slots {
		if ps.Type == "physical" {
			s.PermanentSlots = append(s.PermanentSlots, name)
		}
	}
	sort.Strings(s.PermanentSlots)
	return s
}

func (l *Loop) applySettings(c *dcs.Cluster) {
	s := l.settingsFrom(c)
	if s.TTL != l.settings.TTL {
		l.log.Info("ttl changed", "from", l.settings.TTL, "to", s.TTL)
		l.dcs.SetTTL(s.TTL)
	}
	l.settings = s
	l.applySlotName()
	l.warnAsyncWorker()
}

// warnAsyncWorker warns once (again after each change back) when a Citus
// worker group runs without synchronous mode: Citus's two-phase commit
// recovery takes a prepared transaction that is missing on a worker as
// committed, so a PREPARE lost in an asynchronous failover silently breaks
// the atomicity of a multi-shard transaction.
func (l *Loop) warnAsyncWorker() {
	if l.cfg.Citus == nil || l.cfg.CitusGroup == 0 {
		return
	}
	if l.settings.SynchronousMode {
		l.citusWarned = false
		return
	}
	if !l.citusWarned {
		l.citusWarned = true
		l.log.Warn("this Citus worker group runs without synchronous_mode: a failover can lose a prepared transaction, "+
			"and Citus then takes it as committed on the other nodes, breaking multi-shard atomicity; set synchronous_mode: true",
			"group", l.cfg.CitusGroup)
	}
}

// applySlotName hands the instance the primary_slot_name a standby uses
// (written at the next WriteConfig; a change also forces one).
func (l *Loop) applySlotName() {
	name := ""
	if l.settings.UseSlots {
		name = postgres.SlotName(l.cfg.Name)
	}
	if name == l.slotName {
		return
	}
	first := l.slotName == "" && !l.settings.UseSlots
	l.slotName = name
	l.pg.SetPrimarySlotName(name)
	if !first {
		l.params = nil // rewrite and reload at the next applyParameters
	}
}
