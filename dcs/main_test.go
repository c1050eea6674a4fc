package dcs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/etcdserver"
	"github.com/pgwarden/pgwarden/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// sharedEtcd is the embedded etcd every test of this package uses, each
// test in its own scope.
var sharedEtcd *etcdserver.Server

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dcs-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "making the etcd data dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := startEtcdNoT(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	sharedEtcd = srv
	return m.Run()
}

// startEtcdNoT starts an embedded etcd on free loopback ports.
func startEtcdNoT(dir string) (*etcdserver.Server, error) {
	cp, err := testutil.FreePortNoT()
	if err != nil {
		return nil, err
	}
	pp, err := testutil.FreePortNoT()
	if err != nil {
		return nil, err
	}
	return etcdserver.Start(dir, fmt.Sprintf("http://127.0.0.1:%d", cp), fmt.Sprintf("http://127.0.0.1:%d", pp))
}

var (
	scopes   sync.Map // *testing.T -> string
	scopeSeq atomic.Int64
)

// scopeFor is a scope name unique to the test, also when tests run more
// than once against the same etcd (-count).
func scopeFor(t *testing.T) string {
	if s, ok := scopes.Load(t); ok {
		return s.(string)
	}
	s := fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), scopeSeq.Add(1))
	actual, _ := scopes.LoadOrStore(t, s)
	return actual.(string)
}

// quietLogger discards everything.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEtcd makes a handle on the shared etcd for member name in the test's
// scope, closed when the test ends.
func newEtcd(t *testing.T, name string, mod ...func(*Options)) *Etcd {
	t.Helper()
	opts := Options{
		Endpoints: []string{sharedEtcd.ClientURL()},
		Scope:     scopeFor(t),
		Name:      name,
		TTL:       10 * time.Second,
		Logger:    quietLogger(),
	}
	for _, f := range mod {
		f(&opts)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// rawClient is a plain etcd client on the shared server, for writing and
// checking keys behind the package's back.
func rawClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("raw etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// tctx is a context for one or a few etcd calls.
func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustLease makes sure e holds a lease.
func mustLease(t *testing.T, e *Etcd) {
	t.Helper()
	fresh, err := e.RefreshLease(tctx(t))
	if err != nil {
		t.Fatalf("RefreshLease: %v", err)
	}
	if !fresh {
		t.Fatalf("first RefreshLease reported an existing lease")
	}
	if e.LeaseID() == 0 {
		t.Fatalf("LeaseID is 0 after a grant")
	}
}

// getValue reads one key with the raw client; ok is false when absent.
func getValue(t *testing.T, cli *clientv3.Client, key string) (value string, lease int64, ok bool) {
	t.Helper()
	resp, err := cli.Get(tctx(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, true
}

// syncBuffer is a bytes.Buffer safe for a logger used from several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
