package etcdserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestStartPutGetStop(t *testing.T) {
	dir := testutil.WorldTempDir(t, "etcdserver-")
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))

	srv, err := Start(dir, clientURL, peerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if got := srv.ClientURL(); got != clientURL {
		t.Fatalf("ClientURL() = %q, want %q", got, clientURL)
	}

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{srv.ClientURL()},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/test/key", "value-1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cli.Get(ctx, "/test/key")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "value-1" {
		t.Fatalf("get returned %v, want one key with value-1", resp.Kvs)
	}

	srv.Stop()
	srv.Stop() // idempotent

	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, err := cli.Get(short, "/test/key"); err == nil {
		t.Fatal("get succeeded after Stop, want an error")
	}
}

func TestStartRejectsBadURL(t *testing.T) {
	if _, err := Start(t.TempDir(), "://nope", "http://127.0.0.1:1"); err == nil {
		t.Fatal("Start accepted a malformed client URL")
	}
}
