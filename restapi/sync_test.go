package restapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/dcs"
)

// In synchronous mode /sync answers 200 on the standby the sync key names
// and /async on the others; /cluster and /patroni show it as Patroni does.
func TestSyncStandbyEndpoints(t *testing.T) {
	cases := []struct {
		name      string
		syncMode  any
		standbys  []string
		sync, asy int
		tag       bool
	}{
		{"named in sync key", true, []string{"node2"}, 200, 503, true},
		{"another standby named", true, []string{"node1"}, 503, 200, false},
		{"synchronous mode off", false, []string{"node2"}, 503, 200, false},
		{"synchronous mode as a string", "on", []string{"node2"}, 200, 503, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := replicaNode()
			c := *n.Cluster
			c.Config = map[string]any{"synchronous_mode": tc.syncMode}
			c.SyncState = &dcs.SyncState{Leader: "node0", Standbys: tc.standbys}
			n.Cluster = &c
			s := newTestServer(t, n, nil)
			if rec := do(s, http.MethodGet, "/sync"); rec.Code != tc.sync {
				t.Errorf("/sync = %d, want %d", rec.Code, tc.sync)
			}
			if rec := do(s, http.MethodGet, "/async"); rec.Code != tc.asy {
				t.Errorf("/async = %d, want %d", rec.Code, tc.asy)
			}
			if rec := do(s, http.MethodGet, "/read-only-sync"); (rec.Code == 200) != (tc.sync == 200) {
				t.Errorf("/read-only-sync = %d", rec.Code)
			}
			rec := do(s, http.MethodGet, "/patroni")
			if got := strings.Contains(rec.Body.String(), `"sync_standby":true`); got != tc.tag {
				t.Errorf("/patroni sync_standby shown = %v, want %v: %s", got, tc.tag, rec.Body.String())
			}
			rec = do(s, http.MethodGet, "/cluster")
			wantRole := tc.standbys[0]
			if tc.syncMode == false {
				wantRole = "nobody"
			}
			if got := strings.Contains(rec.Body.String(), `"name":"`+wantRole+`","role":"sync_standby"`); !got && wantRole != "nobody" {
				t.Errorf("/cluster does not show %s as sync_standby: %s", wantRole, rec.Body.String())
			}
			if wantRole == "nobody" && strings.Contains(rec.Body.String(), "sync_standby") {
				t.Errorf("/cluster shows a sync_standby with synchronous mode off")
			}
		})
	}
}
