package restapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/status"
)

func TestHealthEndpoints(t *testing.T) {
	const ok, down = http.StatusOK, http.StatusServiceUnavailable
	type check struct {
		target string
		want   int
	}
	cases := []struct {
		name   string
		node   func() *status.Node
		checks []check
	}{
		{
			// Matches patroni-4.1.4/node0-health-codes.txt except sync,
			// since pgwarden has no synchronous mode yet.
			name: "primary holding leader",
			node: primaryNode,
			checks: []check{
				{"/", ok}, {"/primary", ok}, {"/master", ok}, {"/leader", ok}, {"/read-write", ok},
				{"/standby-leader", down}, {"/replica", down}, {"/read-only", ok}, {"/health", ok},
				{"/liveness", ok}, {"/readiness", ok}, {"/sync", down}, {"/synchronous", down},
				{"/async", down}, {"/asynchronous", down}, {"/read-only-sync", ok},
				{"/read-only-quorum", ok}, {"/quorum", down},
				// leader endpoints ignore tag filters, lag concerns replicas
				{"/primary?tag_datacenter=dc9", ok}, {"/read-only?lag=0", ok},
				{"/replica?lag=1MB", down},
			},
		},
		{
			name: "primary whose leader lease passed",
			node: expiredLeaderNode,
			checks: []check{
				{"/", down}, {"/primary", down}, {"/master", down}, {"/leader", down},
				{"/read-only", down}, {"/replica", down}, {"/health", ok}, {"/liveness", ok},
				{"/readiness", down}, {"/read-only-sync", down},
			},
		},
		{
			name: "primary whose snapshot is older than ttl",
			node: stalePrimaryNode,
			checks: []check{
				{"/", down}, {"/primary", down}, {"/leader", down}, {"/read-only", down},
				{"/health", ok}, {"/liveness", down}, {"/readiness", down},
			},
		},
		{
			// Matches patroni-4.1.4/node2-health-codes.txt.
			name: "replica streaming",
			node: replicaNode,
			checks: []check{
				{"/", down}, {"/primary", down}, {"/leader", down}, {"/replica", ok}, {"/read-only", ok},
				{"/health", ok}, {"/liveness", ok}, {"/readiness", ok}, {"/sync", down}, {"/async", ok},
				{"/read-only-sync", down}, {"/standby_leader", down},
				{"/replica?lag=1MB", ok}, {"/replica?lag=0", ok}, {"/replica?lag=", ok},
				{"/replica?replication_state=streaming", ok},
				{"/replica?replication_state=in%20archive%20recovery", down},
				{"/readiness?mode=write", ok}, {"/readiness?lag=0", ok},
			},
		},
		{
			// As Patroni: a running standby serves reads even while it does
			// not stream (no primary during a failover); ?lag and
			// ?replication_state=streaming narrow that.
			name: "replica not streaming",
			node: func() *status.Node {
				n := replicaNode()
				n.PG.Streaming = false
				return n
			},
			checks: []check{
				{"/replica", ok}, {"/replica?replication_state=streaming", down}, {"/read-only", ok},
				{"/health", ok}, {"/readiness", down},
			},
		},
		{
			name: "replica lagging 2MiB",
			node: laggingReplicaNode,
			checks: []check{
				{"/replica", ok}, {"/replica?lag=1MB", down}, {"/replica?lag=100", down},
				{"/replica?lag=2MB", ok}, {"/replica?lag=2048kB", ok}, {"/replica?lag=2097151", down},
				{"/replica?lag=16MB", ok}, {"/replica?lag=1GB", ok},
				{"/read-only?lag=1MB", down}, {"/read-only?lag=10MB", ok}, {"/read-only", ok},
				{"/async?lag=1MB", down}, {"/async", ok},
				// readiness: maximum_lag_on_failover (1MiB) by default
				{"/readiness", down}, {"/readiness?lag=10MB", ok}, {"/readiness?lag=1MB", down},
				{"/health", ok},
			},
		},
		{
			name: "noloadbalance replica",
			node: noLoadBalanceReplicaNode,
			checks: []check{
				{"/replica", down}, {"/read-only", down}, {"/async", down}, {"/health", ok},
				{"/readiness", ok}, {"/primary", down},
			},
		},
		{
			name: "replica with custom tags",
			node: taggedReplicaNode,
			checks: []check{
				{"/replica?tag_datacenter=dc1", ok}, {"/replica?tag_datacenter=dc2", down},
				{"/replica?tag_nofailover=false", ok}, {"/replica?tag_nofailover=False", down},
				{"/replica?tag_weight=2", ok}, {"/replica?tag_missing=x", down},
				{"/read-only?tag_datacenter=dc2", down}, {"/health?tag_datacenter=dc1", ok},
				{"/replica?tag_datacenter=dc1&lag=1MB", ok},
			},
		},
		{
			name: "replica whose snapshot is older than ttl",
			node: staleReplicaNode,
			checks: []check{
				{"/replica", down}, {"/read-only", down}, {"/async", down},
				{"/health", ok}, {"/liveness", ok}, // replicas get twice ttl
			},
		},
		{
			name:   "replica whose loop is stuck for more than twice ttl",
			node:   deadLoopReplicaNode,
			checks: []check{{"/liveness", down}, {"/replica", down}},
		},
		{
			name:   "paused member whose loop is stuck",
			node:   pausedDeadLoopNode,
			checks: []check{{"/liveness", ok}},
		},
		{
			name: "replica without a DCS snapshot",
			node: noClusterReplicaNode,
			checks: []check{
				{"/replica", ok}, {"/async", down}, {"/readiness", down}, {"/replica?lag=0", ok},
			},
		},
		{
			name: "stopped PostgreSQL",
			node: stoppedNode,
			checks: []check{
				{"/", down}, {"/primary", down}, {"/leader", down}, {"/replica", down},
				{"/read-only", down}, {"/health", down}, {"/liveness", ok}, {"/readiness", down},
				{"/async", down}, {"/sync", down},
			},
		},
		{
			name: "running but not answering queries",
			node: unreachableNode,
			checks: []check{
				{"/replica", down}, {"/health", down}, {"/readiness", down}, {"/liveness", ok},
			},
		},
		{
			name: "nothing published yet",
			node: nilNode,
			checks: []check{
				{"/", down}, {"/primary", down}, {"/master", down}, {"/leader", down}, {"/replica", down},
				{"/read-only", down}, {"/health", down}, {"/liveness", down}, {"/readiness", down},
				{"/sync", down}, {"/async", down}, {"/standby-leader", down},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.node(), nil)
			for _, c := range tc.checks {
				for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
					rec := do(s, method, c.target)
					if rec.Code != c.want {
						t.Errorf("%s %s = %d, want %d (body %q)", method, c.target, rec.Code, c.want, rec.Body)
					}
					statusOnly := method != http.MethodGet ||
						strings.HasPrefix(c.target, "/liveness") || strings.HasPrefix(c.target, "/readiness")
					switch {
					case statusOnly && rec.Body.Len() != 0:
						t.Errorf("%s %s has a body: %q", method, c.target, rec.Body)
					case !statusOnly && !isJSON(rec.Header()):
						t.Errorf("%s %s: Content-Type %q, want application/json", method, c.target, rec.Header().Get("Content-Type"))
					}
				}
			}
		})
	}
}

// GET health checks carry the status document, like Patroni's.
func TestHealthGETBodyIsStatus(t *testing.T) {
	s := newTestServer(t, replicaNode(), nil)
	for _, target := range []string{"/", "/primary", "/replica", "/health"} {
		got := do(s, http.MethodGet, target).Body.String()
		want := do(s, http.MethodGet, "/patroni").Body.String()
		if got != want {
			t.Errorf("GET %s body = %s, want the /patroni document %s", target, got, want)
		}
	}
}

// HAProxy's bare "option httpchk" sends OPTIONS / and reads the status line
// only; GET / is /primary's status code with the status document (Patroni
// maps "/" to "/primary" before deciding).
func TestRootIsPrimary(t *testing.T) {
	cases := []struct {
		name string
		node func() *status.Node
		want int
	}{
		{"primary", primaryNode, http.StatusOK},
		{"replica", replicaNode, http.StatusServiceUnavailable},
		{"expired leader", expiredLeaderNode, http.StatusServiceUnavailable},
		{"nil snapshot", nilNode, http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.node(), nil)
			for _, target := range []string{"/", "/primary"} {
				for _, method := range []string{http.MethodHead, http.MethodOptions} {
					rec := do(s, method, target)
					if rec.Code != tc.want || rec.Body.Len() != 0 {
						t.Errorf("%s %s = %d %q, want %d and no body", method, target, rec.Code, rec.Body, tc.want)
					}
				}
				rec := do(s, http.MethodGet, target)
				if rec.Code != tc.want || !isJSON(rec.Header()) || !strings.HasPrefix(rec.Body.String(), `{"state":`) {
					t.Errorf("GET %s = %d %q, want %d with the status document", target, rec.Code, rec.Body, tc.want)
				}
			}
		})
	}
}

func TestBadLagIs400(t *testing.T) {
	s := newTestServer(t, replicaNode(), nil)
	for _, target := range []string{
		"/replica?lag=abc", "/replica?lag=1XB", "/replica?lag=1mb", "/replica?lag=-1",
		"/read-only?lag=1.5.5MB", "/readiness?lag=10%20parsecs", "/async?lag=99999999999999999999",
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
			rec := do(s, method, target)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("%s %s = %d, want 400", method, target, rec.Code)
			}
			if method == http.MethodGet && (!isPlain(rec.Header()) || !strings.Contains(rec.Body.String(), "bad lag value")) {
				t.Errorf("%s %s: want a plain-text reason, got %q %q", method, target, rec.Header().Get("Content-Type"), rec.Body)
			}
		}
	}
}

func TestParseLag(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "100", want: 100},
		{in: "1048576", want: 1048576},
		{in: " 1048576 ", want: 1048576},
		{in: "+5", want: 5},
		{in: "100B", want: 100},
		{in: "16kB", want: 16 << 10},
		{in: "1024kB", want: 1 << 20},
		{in: "1MB", want: 1 << 20},
		{in: "64 MB", want: 64 << 20},
		{in: "1GB", want: 1 << 30},
		{in: "1TB", want: 1 << 40},
		{in: "1.5MB", want: 1536 << 10},
		{in: "0.5kB", want: 512},
		{in: ".5kB", want: 512},
		{in: "4097.4kB", want: 4195738}, // rounded to whole bytes
		{in: "1e3", want: 1000},
		{in: "0x400", want: 1024},
		{in: "0x400kB", want: 1 << 20},
		{in: "010", want: 8},   // strtol octal, as PostgreSQL and Patroni
		{in: "1mb", bad: true}, // units are case sensitive
		{in: "1KB", bad: true},
		{in: "1 parsec", bad: true},
		{in: "", bad: true},
		{in: "MB", bad: true},
		{in: "-1", bad: true},
		{in: "-1MB", bad: true},
		{in: "09", bad: true},
		{in: "1.", bad: true},
		{in: "99999999999999999999", bad: true},
		{in: "9000000TB", bad: true},
	}
	for _, tc := range cases {
		got, err := parseLag(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseLag(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseLag(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
