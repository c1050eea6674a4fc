package etcdserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestStartPutGetStop(t *testing.T) {
	srv, clientURL := startServer(t)
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

// Patroni's etcd3 client (and patronictl) speak etcd's JSON gRPC-gateway
// over plain HTTP on the client port: GET /version, then POST /v3/...
func TestGatewayServesPatronisRequests(t *testing.T) {
	_, clientURL := startServer(t)
	hc := &http.Client{Timeout: 5 * time.Second}

	resp, err := hc.Get(clientURL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	var version struct {
		Server  string `json:"etcdserver"`
		Cluster string `json:"etcdcluster"`
	}
	err = json.NewDecoder(resp.Body).Decode(&version)
	resp.Body.Close()
	if err != nil || version.Server == "" || version.Cluster == "" {
		t.Fatalf("GET /version: %v, %+v", err, version)
	}

	post := func(path string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := hc.Post(clientURL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: status %d, want 200 (is the gRPC-gateway enabled?)", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	var members struct {
		Members []struct {
			ClientURLs []string `json:"clientURLs"`
		} `json:"members"`
	}
	post("/v3/cluster/member/list", map[string]any{}, &members)
	if len(members.Members) != 1 || len(members.Members[0].ClientURLs) != 1 || members.Members[0].ClientURLs[0] != clientURL {
		t.Fatalf("member list = %+v, want one member advertising %s", members, clientURL)
	}

	var put map[string]any
	post("/v3/kv/put", map[string]any{"key": b64("/service/gw/leader"), "value": b64("node1")}, &put)
	var rng struct {
		KVs []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"kvs"`
	}
	post("/v3/kv/range", map[string]any{"key": b64("/service/gw/"), "range_end": b64("/service/gw0"), "serializable": true}, &rng)
	if len(rng.KVs) != 1 || rng.KVs[0].Key != b64("/service/gw/leader") || rng.KVs[0].Value != b64("node1") {
		t.Fatalf("range = %+v, want the one key just put", rng)
	}
}

// startServer runs a server on free ports, stopped when the test ends.
func startServer(t *testing.T) (*Server, string) {
	t.Helper()
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	srv, err := Start(testutil.WorldTempDir(t, "etcdserver-"), clientURL, peerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, clientURL
}
