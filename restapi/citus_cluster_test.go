package restapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

// citusGroups is a Citus cluster as SnapshotGroups reads it: the sample
// cluster as the coordinator group 0, and two workers whose leaders,
// optimes and synchronous standbys differ from the coordinator's.
func citusGroups() map[int]*dcs.Cluster {
	worker := func(prefix string, leaderLSN int64, replicaLSN int64, syncMode bool) *dcs.Cluster {
		c := &dcs.Cluster{
			Initialized: true,
			SystemID:    "7713504416374325248",
			Leader:      &dcs.Leader{Name: prefix + "b", Lease: 3},
			Members: []dcs.Member{
				{
					Name: prefix + "b", ConnURL: "postgres://10.0.1.12:5432/citus", APIURL: "http://10.0.1.12:8008/patroni",
					State: "running", Role: "primary", Version: "4.1.4", XLogLocation: leaderLSN, Timeline: 2,
				},
				{
					Name: prefix + "a", ConnURL: "postgres://10.0.1.11:5432/citus", APIURL: "http://10.0.1.11:8008/patroni",
					State: "running", Role: "replica", Version: "4.1.4", XLogLocation: replicaLSN,
					ReceiveLSN: i64(replicaLSN), ReplayLSN: i64(replicaLSN), ReplicationState: "streaming", Timeline: 2,
				},
			},
			Status: &dcs.Status{Optime: leaderLSN},
		}
		if syncMode {
			c.Config = map[string]any{"synchronous_mode": true}
			c.SyncState = &dcs.SyncState{Leader: prefix + "b", Standbys: []string{prefix + "a"}}
		}
		return c
	}
	coordinator := sampleCluster()
	return map[int]*dcs.Cluster{
		2: worker("w2", 3<<20, 3<<20, true),
		0: coordinator,
		1: worker("w1", 5<<20, 1<<20, false),
	}
}

// clusterDoc is the part of /cluster the test checks field by field.
type clusterDoc struct {
	Members []struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		State string `json:"state"`
		Lag   any    `json:"lag"`
		Group *int   `json:"group"`
	} `json:"members"`
	Pause               bool           `json:"pause"`
	ScheduledSwitchover map[string]any `json:"scheduled_switchover"`
	Scope               string         `json:"scope"`
}

func TestCitusClusterDocument(t *testing.T) {
	// The member is w1b, the leader of worker group 1: paused, with a
	// switchover scheduled in its own group.
	own := func() *status.Node {
		n := primaryNode()
		n.Name, n.Scope, n.Paused = "w1b", "demo", true
		n.Cluster = citusGroups()[1]
		n.Cluster.FailoverRequest = &dcs.Failover{Leader: "w1b", Candidate: "w1a", ScheduledAt: time.Date(2026, 11, 29, 6, 19, 9, 0, time.UTC)}
		return n
	}
	type member struct {
		name, role, state string
		lag               any
		group             int
	}
	for _, tc := range []struct {
		name    string
		groups  func(ctx context.Context) (map[int]*dcs.Cluster, int64, error)
		code    int
		members []member
		golden  string
	}{
		{
			name:   "every group",
			groups: func(context.Context) (map[int]*dcs.Cluster, int64, error) { return citusGroups(), 42, nil },
			code:   http.StatusOK,
			members: []member{
				{"node0", "leader", "running", nil, 0},
				{"node1", "replica", "streaming", 0.0, 0},
				{"node2", "replica", "streaming", 0.0, 0},
				{"w1a", "replica", "streaming", float64(4 << 20), 1},
				{"w1b", "leader", "running", nil, 1},
				{"w2a", "sync_standby", "streaming", 0.0, 2},
				{"w2b", "leader", "running", nil, 2},
			},
			golden: "cluster_citus.golden",
		},
		{
			name: "a group without members",
			groups: func(context.Context) (map[int]*dcs.Cluster, int64, error) {
				g := citusGroups()
				g[0] = &dcs.Cluster{}
				delete(g, 2)
				return g, 42, nil
			},
			code: http.StatusOK,
			members: []member{
				{"w1a", "replica", "streaming", float64(4 << 20), 1},
				{"w1b", "leader", "running", nil, 1},
			},
		},
		{
			name: "etcd unreachable",
			groups: func(context.Context) (map[int]*dcs.Cluster, int64, error) {
				return nil, 0, errors.New("context deadline exceeded")
			},
			code: http.StatusServiceUnavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := new(status.Board)
			b.Publish(own())
			var calls atomic.Int32
			s := New(Options{Board: b, Now: func() time.Time { return t0 }, CitusGroups: func(ctx context.Context) (map[int]*dcs.Cluster, int64, error) {
				calls.Add(1)
				if _, ok := ctx.Deadline(); !ok {
					t.Error("the read has no deadline")
				}
				return tc.groups(ctx)
			}})
			rec := do(s, http.MethodGet, "/cluster")
			if rec.Code != tc.code {
				t.Fatalf("GET /cluster = %d %q", rec.Code, rec.Body)
			}
			if tc.code != http.StatusOK {
				if !isPlain(rec.Header()) {
					t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
				}
				return
			}
			if tc.golden != "" {
				golden(t, tc.golden, rec.Body.Bytes())
			}
			var doc clusterDoc
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			var got []member
			for _, m := range doc.Members {
				if m.Group == nil {
					t.Errorf("member %s has no group", m.Name)
					continue
				}
				got = append(got, member{m.Name, m.Role, m.State, m.Lag, *m.Group})
			}
			if !reflect.DeepEqual(got, tc.members) {
				t.Errorf("members\n got %v\nwant %v", got, tc.members)
			}
			// The other fields are the member's own group's.
			if !doc.Pause || doc.Scope != "demo" || doc.ScheduledSwitchover["to"] != "w1a" {
				t.Errorf("pause %v, scope %q, scheduled_switchover %v", doc.Pause, doc.Scope, doc.ScheduledSwitchover)
			}
			// HEAD and OPTIONS do not read etcd.
			before := calls.Load()
			for _, m := range []string{http.MethodHead, http.MethodOptions} {
				if r := do(s, m, "/cluster"); r.Code != http.StatusOK || r.Body.Len() != 0 {
					t.Errorf("%s /cluster = %d %q", m, r.Code, r.Body)
				}
			}
			if calls.Load() != before {
				t.Error("HEAD or OPTIONS read the groups")
			}
		})
	}
}

// Without CitusGroups the members have no group (the document is otherwise
// checked against Patroni's by TestClusterMatchesPatroniSample).
func TestClusterDocumentWithoutCitus(t *testing.T) {
	got := do(newTestServer(t, primaryNode(), nil), http.MethodGet, "/cluster").Body.String()
	var doc map[string]any
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatal(err)
	}
	for _, m := range doc["members"].([]any) {
		if _, ok := m.(map[string]any)["group"]; ok {
			t.Errorf("member with a group: %v", m)
		}
	}
}
