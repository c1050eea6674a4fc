package dcs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Failover is the failover key: a switchover (Leader set) or failover
// request for the leader's loop, in Patroni's JSON:
// {"leader":"node0","member":"node2","scheduled_at":"2026-11-29T06:19:09+00:00"}.
// Patroni clears the key by writing {}; an empty request parses to the
// zero value.
type Failover struct {
	Leader      string    // the leader to move away from; "" for a failover
	Candidate   string    // "member" in JSON; "" lets the healthiest member win
	ScheduledAt time.Time // zero: at once

	ModRevision int64 // etcd metadata, not part of the JSON
}

// Empty reports whether the request asks for nothing.
func (f *Failover) Empty() bool {
	return f == nil || (f.Leader == "" && f.Candidate == "" && f.ScheduledAt.IsZero())
}

// PyTimeLayout is how Python's datetime.isoformat() writes an aware time
// with microseconds, which Patroni uses in the failover and history keys.
const PyTimeLayout = "2006-01-02T15:04:05.999999-07:00"

// FormatPyTime writes t like Python's isoformat (seconds resolution when
// there are no fractional seconds, as Python does).
func FormatPyTime(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05-07:00")
	}
	return t.Format("2006-01-02T15:04:05.000000-07:00")
}

// ParseTime reads an ISO-8601 time with a zone, in the forms Patroni and
// patronictl write ("2026-11-29T06:19:09+00:00", "2026-11-29 06:19:09.5Z",
// "2026-11-29T06:19+00:00"). A time without a zone is an error, as in
// Patroni.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02T15:04Z07:00",
		"2006-01-02 15:04Z07:00",
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02 15:04:05.999999999Z0700",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04"} {
		if _, err := time.Parse(layout, s); err == nil {
			return time.Time{}, fmt.Errorf("time %q has no time zone; add one, e.g. %s+00:00", s, s)
		}
	}
	return time.Time{}, fmt.Errorf("time %q is not ISO 8601 (e.g. 2026-11-29T06:19:09+00:00)", s)
}

// MarshalJSON writes only the fields that are set, as Patroni does.
func (f Failover) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	field := func(k, v string) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := compactJSON(v)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	if f.Leader != "" {
		field("leader", f.Leader)
	}
	if f.Candidate != "" {
		field("member", f.Candidate)
	}
	if !f.ScheduledAt.IsZero() {
		field("scheduled_at", FormatPyTime(f.ScheduledAt))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// ParseFailover reads a failover key value. Patroni also accepts
// "candidate" for "member" in requests; so do we.
func ParseFailover(data []byte) (Failover, error) {
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return Failover{}, fmt.Errorf("failover key: %w", err)
	}
	var f Failover
	str := func(k string) (string, error) {
		v, ok := raw[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("failover key: %q is %T, want a string", k, v)
		}
		return s, nil
	}
	var err error
	if f.Leader, err = str("leader"); err != nil {
		return Failover{}, err
	}
	if f.Candidate, err = str("member"); err != nil {
		return Failover{}, err
	}
	if f.Candidate == "" {
		if f.Candidate, err = str("candidate"); err != nil {
			return Failover{}, err
		}
	}
	at, err := str("scheduled_at")
	if err != nil {
		return Failover{}, err
	}
	if at != "" {
		if f.ScheduledAt, err = ParseTime(at); err != nil {
			return Failover{}, fmt.Errorf("failover key: scheduled_at: %w", err)
		}
	}
	return f, nil
}

// SetFailover writes the failover key. A nil or empty request writes {},
// which is how Patroni clears it. With prevRevision > 0 it writes only if
// the key's mod revision is still prevRevision; 0 writes unconditionally.
func (e *Etcd) SetFailover(ctx context.Context, f *Failover, prevRevision int64) (bool, error) {
	val := []byte("{}")
	if !f.Empty() {
		val, _ = f.MarshalJSON()
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyFailover)
	txn := cli.Txn(ctx)
	if prevRevision > 0 {
		txn = txn.If(clientv3.Compare(clientv3.ModRevision(k), "=", prevRevision))
	}
	resp, err := txn.Then(clientv3.OpPut(k, string(val))).Commit()
	if err != nil {
		return false, fmt.Errorf("writing the failover key to etcd: %w", err)
	}
	return resp.Succeeded, nil
}

// ReleaseLeader gives up the leader key for a planned switchover: in one
// transaction it records optime (the LSN the successor must have received,
// normally the shutdown checkpoint) in the status key, writes handover to
// the failover key when it is not nil (so that the request names the
// member that handed over), and deletes the leader key, if the key still
// holds this member's name.
func (e *Etcd) ReleaseLeader(ctx context.Context, optime int64, handover *Failover) (bool, error) {
	if e.name == "" {
		return false, errNoName
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	st, err := Status{Optime: optime}.MarshalJSON()
	if err != nil {
		return false, err
	}
	k := e.key(keyLeader)
	ops := []clientv3.Op{clientv3.OpPut(e.key(keyStatus), string(st))}
	if !handover.Empty() {
		f, _ := handover.MarshalJSON()
		ops = append(ops, clientv3.OpPut(e.key(keyFailover), string(f)))
	}
	ops = append(ops, clientv3.OpDelete(k))
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), "=", e.name)).
		Then(ops...).
		Commit()
	if err != nil {
		return false, fmt.Errorf("releasing the leader key in etcd: %w", err)
	}
	return resp.Succeeded, nil
}

// DeleteCluster removes every key of the cluster (what `remove` does).
// It returns how many keys it deleted.
func (e *Etcd) DeleteCluster(ctx context.Context) (int64, error) {
	cli, err := e.client()
	if err != nil {
		return 0, err
	}
	resp, err := cli.Delete(ctx, e.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("deleting %s in etcd: %w", e.prefix, err)
	}
	return resp.Deleted, nil
}
