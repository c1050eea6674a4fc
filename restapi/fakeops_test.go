package restapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/status"
)

// fakeOps is an in-memory Operations: a cluster that the writes change,
// a record of every call, and switches to make calls fail.
type fakeOps struct {
	mu sync.Mutex
	c  *dcs.Cluster

	clusterErr error // Cluster fails
	clusterN   int   // calls of Cluster

	// afterFailover, when set, runs in each Cluster call made after a
	// failover key write, with the number of such calls so far (1, 2, ...);
	// it plays the HA loops.
	afterFailover func(c *dcs.Cluster, n int)
	sinceFailover int

	failoverWrites []*dcs.Failover // nil entries: cleared
	failoverRevs   []int64
	failoverErr    error
	failoverRefuse bool // SetFailover answers false (as a lost CAS)

	configWrites []map[string]any
	configRevs   []int64
	configErr    error
	writeHook    func(c *dcs.Cluster) // runs before SetConfig's compare-and-swap

	wakes int

	restarts      []RestartRequest
	restartOK     bool
	restartMsg    string
	schedules     []RestartRequest
	scheduleOK    bool
	cancelOK      bool
	cancels       int
	reinits       []bool
	reinitRefusal string
	reloads       int
	reloadErr     error
}

func newFakeOps(c *dcs.Cluster) *fakeOps {
	return &fakeOps{c: c, restartOK: true, scheduleOK: true, cancelOK: true}
}

// cloneCluster copies what the handlers may read or the fake may change.
func cloneCluster(c *dcs.Cluster) *dcs.Cluster {
	cp := *c
	if c.Leader != nil {
		l := *c.Leader
		cp.Leader = &l
	}
	cp.Members = append([]dcs.Member(nil), c.Members...)
	if c.FailoverRequest != nil {
		f := *c.FailoverRequest
		cp.FailoverRequest = &f
	}
	if c.Config != nil {
		cp.Config = deepCopy(c.Config).(map[string]any)
	}
	return &cp
}

func (f *fakeOps) Cluster(ctx context.Context) (*dcs.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusterN++
	if f.clusterErr != nil {
		return nil, f.clusterErr
	}
	if f.afterFailover != nil && len(f.failoverWrites) > 0 {
		f.sinceFailover++
		f.afterFailover(f.c, f.sinceFailover)
	}
	return cloneCluster(f.c), nil
}

func (f *fakeOps) SetFailover(ctx context.Context, fo *dcs.Failover, prevRevision int64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failoverErr != nil {
		return false, f.failoverErr
	}
	if f.failoverRefuse || (prevRevision > 0 && prevRevision != f.c.FailoverRevision) {
		return false, nil
	}
	var rec *dcs.Failover
	if !fo.Empty() {
		cp := *fo
		rec = &cp
	}
	f.failoverWrites = append(f.failoverWrites, rec)
	f.failoverRevs = append(f.failoverRevs, prevRevision)
	f.c.Revision++
	f.c.FailoverRevision = f.c.Revision
	if rec != nil {
		cp := *rec
		cp.ModRevision = f.c.Revision
		f.c.FailoverRequest = &cp
	} else {
		f.c.FailoverRequest = nil
	}
	return true, nil
}

func (f *fakeOps) SetConfig(ctx context.Context, cfg map[string]any, prevRevision int64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.configErr != nil {
		return false, f.configErr
	}
	if f.writeHook != nil {
		f.writeHook(f.c)
	}
	if prevRevision != f.c.ConfigRevision {
		return false, nil
	}
	f.configWrites = append(f.configWrites, deepCopy(cfg).(map[string]any))
	f.configRevs = append(f.configRevs, prevRevision)
	f.c.Revision++
	f.c.ConfigRevision = f.c.Revision
	f.c.Config = deepCopy(cfg).(map[string]any)
	return true, nil
}

func (f *fakeOps) Wake() {
	f.mu.Lock()
	f.wakes++
	f.mu.Unlock()
}

func (f *fakeOps) Restart(ctx context.Context, r RestartRequest) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts = append(f.restarts, r)
	return f.restartOK, f.restartMsg
}

func (f *fakeOps) ScheduleRestart(r RestartRequest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.schedules = append(f.schedules, r)
	return f.scheduleOK
}

func (f *fakeOps) CancelRestart() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels++
	return f.cancelOK
}

func (f *fakeOps) Reinitialize(ctx context.Context, force bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reinits = append(f.reinits, force)
	return f.reinitRefusal
}

func (f *fakeOps) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

var errFake = errors.New("etcd is down")

// opsCluster is the sample cluster with a config key like the captured
// one (but no synchronous mode) and a revision for every key.
func opsCluster() *dcs.Cluster {
	c := sampleCluster()
	c.Config = map[string]any{
		"ttl": 20.0, "loop_wait": 2.0, "retry_timeout": 4.0, "maximum_lag_on_failover": 1048576.0,
		"postgresql": map[string]any{
			"use_pg_rewind": true,
			"parameters":    map[string]any{"max_connections": 100.0, "shared_buffers": "64MB"},
		},
	}
	c.ConfigRevision = 5
	c.Revision = 20
	return c
}

// newOpsServer serves ops with node0's status published, polling fast.
func newOpsServer(t testing.TB, ops Operations, auth *config.BasicAuth) *Server {
	t.Helper()
	b := new(status.Board)
	b.Publish(primaryNode())
	s := New(Options{Board: b, Auth: auth, Ops: ops, Now: func() time.Time { return t0 }})
	s.pollInterval = time.Millisecond
	s.pollWindow = 300 * time.Millisecond
	s.syncWait = 250 * time.Millisecond
	return s
}

// send runs one request with a body ("" for none) through the handler.
func send(s *Server, method, target, body string, header ...string) *httptest.ResponseRecorder {
	return sendCtx(context.Background(), s, method, target, body, header...)
}

func sendCtx(ctx context.Context, s *Server, method, target, body string, header ...string) *httptest.ResponseRecorder {
	var req *http.Request
	if body == "" {
		req = httptest.NewRequestWithContext(ctx, method, target, nil)
	} else {
		req = httptest.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// expect checks the status code and the exact plain-text message.
func expect(t *testing.T, rec *httptest.ResponseRecorder, code int, msg string) {
	t.Helper()
	if rec.Code != code || rec.Body.String() != msg {
		t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), code, msg)
	}
	if msg != "" && !isPlain(rec.Header()) {
		t.Errorf("Content-Type = %q, want text/plain", rec.Header().Get("Content-Type"))
	}
}

func authConfig() *config.BasicAuth { return &config.BasicAuth{Username: "admin", Password: "s3cret"} }

func basicHeader(user, pass string) string {
	req, _ := http.NewRequest(http.MethodPost, "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}
