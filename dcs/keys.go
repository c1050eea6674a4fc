package dcs

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// errNoName is returned by calls that need this member's name.
var errNoName = errors.New("this etcd handle has no member name")

// TouchMember puts members/<name> with the member's JSON, bound to the
// lease. m.Name, when set, must be this member's name.
func (e *Etcd) TouchMember(ctx context.Context, m Member) error {
	if e.name == "" {
		return errNoName
	}
	if m.Name != "" && m.Name != e.name {
		return fmt.Errorf("writing member %s from the handle of member %s is not allowed", m.Name, e.name)
	}
	m.Name = e.name
	lease, err := e.currentLease()
	if err != nil {
		return fmt.Errorf("writing member key %s: %w", e.name, err)
	}
	cli, err := e.client()
	if err != nil {
		return err
	}
	data, err := MemberJSON(m)
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, e.key(keyMembers+e.name), string(data), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("writing member key %s to etcd: %w", e.name, err)
	}
	return nil
}

// AcquireLeader creates the leader key with this member's name, bound to
// the lease, in one transaction that succeeds only if no leader key exists.
// It returns whether this call took the key. A key that already holds our
// name under an older lease is not taken: see ReclaimLeader.
func (e *Etcd) AcquireLeader(ctx context.Context) (bool, error) {
	if e.name == "" {
		return false, errNoName
	}
	lease, err := e.currentLease()
	if err != nil {
		return false, fmt.Errorf("taking the leader key: %w", err)
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyLeader)
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, e.name, clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("taking the leader key in etcd: %w", err)
	}
	return resp.Succeeded, nil
}

// ReclaimLeader rebinds the leader key to the current lease if it holds
// this member's name, in one transaction, and returns whether it did. It is
// for a leader key left under an earlier lease of ours (after SetTTL forgot
// the lease, or after a daemon restart while PostgreSQL kept running); it
// never touches another member's key and never creates one.
func (e *Etcd) ReclaimLeader(ctx context.Context) (bool, error) {
	if e.name == "" {
		return false, errNoName
	}
	lease, err := e.currentLease()
	if err != nil {
		return false, fmt.Errorf("reclaiming the leader key: %w", err)
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyLeader)
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), "=", e.name)).
		Then(clientv3.OpPut(k, e.name, clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("rebinding the leader key in etcd: %w", err)
	}
	return resp.Succeeded, nil
}

// nestedSucceeded reports whether the transaction in the first Else
// operation of resp succeeded.
func nestedSucceeded(resp *clientv3.TxnResponse) bool {
	if len(resp.Responses) == 0 {
		return false
	}
	t := resp.Responses[0].GetResponseTxn()
	return t != nil && t.Succeeded
}

// HoldsLeader reports whether the leader key holds this member's name and
// is bound to this member's current lease. Without a lease it is false.
func (e *Etcd) HoldsLeader(ctx context.Context) (bool, error) {
	if e.name == "" {
		return false, errNoName
	}
	e.mu.Lock()
	lease := e.lease
	e.mu.Unlock()
	if lease == 0 {
		return false, nil
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyLeader)
	resp, err := cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(k), "=", e.name),
		clientv3.Compare(clientv3.LeaseValue(k), "=", lease),
	).Commit()
	if err != nil {
		return false, fmt.Errorf("checking the leader key in etcd: %w", err)
	}
	return resp.Succeeded, nil
}

// DeleteLeader deletes the leader key if it holds this member's name, and
// returns whether it did. Another member's key is never deleted.
func (e *Etcd) DeleteLeader(ctx context.Context) (bool, error) {
	if e.name == "" {
		return false, errNoName
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyLeader)
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), "=", e.name)).
		Then(clientv3.OpDelete(k)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("deleting the leader key in etcd: %w", err)
	}
	return resp.Succeeded, nil
}

// Initialize writes the initialize key (the system identifier, a plain
// decimal string, no lease). With create it only creates the key, and
// returns whether this call created it: the winner of the race bootstraps
// the cluster, usually writing "" first and the real sysid after initdb.
// Without create it sets the value only if the key exists and holds "" or
// sysid already, and returns whether it did.
func (e *Etcd) Initialize(ctx context.Context, sysid string, create bool) (bool, error) {
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyInitialize)
	put := clientv3.OpPut(k, sysid)
	var resp *clientv3.TxnResponse
	if create {
		resp, err = cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(put).
			Commit()
	} else {
		// Compares are and-ed, so "" or sysid takes a nested transaction.
		// Value compares fail when the key does not exist.
		same := clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", sysid)},
			[]clientv3.Op{put}, nil)
		resp, err = cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(k), "=", "")).
			Then(put).
			Else(same).
			Commit()
	}
	if err != nil {
		return false, fmt.Errorf("writing the initialize key to etcd: %w", err)
	}
	if resp.Succeeded {
		return true, nil
	}
	if create {
		return false, nil
	}
	return nestedSucceeded(resp), nil
}

// CancelInitialization deletes the initialize key if its value is "" (a
// bootstrap that failed before it wrote the system identifier).
func (e *Etcd) CancelInitialization(ctx context.Context) error {
	cli, err := e.client()
	if err != nil {
		return err
	}
	k := e.key(keyInitialize)
	_, err = cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), "=", "")).
		Then(clientv3.OpDelete(k)).
		Commit()
	if err != nil {
		return fmt.Errorf("deleting the initialize key in etcd: %w", err)
	}
	return nil
}

// SetConfig writes the config key (compact JSON, object keys sorted) if its
// mod revision is still prevRevision; prevRevision 0 means the key must not
// exist. It returns whether it wrote.
func (e *Etcd) SetConfig(ctx context.Context, cfg map[string]any, prevRevision int64) (bool, error) {
	if cfg == nil {
		cfg = map[string]any{}
	}
	data, err := compactJSON(cfg)
	if err != nil {
		return false, fmt.Errorf("encoding the dynamic configuration as JSON: %w", err)
	}
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	k := e.key(keyConfig)
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", prevRevision)
	if prevRevision == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	}
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, string(data))).Commit()
	if err != nil {
		return false, fmt.Errorf("writing the config key to etcd: %w", err)
	}
	return resp.Succeeded, nil
}

// WriteStatus puts the status key ({"optime":N,"slots":{...}}), without a
// lease, as Patroni does.
func (e *Etcd) WriteStatus(ctx context.Context, s Status) error {
	data, err := s.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding the status key as JSON: %w", err)
	}
	cli, err := e.client()
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, e.key(keyStatus), string(data)); err != nil {
		return fmt.Errorf("writing the status key to etcd: %w", err)
	}
	return nil
}
