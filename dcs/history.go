package dcs

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HistoryEntry is one line of the history key, Patroni's
// [timeline, lsn, reason, time, new_leader]: timeline Timeline ended at
// LSN, and NewLeader was promoted onto the next one at Time. Entries
// written by old Patroni versions have only the first three fields.
type HistoryEntry struct {
	Timeline  int
	LSN       int64
	Reason    string
	Time      string // Python isoformat, "" when unknown
	NewLeader string // "" when unknown
}

// MarshalJSON writes the entry as a JSON array.
func (h HistoryEntry) MarshalJSON() ([]byte, error) {
	a := []any{h.Timeline, h.LSN, h.Reason}
	if h.Time != "" || h.NewLeader != "" {
		a = append(a, h.Time)
	}
	if h.NewLeader != "" {
		a = append(a, h.NewLeader)
	}
	return compactJSON(a)
}

// ParseHistory reads the history key. Entries that are not arrays of the
// expected shape are an error.
func ParseHistory(data []byte) ([]HistoryEntry, error) {
	var rows [][]any
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("history key: %w", err)
	}
	out := make([]HistoryEntry, 0, len(rows))
	for i, r := range rows {
		if len(r) < 2 {
			return nil, fmt.Errorf("history key: entry %d has %d fields, want at least 2", i, len(r))
		}
		tl, ok1 := r[0].(float64)
		lsn, ok2 := r[1].(float64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("history key: entry %d: timeline and lsn must be numbers", i)
		}
		h := HistoryEntry{Timeline: int(tl), LSN: int64(lsn)}
		if len(r) > 2 {
			h.Reason, _ = r[2].(string)
		}
		if len(r) > 3 {
			h.Time, _ = r[3].(string)
		}
		if len(r) > 4 {
			h.NewLeader, _ = r[4].(string)
		}
		out = append(out, h)
	}
	return out, nil
}

// HistoryJSON encodes entries as the history key's value.
func HistoryJSON(entries []HistoryEntry) ([]byte, error) {
	if entries == nil {
		entries = []HistoryEntry{}
	}
	return compactJSON(entries)
}

// SetHistory writes the history key if its mod revision is still
// prevRevision (0: the key must not exist), and returns whether it wrote.
func (e *Etcd) SetHistory(ctx context.Context, entries []HistoryEntry, prevRevision int64) (bool, error) {
	data, err := HistoryJSON(entries)
	if err != nil {
		return false, err
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyHistory)
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", prevRevision)
	if prevRevision == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	}
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, string(data))).Commit()
	if err != nil {
		return false, fmt.Errorf("writing the history key to etcd: %w", err)
	}
	return resp.Succeeded, nil
}
