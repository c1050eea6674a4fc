package restapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

func TestGetConfig(t *testing.T) {
	ops := newFakeOps(opsCluster())
	s := newOpsServer(t, ops, nil)
	rec := send(s, http.MethodGet, "/config", "")
	want := `{"loop_wait": 2, "maximum_lag_on_failover": 1048576, "postgresql": {"parameters": {"max_connections": 100, "shared_buffers": "64MB"}, "use_pg_rewind": true}, "retry_timeout": 4, "ttl": 20}`
	if rec.Code != 200 || rec.Body.String() != want || !isJSON(rec.Header()) {
		t.Errorf("GET /config = %d %q\n%s\nwant\n%s", rec.Code, rec.Header().Get("Content-Type"), rec.Body, want)
	}
	for _, m := range []string{http.MethodHead, http.MethodOptions} {
		if r := send(s, m, "/config", ""); r.Code != 200 || r.Body.Len() != 0 {
			t.Errorf("%s /config = %d %q", m, r.Code, r.Body)
		}
	}

	ops.c.Config, ops.c.ConfigRevision = nil, 0
	expect(t, send(s, http.MethodGet, "/config", ""), http.StatusBadGateway, "the cluster has no configuration in DCS")
	if r := send(s, http.MethodHead, "/config", ""); r.Code != http.StatusBadGateway || r.Body.Len() != 0 {
		t.Errorf("HEAD /config = %d %q", r.Code, r.Body)
	}

	// DCS down: the published snapshot answers.
	ops.clusterErr = errFake
	n := primaryNode()
	n.Cluster.Config = map[string]any{"ttl": 30.0}
	s.board.Publish(n)
	if r := send(s, http.MethodGet, "/config", ""); r.Code != 200 || r.Body.String() != `{"ttl": 30}` {
		t.Errorf("GET /config from the published snapshot = %d %q", r.Code, r.Body)
	}
	s.board.Publish(noClusterReplicaNode())
	expect(t, send(s, http.MethodGet, "/config", ""), http.StatusServiceUnavailable, "failed to read the cluster state from DCS: etcd is down")
}

// The captured config reads back to the same values through our output.
func TestGetConfigMatchesPatroniSample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(samplesDir, "GET-config.json"))
	if err != nil {
		t.Skipf("Patroni samples not available: %v", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	c := opsCluster()
	c.Config = cfg
	body := send(newOpsServer(t, newFakeOps(c), nil), http.MethodGet, "/config", "").Body.Bytes()
	var back map[string]any
	if err := json.Unmarshal(body, &back); err != nil || !reflect.DeepEqual(back, cfg) {
		t.Errorf("GET /config = %s (%v), want the values of %s", body, err, data)
	}
	if !bytes.Contains(body, []byte(`"synchronous_mode": true, "ttl": 20}`)) {
		t.Errorf("not in json.dumps' layout: %s", body)
	}
}

func TestGetHistory(t *testing.T) {
	for _, version := range []string{"patroni-3.0.2", "patroni-4.1.4"} {
		t.Run(version, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(filepath.Dir(samplesDir), version, "GET-history.json"))
			if err != nil {
				t.Skipf("Patroni samples not available: %v", err)
			}
			entries, err := dcs.ParseHistory(want)
			if err != nil {
				t.Fatal(err)
			}
			c := opsCluster()
			c.HistoryEntries = entries
			rec := send(newOpsServer(t, newFakeOps(c), nil), http.MethodGet, "/history", "")
			if rec.Code != 200 || !isJSON(rec.Header()) || rec.Body.String() != string(want) {
				t.Errorf("GET /history = %d\n%s\nwant\n%s", rec.Code, rec.Body, want)
			}
		})
	}
	c := opsCluster()
	ops := newFakeOps(c)
	s := newOpsServer(t, ops, nil)
	if rec := send(s, http.MethodGet, "/history", ""); rec.Code != 200 || rec.Body.String() != "[]" {
		t.Errorf("no history: %d %q", rec.Code, rec.Body)
	}
	c.HistoryEntries = []dcs.HistoryEntry{
		{Timeline: 1, LSN: 100, Reason: "old patroni"},
		{Timeline: 2, LSN: 67109296, Reason: "no recovery target specified", Time: "2026-11-29T05:19:14.789854+00:00", NewLeader: "nöde2"},
	}
	want := `[[1, 100, "old patroni"], [2, 67109296, "no recovery target specified", "2026-11-29T05:19:14.789854+00:00", "n\u00f6de2"]]`
	if rec := send(s, http.MethodGet, "/history", ""); rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("GET /history = %d\n%s\nwant\n%s", rec.Code, rec.Body, want)
	}
}

func TestPatchConfig(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		setup   func(o *fakeOps)
		code    int
		want    string // the answer; a JSON document when code is 200
		written bool
	}{
		{name: "merge", body: `{"ttl": 30, "loop_wait": "5", "synchronous_mode": true, "postgresql": {"parameters": {"max_connections": null, "work_mem": "8MB"}, "use_pg_rewind": null}}`,
			code: 200, written: true,
			want: `{"loop_wait": "5", "maximum_lag_on_failover": 1048576, "postgresql": {"parameters": {"shared_buffers": "64MB", "work_mem": "8MB"}}, "retry_timeout": 4, "synchronous_mode": true, "ttl": 30}`},
		{name: "delete a section", body: `{"postgresql": null, "maximum_lag_on_failover": 2e6}`, code: 200, written: true,
			want: `{"loop_wait": 2, "maximum_lag_on_failover": 2000000, "retry_timeout": 4, "ttl": 20}`},
		{name: "object replaces a scalar", body: `{"ttl": {"x": 1}}`, code: 400,
			want: "invalid configuration: ttl: expected a number of seconds or a duration such as \"500ms\", got a mapping"},
		{name: "nothing changes", body: `{"ttl": "20", "pause": null, "postgresql": {"use_pg_rewind": true}}`, code: 200, written: false,
			want: `{"loop_wait": 2, "maximum_lag_on_failover": 1048576, "postgresql": {"parameters": {"max_connections": 100, "shared_buffers": "64MB"}, "use_pg_rewind": true}, "retry_timeout": 4, "ttl": 20}`},
		{name: "invalid value", body: `{"ttl": "soon"}`, code: 400,
			want: `invalid configuration: ttl: expected a number of seconds or a duration such as "500ms", got "soon"`},
		{name: "invalid timing", body: `{"loop_wait": 30}`, code: 400,
			want: "invalid configuration: ttl: ttl (20s) must be at least loop_wait + 2*retry_timeout = 30s + 2*4s = 38s"},
		{name: "conflict", body: `{"ttl": 30}`, setup: func(o *fakeOps) {
			// someone writes the key between our read and our write
			o.writeHook = func(c *dcs.Cluster) { c.ConfigRevision = 9 }
		}, code: 409, want: "the config key changed meanwhile; read it again and retry"},
		{name: "write fails", body: `{"ttl": 30}`, setup: func(o *fakeOps) { o.configErr = errFake },
			code: 503, want: "failed to write config key into DCS"},
		{name: "no config key", body: `{"ttl": 30}`, setup: func(o *fakeOps) { o.c.Config, o.c.ConfigRevision = nil, 0 },
			code: 503, want: "the cluster has no configuration in DCS"},
		{name: "garbled config key", body: `{"ttl": 30}`, setup: func(o *fakeOps) { o.c.Config = nil }, code: 200, written: true,
			want: `{"ttl": 30}`},
		{name: "read fails", body: `{"ttl": 30}`, setup: func(o *fakeOps) { o.clusterErr = errFake },
			code: 503, want: "failed to read the cluster state from DCS: etcd is down"},
		{name: "malformed", body: `{"ttl": 30`, code: 400, want: "the request body is not valid JSON: unexpected EOF"},
		{name: "not an object", body: `30`, code: 400, want: "the request body must be a JSON object, got a number"},
		{name: "empty", body: `{}`, code: 400, want: "the request body must be a non-empty JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops := newFakeOps(opsCluster())
			if tc.setup != nil {
				tc.setup(ops)
			}
			rec := send(newOpsServer(t, ops, nil), http.MethodPatch, "/config", tc.body)
			checkConfigAnswer(t, rec.Code, rec.Body.String(), tc.code, tc.want)
			if got := len(ops.configWrites) == 1; got != tc.written {
				t.Errorf("written: %v (%d writes), want %v", got, len(ops.configWrites), tc.written)
			}
			if tc.written {
				if ops.configRevs[0] != 5 {
					t.Errorf("written with revision %d, want 5", ops.configRevs[0])
				}
				var want map[string]any
				_ = json.Unmarshal([]byte(tc.want), &want)
				if got := roundTrip(t, ops.configWrites[0]); !reflect.DeepEqual(got, want) {
					t.Errorf("wrote %v, want %v", got, want)
				}
			}
			if wantWake := tc.code == 200; (ops.wakes == 1) != wantWake {
				t.Errorf("wakes %d", ops.wakes)
			}
		})
	}
}

func checkConfigAnswer(t *testing.T, code int, body string, wantCode int, want string) {
	t.Helper()
	if code != wantCode || body != want {
		t.Errorf("got %d\n%s\nwant %d\n%s", code, body, wantCode, want)
	}
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPutConfig(t *testing.T) {
	newCfg := `{"ttl": 40, "loop_wait": 5, "postgresql": {"parameters": {"work_mem": "4MB"}}}`
	newWant := `{"loop_wait": 5, "postgresql": {"parameters": {"work_mem": "4MB"}}, "ttl": 40}`
	cases := []struct {
		name    string
		body    string
		setup   func(o *fakeOps)
		code    int
		want    string
		written bool
		rev     int64
	}{
		{name: "replace", body: newCfg, code: 200, want: newWant, written: true, rev: 5},
		{name: "create", body: newCfg, setup: func(o *fakeOps) { o.c.Config, o.c.ConfigRevision = nil, 0 },
			code: 200, want: newWant, written: true, rev: 0},
		{name: "same", body: `{"ttl": 20, "loop_wait": 2, "retry_timeout": 4, "maximum_lag_on_failover": 1048576, "postgresql": {"use_pg_rewind": true, "parameters": {"max_connections": 100, "shared_buffers": "64MB"}}}`,
			code: 200, written: false,
			want: `{"loop_wait": 2, "maximum_lag_on_failover": 1048576, "postgresql": {"parameters": {"max_connections": 100, "shared_buffers": "64MB"}, "use_pg_rewind": true}, "retry_timeout": 4, "ttl": 20}`},
		{name: "invalid", body: `{"ttl": 5, "loop_wait": 10}`, code: 400,
			want: "invalid configuration: ttl: ttl (5s) must be at least loop_wait + 2*retry_timeout = 10s + 2*10s = 30s"},
		{name: "conflict", body: newCfg, setup: func(o *fakeOps) { o.writeHook = func(c *dcs.Cluster) { c.ConfigRevision = 9 } },
			code: 409, want: "the config key changed meanwhile; read it again and retry"},
		{name: "not an object", body: `[]`, code: 400, want: "the request body must be a JSON object, got an array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops := newFakeOps(opsCluster())
			if tc.setup != nil {
				tc.setup(ops)
			}
			rec := send(newOpsServer(t, ops, nil), http.MethodPut, "/config", tc.body)
			checkConfigAnswer(t, rec.Code, rec.Body.String(), tc.code, tc.want)
			if got := len(ops.configWrites) == 1; got != tc.written {
				t.Fatalf("written: %v, want %v", got, tc.written)
			}
			if tc.written {
				var want map[string]any
				_ = json.Unmarshal([]byte(tc.body), &want)
				if got := roundTrip(t, ops.configWrites[0]); !reflect.DeepEqual(got, want) || ops.configRevs[0] != tc.rev {
					t.Errorf("wrote %v at %d, want %v at %d", got, ops.configRevs[0], want, tc.rev)
				}
				if ops.wakes != 1 {
					t.Errorf("wakes %d", ops.wakes)
				}
			}
		})
	}
}

func TestPatchConfigSemantics(t *testing.T) {
	cfg := map[string]any{
		"a": 1.0, "b": "x", "n": map[string]any{"k": 1.0, "gone": "y", "deep": map[string]any{"z": true}},
		"s": "scalar", "nul": nil,
	}
	patch := map[string]any{
		"a":   int64(1), // same as a string: unchanged
		"b":   nil,      // deleted
		"n":   map[string]any{"gone": nil, "deep": map[string]any{"z": nil, "w": int64(2)}, "new": "v"},
		"s":   map[string]any{"now": "object"},
		"add": map[string]any{"kept": nil}, // added as is, like Patroni
		"nul": nil,                         // deleting a null is no change
	}
	if !patchConfig(cfg, patch) {
		t.Fatal("patchConfig reported no change")
	}
	want := map[string]any{
		"a": 1.0, "n": map[string]any{"k": 1.0, "deep": map[string]any{"w": int64(2)}, "new": "v"},
		"s": map[string]any{"now": "object"}, "add": map[string]any{"kept": nil},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("patched:\n%#v\nwant\n%#v", cfg, want)
	}
	if patchConfig(cfg, map[string]any{"a": "1", "missing": nil, "nul": nil, "n": map[string]any{"k": int64(1)}}) {
		t.Error("a patch without effect reported a change")
	}
}

func TestPyJSON(t *testing.T) {
	v := map[string]any{
		"s":  "é\"\\\n\x01\U0001F600/",
		"f":  0.5,
		"e":  1e-05,
		"i":  int64(-3),
		"w":  3.0,
		"l":  []any{true, nil, "x"},
		"o":  map[string]any{},
		"jn": json.Number("12345678901234567890"),
	}
	want := `{"e": 1e-05, "f": 0.5, "i": -3, "jn": 12345678901234567890, "l": [true, null, "x"], "o": {}, "s": "\u00e9\"\\\n\u0001\ud83d\ude00/", "w": 3}`
	if got := string(appendPyJSON(nil, v)); got != want {
		t.Errorf("appendPyJSON:\n got %s\nwant %s", got, want)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(want), &back); err != nil || back["s"] != v["s"] {
		t.Errorf("does not read back: %v %q", err, back["s"])
	}
}

// /patroni and /cluster show the maintenance mode, a pending restart, the
// scheduled restart and the scheduled switchover as Patroni does.
func TestDocumentsShowOperations(t *testing.T) {
	n := primaryNode()
	n.Paused = true
	n.PendingRestart = true
	n.ScheduledRestart = &status.ScheduledRestart{
		At: time.Date(2026, 11, 29, 7, 19, 9, 0, time.FixedZone("", 3600)), PostmasterStartTime: n.PG.StartTime,
		Role: "replica", RestartPending: true, PostgresVersion: 150003,
	}
	n.Cluster.FailoverRequest = &dcs.Failover{Leader: "node0", Candidate: "node2", ScheduledAt: time.Date(2026, 11, 29, 6, 19, 9, 0, time.UTC)}
	n.Cluster.Members[1].Extra = map[string]json.RawMessage{
		"scheduled_restart": json.RawMessage(`{"schedule": "2026-11-29T06:30:00+00:00", "postmaster_start_time": "2026-11-29 05:20:48.177984+00:00"}`),
	}
	s := newTestServer(t, n, nil)

	body := do(s, http.MethodGet, "/patroni").Body.String()
	for _, want := range []string{
		`"pause":true,`,
		`"pending_restart":true,"patroni":{"version":"4.1.4","scope":"pbench","name":"node0"},` +
			`"scheduled_restart":{"schedule":"2026-11-29T07:19:09+01:00","restart_pending":true,"role":"replica","postgres_version":150003}}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /patroni lacks %s:\n%s", want, body)
		}
	}
	if strings.Count(body, "postmaster_start_time") != 1 { // PostgreSQL's own only
		t.Errorf("postmaster_start_time of the scheduled restart shown: %s", body)
	}

	body = do(s, http.MethodGet, "/cluster").Body.String()
	for _, want := range []string{
		`"timeline":1,"scheduled_restart":{"schedule":"2026-11-29T06:30:00+00:00","postmaster_start_time":"2026-11-29 05:20:48.177984+00:00"},"receive_lag"`,
		`],"pause":true,"scheduled_switchover":{"at":"2026-11-29T06:19:09+00:00","from":"node0","to":"node2"},"scope":"pbench"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /cluster lacks %s:\n%s", want, body)
		}
	}

	// An immediate request is not a scheduled switchover.
	n = primaryNode()
	n.Cluster.FailoverRequest = &dcs.Failover{Leader: "node0"}
	if body := do(newTestServer(t, n, nil), http.MethodGet, "/cluster").Body.String(); strings.Contains(body, "scheduled_switchover") {
		t.Errorf("GET /cluster: %s", body)
	}
}
