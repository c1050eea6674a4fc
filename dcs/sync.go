package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SyncState is the sync key: which standbys the leader's PostgreSQL
// treats as synchronous, in Patroni's JSON
// {"leader":"node1","quorum":0,"sync_standby":"node2,node3"}
// (sync_standby is null when there is none; Patroni 3 has no quorum).
type SyncState struct {
	Leader   string
	Standbys []string // sorted

	ModRevision int64 // etcd metadata, not part of the JSON
}

// Names reports whether member is one of the synchronous standbys.
func (s *SyncState) Names(member string) bool {
	if s == nil {
		return false
	}
	for _, n := range s.Standbys {
		if n == member {
			return true
		}
	}
	return false
}

// MarshalJSON writes Patroni 4's form, keys in its order.
func (s SyncState) MarshalJSON() ([]byte, error) {
	var standby any
	if len(s.Standbys) > 0 {
		names := append([]string(nil), s.Standbys...)
		sort.Strings(names)
		standby = strings.Join(names, ",")
	}
	lb, _ := compactJSON(s.Leader)
	sb, _ := compactJSON(standby)
	return []byte(`{"leader":` + string(lb) + `,"quorum":0,"sync_standby":` + string(sb) + `}`), nil
}

// ParseSync reads a sync key value.
func ParseSync(data []byte) (SyncState, error) {
	var raw struct {
		Leader      *string `json:"leader"`
		SyncStandby *string `json:"sync_standby"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return SyncState{}, fmt.Errorf("sync key: %w", err)
	}
	var s SyncState
	if raw.Leader != nil {
		s.Leader = *raw.Leader
	}
	if raw.SyncStandby != nil {
		for _, n := range strings.Split(*raw.SyncStandby, ",") {
			if n = strings.TrimSpace(n); n != "" {
				s.Standbys = append(s.Standbys, n)
			}
		}
		sort.Strings(s.Standbys)
	}
	return s, nil
}

// SetSync writes the sync key if its mod revision is still prevRevision
// (0: the key must not exist), and returns whether it wrote.
func (e *Etcd) SetSync(ctx context.Context, s SyncState, prevRevision int64) (bool, error) {
	data, _ := s.MarshalJSON()
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keySync)
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", prevRevision)
	if prevRevision == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	}
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, string(data))).Commit()
	if err != nil {
		return false, fmt.Errorf("writing the sync key to etcd: %w", err)
	}
	return resp.Succeeded, nil
}
