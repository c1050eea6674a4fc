package dcs

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Backoff between attempts to set up the watch again.
const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 2 * time.Second
)

// Watch watches every key of the cluster and returns a channel that
// receives a signal (without blocking the watcher; the channel holds at
// most one) whenever a key is put or deleted, lease expiries included. The
// watch requires an etcd leader, so a partitioned etcd member ends it; it is
// set up again, after a short backoff, from the next revision not yet seen,
// until ctx is done, and then the channel is closed.
//
// A signal is also sent as soon as the watch is first set up (so a reader
// that read before calling Watch reads again and misses nothing), and when
// a compaction made revisions unavailable so that it starts over from now.
// Spurious signals are possible; a reader simply reads again.
func (e *Etcd) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go e.watchLoop(ctx, ch, e.prefix, e.wakesLoop)
	return ch
}

// WatchScope is Watch over every key under the scope (all Citus groups),
// signalling on every change, member keys included: the Citus coordinator
// follows every group's leader and streaming standbys through it.
func (e *Etcd) WatchScope(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go e.watchLoop(ctx, ch, e.scopePrefix, func(string) bool { return true })
	return ch
}

func (e *Etcd) watchLoop(ctx context.Context, ch chan<- struct{}, prefix string, wakes func(string) bool) {
	defer close(ch)
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	var next int64 // next revision to watch from; 0: from now
	backoff := watchBackoffMin
	for ctx.Err() == nil {
		healthy := e.watchOnce(ctx, &next, signal, prefix, wakes)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			backoff = watchBackoffMin
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, watchBackoffMax)
	}
}

// watchOnce runs one watch until it ends; it reports whether the watch was
// set up at all (so the backoff starts over).
func (e *Etcd) watchOnce(ctx context.Context, next *int64, signal func(), prefix string, wakes func(string) bool) bool {
	cli, err := e.client()
	if err != nil {
		e.log.Debug("cannot watch etcd yet", "error", err)
		return false
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
	if *next > 0 {
		opts = append(opts, clientv3.WithRev(*next))
	}
	healthy := false
	for resp := range cli.Watch(wctx, prefix, opts...) {
		if resp.CompactRevision != 0 {
			// Events between next and the compaction are gone: start
			// over from now, and let the reader look.
			e.log.Info("etcd watch fell behind a compaction; watching from now", "compact_revision", resp.CompactRevision)
			*next = 0
			signal()
			return healthy
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				e.log.Debug("etcd watch ended", "error", err)
			}
			return healthy
		}
		healthy = true
		if resp.Created && *next == 0 {
			// Watching from now: everything after the revision at which
			// the watch was made. What changed before is unknown, so
			// tell the reader to look once.
			*next = resp.Header.Revision + 1
			signal()
		}
		// A watch catching up may get old events with a newer header
		// revision: only the events say how far it got.
		wake := false
		for _, ev := range resp.Events {
			if ev.Kv != nil && ev.Kv.ModRevision >= *next {
				*next = ev.Kv.ModRevision + 1
			}
			if ev.Kv != nil && wakes(string(ev.Kv.Key)) {
				wake = true
			}
		}
		if wake {
			signal()
		}
	}
	return healthy
}

// wakesLoop tells whether a change of key should wake the HA loop at once.
// Member keys and the status key are rewritten by every member every
// cycle; waking on them would make every loop spin once per write.
func (e *Etcd) wakesLoop(key string) bool {
	rel := strings.TrimPrefix(key, e.prefix)
	return !strings.HasPrefix(rel, "members/") && rel != "status"
}
