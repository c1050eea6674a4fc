// Package etcdserver starts a real single-member etcd server (the embed
// package) for tests and the demo launcher. It is never linked into the
// pgwarden daemon.
package etcdserver

import (
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// readyTimeout bounds how long Start waits for the member to elect itself
// and serve clients.
const readyTimeout = 30 * time.Second

// memberName is the name of the only member, used in the initial cluster.
const memberName = "default"

// Server is a running embedded etcd.
type Server struct {
	etcd      *embed.Etcd
	clientURL string
	stopOnce  sync.Once
}

// Start runs etcd with its data in dir, serving clients on clientURL
// ("http://127.0.0.1:PORT") and peers on peerURL, and waits until it is ready.
func Start(dir, clientURL, peerURL string) (*Server, error) {
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("parsing etcd client URL %q: %w", clientURL, err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("parsing etcd peer URL %q: %w", peerURL, err)
	}
	if cu.Host == "" || pu.Host == "" {
		return nil, fmt.Errorf("etcd client URL %q and peer URL %q must both name a host and port", clientURL, peerURL)
	}

	cfg := embed.NewConfig()
	cfg.Name = memberName
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = memberName + "=" + pu.String()
	cfg.InitialClusterToken = "pgwarden-" + memberName
	// Quiet: the server's own log is of no use to tests or the demo.
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// No separate metrics listener. The gRPC-gateway stays on: the client
	// port also answers etcd's JSON API over plain HTTP (/v3/kv/range, ...),
	// which is how Patroni's etcd3 client and patronictl talk to etcd.
	cfg.ListenMetricsUrls = nil
	cfg.EnableGRPCGateway = true
	// A throw-away single member: skip fsync so that starting and writing
	// are fast. Leases are never checkpointed (the default), so a lease's
	// remaining TTL is simply its full TTL again after a restart.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", dir, err)
	}
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		if err == nil {
			err = errors.New("it exited")
		}
		return nil, fmt.Errorf("embedded etcd in %s failed before it was ready: %w", dir, err)
	case <-timer.C:
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s was not ready after %s", dir, readyTimeout)
	}
	return &Server{etcd: e, clientURL: cu.String()}, nil
}

// ClientURL returns the URL clients connect to.
func (s *Server) ClientURL() string { return s.clientURL }

// Stop stops the server and waits for it to exit. Calling it again does
// nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.etcd.Close()
		<-s.etcd.Server.StopNotify()
	})
}
