package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshot reads every key of the cluster with one range read. Values that
// do not parse are logged once per key and mod revision, and left out (a
// member is omitted, Config or Status stays nil); they are never an error.
// Keys it does not know, and keys deeper than members/<name>, are ignored.
func (e *Etcd) Snapshot(ctx context.Context) (*Cluster, error) {
	cli, err := e.client()
	if err != nil {
		return nil, err
	}
	resp, err := cli.Get(ctx, e.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("reading %s from etcd: %w", e.prefix, err)
	}
	garbled := make(map[string]int64)
	c := e.parseCluster(e.prefix, resp.Kvs, resp.Header.Revision, garbled)
	e.forgetWarnings(e.prefix, garbled)
	return c, nil
}

// SnapshotGroups reads every Citus group under the scope with one range
// read: group number -> that group's cluster (as Snapshot reads it). Keys
// not under a numeric group folder are ignored. The revision is the read's.
func (e *Etcd) SnapshotGroups(ctx context.Context) (map[int]*Cluster, int64, error) {
	cli, err := e.client()
	if err != nil {
		return nil, 0, err
	}
	resp, err := cli.Get(ctx, e.scopePrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s from etcd: %w", e.scopePrefix, err)
	}
	byGroup := map[int][]*mvccpb.KeyValue{}
	for _, kv := range resp.Kvs {
		rel, ok := strings.CutPrefix(string(kv.Key), e.scopePrefix)
		if !ok {
			continue
		}
		g, _, ok := strings.Cut(rel, "/")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(g)
		if err != nil || n < 0 || strconv.Itoa(n) != g {
			continue
		}
		byGroup[n] = append(byGroup[n], kv)
	}
	garbled := make(map[string]int64)
	out := make(map[int]*Cluster, len(byGroup))
	for g, kvs := range byGroup {
		out[g] = e.parseCluster(e.scopePrefix+strconv.Itoa(g)+"/", kvs, resp.Header.Revision, garbled)
	}
	e.forgetWarnings(e.scopePrefix, garbled)
	return out, resp.Header.Revision, nil
}

// parseCluster builds a cluster from the keys under prefix. Values that do
// not parse are logged and recorded in garbled.
func (e *Etcd) parseCluster(prefix string, kvs []*mvccpb.KeyValue, rev int64, garbled map[string]int64) *Cluster {
	c := &Cluster{Revision: rev}
	bad := func(kv *mvccpb.KeyValue, err error) {
		garbled[string(kv.Key)] = kv.ModRevision
		e.warnGarbled(kv, err)
	}
	for _, kv := range kvs {
		rel, ok := strings.CutPrefix(string(kv.Key), prefix)
		if !ok {
			continue
		}
		switch rel {
		case keyInitialize:
			c.Initialized = true
			c.SystemID = string(kv.Value)
		case keyLeader:
			c.Leader = &Leader{Name: string(kv.Value), Lease: kv.Lease, ModRevision: kv.ModRevision}
		case keyConfig:
			c.ConfigRevision = kv.ModRevision
			var cfg map[string]any
			if err := json.Unmarshal(kv.Value, &cfg); err != nil {
				bad(kv, err)
				continue
			}
			if cfg == nil { // the JSON literal null
				cfg = map[string]any{}
			}
			c.Config = cfg
		case keyStatus:
			var s Status
			if err := json.Unmarshal(kv.Value, &s); err != nil {
				bad(kv, err)
				continue
			}
			c.Status = &s
		case keyFailover:
			c.FailoverRevision = kv.ModRevision
			c.Failover = e.rawValue(kv, bad)
			if c.Failover != nil {
				f, err := ParseFailover(c.Failover)
				if err != nil {
					bad(kv, err)
				} else if !f.Empty() {
					f.ModRevision = kv.ModRevision
					c.FailoverRequest = &f
				}
			}
		case keySync:
			c.SyncRevision = kv.ModRevision
			c.Sync = e.rawValue(kv, bad)
			if c.Sync != nil {
				st, err := ParseSync(c.Sync)
				if err != nil {
					bad(kv, err)
				} else {
					st.ModRevision = kv.ModRevision
					c.SyncState = &st
				}
			}
		case keyHistory:
			c.HistoryRevision = kv.ModRevision
			c.History = e.rawValue(kv, bad)
			if c.History != nil {
				h, err := ParseHistory(c.History)
				if err != nil {
					bad(kv, err)
				} else {
					c.HistoryEntries = h
				}
			}
		default:
			name, ok := strings.CutPrefix(rel, keyMembers)
			if !ok || name == "" || strings.Contains(name, "/") {
				continue
			}
			m, err := ParseMember(name, kv.Value)
			if err != nil {
				bad(kv, err)
				continue
			}
			m.Lease, m.ModRevision = kv.Lease, kv.ModRevision
			c.Members = append(c.Members, m)
		}
	}
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].Name < c.Members[j].Name })

	return c
}

// forgetWarnings forgets warnings about keys that are no longer garbled.
// Only keys under prefix (what was read) are considered.
func (e *Etcd) forgetWarnings(prefix string, garbled map[string]int64) {
	// Forget warnings about keys that are no longer garbled, so that the
	// map stays as small as the cluster and a key that breaks again, at a
	// new revision, is logged again.
	e.mu.Lock()
	for k, rev := range e.warned {
		if strings.HasPrefix(k, prefix) && garbled[k] != rev {
			delete(e.warned, k)
		}
	}
	e.mu.Unlock()
}

// rawValue returns a copy of a JSON value kept raw (failover, sync,
// history): nil when empty or not JSON (the latter logged).
func (e *Etcd) rawValue(kv *mvccpb.KeyValue, bad func(*mvccpb.KeyValue, error)) json.RawMessage {
	if len(kv.Value) == 0 {
		return nil
	}
	if !json.Valid(kv.Value) {
		bad(kv, fmt.Errorf("the value is not JSON"))
		return nil
	}
	return append(json.RawMessage(nil), kv.Value...)
}

// warnGarbled logs a value that does not parse, once per key and mod
// revision.
func (e *Etcd) warnGarbled(kv *mvccpb.KeyValue, err error) {
	k := string(kv.Key)
	e.mu.Lock()
	seen, ok := e.warned[k]
	e.warned[k] = kv.ModRevision
	e.mu.Unlock()
	if ok && seen == kv.ModRevision {
		return
	}
	e.log.Warn("ignoring an etcd key whose value does not parse",
		"key", k, "mod_revision", kv.ModRevision, "error", err)
}
