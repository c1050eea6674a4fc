package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
	c := &Cluster{Revision: resp.Header.Revision}
	garbled := make(map[string]int64)
	bad := func(kv *mvccpb.KeyValue, err error) {
		garbled[string(kv.Key)] = kv.ModRevision
		e.warnGarbled(kv, err)
	}
	for _, kv := range resp.Kvs {
		rel, ok := strings.CutPrefix(string(kv.Key), e.prefix)
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

	// Forget warnings about keys that are no longer garbled, so that the
	// map stays as small as the cluster and a key that breaks again, at a
	// new revision, is logged again.
	e.mu.Lock()
	for k, rev := range e.warned {
		if garbled[k] != rev {
			delete(e.warned, k)
		}
	}
	e.mu.Unlock()
	return c, nil
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
