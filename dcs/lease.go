package dcs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// LeaseID returns the current lease id, 0 when there is none.
func (e *Etcd) LeaseID() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int64(e.lease)
}

// currentLease returns the lease id or an error saying there is none.
func (e *Etcd) currentLease() (clientv3.LeaseID, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lease == 0 {
		return 0, errors.New("this member holds no etcd lease yet")
	}
	return e.lease, nil
}

// SetTTL sets the TTL of the next lease (rounded up to whole seconds, at
// least one). When it differs from the current one, the current lease is
// forgotten, not revoked: the next RefreshLease grants a new lease, the old
// one expires on its own (revoking it would delete the leader key at once),
// and the caller re-puts its keys on the new lease: TouchMember, and
// ReclaimLeader for a leader key that still names this member.
// It waits for a RefreshLease under way to finish.
func (e *Etcd) SetTTL(ttl time.Duration) {
	s := ttlSeconds(ttl)
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if s == e.ttl {
		return
	}
	e.ttl = s
	e.lease = 0
}

// RefreshLease keeps the lease alive with one keep-alive request. When
// there is no lease yet, or etcd no longer knows it (it expired), it grants
// a new one and returns true: the keys bound to the old lease are gone and
// the caller must put them again. Network errors and timeouts are returned.
func (e *Etcd) RefreshLease(ctx context.Context) (bool, error) {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	e.mu.Lock()
	id, ttl := e.lease, e.ttl
	e.mu.Unlock()

	if id != 0 {
		_, err := cli.KeepAliveOnce(ctx, id)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return false, fmt.Errorf("renewing lease %#x on etcd: %w", int64(id), err)
		}
		e.log.Info("etcd lease expired; granting a new one", "lease", fmt.Sprintf("%#x", int64(id)))
	}

	resp, err := cli.Grant(ctx, ttl)
	if err != nil {
		return false, fmt.Errorf("granting a %d s lease on etcd: %w", ttl, err)
	}
	e.mu.Lock()
	e.lease = resp.ID
	e.mu.Unlock()
	return true, nil
}
