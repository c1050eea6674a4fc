package restapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
	"github.com/pgwarden/pgwarden/status"
)

// The fixtures reproduce the three-node cluster captured from Patroni
// 4.1.4 in /work/shared/patroni-samples/patroni-4.1.4 (etcd-keys.txt and
// the node*-GET-patroni.json answers), so that our documents can be
// compared with Patroni's field by field.

// t0 is the fixed "now" of every test.
var t0 = time.Date(2026, 11, 29, 5, 21, 0, 0, time.UTC)

const (
	sampleLSN   = 67108944 // 0/4000050
	sampleSysID = "7713459073105036598"
	sampleTTL   = 20 * time.Second
)

func i64(v int64) *int64 { return &v }

// sampleCluster is the DCS snapshot of etcd-keys.txt (node0 leads).
func sampleCluster() *dcs.Cluster {
	replica := func(name, pgPort, apiPort string) dcs.Member {
		return dcs.Member{
			Name: name, ConnURL: "postgres://127.0.0.1:" + pgPort + "/postgres",
			APIURL: "http://127.0.0.1:" + apiPort + "/patroni",
			State:  "running", Role: "replica", Version: "4.1.4", XLogLocation: sampleLSN,
			ReplayLSN: i64(sampleLSN), ReceiveLSN: i64(sampleLSN), ReplicationState: "streaming", Timeline: 1,
		}
	}
	return &dcs.Cluster{
		Initialized: true,
		SystemID:    sampleSysID,
		Leader:      &dcs.Leader{Name: "node0", Lease: 1, ModRevision: 10},
		Members: []dcs.Member{
			{
				Name: "node0", ConnURL: "postgres://127.0.0.1:5441/postgres", APIURL: "http://127.0.0.1:8011/patroni",
				State: "running", Role: "primary", Version: "4.1.4", XLogLocation: sampleLSN, Timeline: 1,
			},
			replica("node1", "5442", "8012"),
			replica("node2", "5443", "8013"),
		},
		Status: &dcs.Status{Optime: sampleLSN, Slots: map[string]int64{"node1": sampleLSN, "node2": sampleLSN}},
	}
}

// primaryNode is node0 as it publishes itself: leader, fresh, running.
func primaryNode() *status.Node {
	return &status.Node{
		Name: "node0", Scope: "pbench", Version: "4.1.4",
		State: "running", Role: "primary",
		PG: postgres.State{
			Running: true, Accepting: true, Timeline: 1, WALPosition: sampleLSN,
			SystemID: sampleSysID, ServerVersion: 150018,
			StartTime: time.Date(2026, 11, 29, 5, 20, 42, 796341000, time.UTC),
			Replication: []postgres.Replica{
				{Usename: "replicator", ApplicationName: "node1", ClientAddr: "127.0.0.1", State: "streaming", SyncState: "sync", SyncPriority: 1},
				{Usename: "replicator", ApplicationName: "node2", ClientAddr: "127.0.0.1", State: "streaming", SyncState: "async", SyncPriority: 0},
			},
		},
		IsLeader:    true,
		LeaderUntil: t0.Add(15 * time.Second),
		Cluster:     sampleCluster(),
		DCSLastSeen: time.Unix(1795929655, 0),
		Published:   t0.Add(-time.Second),
		TTL:         sampleTTL,
		MaximumLag:  1 << 20,
	}
}

// replicaNode is node2 as it publishes itself: a streaming replica.
func replicaNode() *status.Node {
	return &status.Node{
		Name: "node2", Scope: "pbench", Version: "4.1.4",
		State: "running", Role: "replica",
		PG: postgres.State{
			Running: true, Accepting: true, InRecovery: true, Timeline: 1,
			WALPosition: sampleLSN, ReceivedLSN: sampleLSN, ReplayedLSN: sampleLSN,
			ReplayedTime: time.Date(2026, 11, 29, 5, 20, 51, 284215000, time.UTC),
			Streaming:    true, UpstreamHost: "127.0.0.1", UpstreamPort: 5441,
			SystemID: sampleSysID, ServerVersion: 150018,
			StartTime: time.Date(2026, 11, 29, 5, 20, 48, 177984000, time.UTC),
		},
		Cluster:     sampleCluster(),
		DCSLastSeen: time.Unix(1795929656, 0),
		Published:   t0.Add(-time.Second),
		TTL:         sampleTTL,
		MaximumLag:  1 << 20,
	}
}

// Variations.

func expiredLeaderNode() *status.Node {
	n := primaryNode()
	n.LeaderUntil = t0.Add(-time.Millisecond)
	return n
}

func stalePrimaryNode() *status.Node {
	n := primaryNode()
	n.Published = t0.Add(-sampleTTL - time.Second) // LeaderUntil is still ahead
	return n
}

// laggingReplicaNode is 2 MiB behind the leader's last optime.
func laggingReplicaNode() *status.Node {
	n := replicaNode()
	n.Cluster.Status.Optime = sampleLSN + 2<<20
	return n
}

func noLoadBalanceReplicaNode() *status.Node {
	n := replicaNode()
	n.Tags = config.Tags{NoLoadBalance: true, Raw: map[string]any{"noloadbalance": true}}
	return n
}

func taggedReplicaNode() *status.Node {
	n := replicaNode()
	n.Tags = config.Tags{Raw: map[string]any{"datacenter": "dc1", "nofailover": false, "weight": 2}}
	return n
}

func staleReplicaNode() *status.Node {
	n := replicaNode()
	n.Published = t0.Add(-sampleTTL - time.Second) // within 2*ttl: still live
	return n
}

func deadLoopReplicaNode() *status.Node {
	n := replicaNode()
	n.Published = t0.Add(-2*sampleTTL - time.Second)
	return n
}

func pausedDeadLoopNode() *status.Node {
	n := deadLoopReplicaNode()
	n.Paused = true
	return n
}

func stoppedNode() *status.Node {
	n := replicaNode()
	n.State = "stopped"
	n.PG = postgres.State{SystemID: sampleSysID}
	return n
}

// unreachableNode believes PostgreSQL runs but could not query it.
func unreachableNode() *status.Node {
	n := replicaNode()
	n.PG.Accepting = false
	return n
}

func noClusterReplicaNode() *status.Node {
	n := replicaNode()
	n.Cluster = nil
	return n
}

func nilNode() *status.Node { return nil }

// newTestServer serves n (nil: nothing published) at the fixed clock t0.
func newTestServer(t testing.TB, n *status.Node, auth *config.BasicAuth) *Server {
	t.Helper()
	b := new(status.Board)
	if n != nil {
		b.Publish(n)
	}
	return New(Options{Board: b, Auth: auth, Now: func() time.Time { return t0 }})
}

// do runs one request through the handler.
func do(s *Server, method, target string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func isJSON(h http.Header) bool { return h.Get("Content-Type") == "application/json" }

func isPlain(h http.Header) bool { return strings.HasPrefix(h.Get("Content-Type"), "text/plain") }
