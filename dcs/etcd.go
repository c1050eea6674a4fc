package dcs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Options configure a connection to etcd for one member of one cluster.
type Options struct {
	Endpoints []string // "http://127.0.0.1:2379"
	Username  string
	Password  string
	CACert    string
	Cert      string
	Key       string
	Namespace string // default "/service/"
	Scope     string
	Name      string // this member's name
	// Citus, when set, puts this member's keys under
	// "<namespace><scope>/<Group>/" as Patroni does for a Citus cluster:
	// every group elects its own leader under one scope.
	Citus       bool
	Group       int
	TTL         time.Duration // lease ttl
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// Defaults applied by New.
const (
	DefaultNamespace   = "/service/"
	DefaultTTL         = 30 * time.Second
	DefaultDialTimeout = 2 * time.Second
)

// Etcd is this member's handle on the cluster's keys in etcd.
//
// It is safe for concurrent use. It holds at most one lease, which the
// caller keeps alive with RefreshLease; there is no background keep-alive.
type Etcd struct {
	prefix      string // this member's group: "<namespace><scope>/" or ".../<group>/"
	scopePrefix string // "<namespace><scope>/"
	name        string
	log         *slog.Logger
	cfg         clientv3.Config

	// cmu guards cli. The client is made in New, except with user and
	// password when etcd could not be reached then: the first call that
	// needs it makes it.
	cmu    sync.Mutex
	cli    *clientv3.Client
	closed bool

	// refreshMu serialises RefreshLease so that two callers never grant two
	// leases at once.
	refreshMu sync.Mutex

	mu     sync.Mutex
	ttl    int64            // seconds, for the next grant
	lease  clientv3.LeaseID // 0 when none
	warned map[string]int64 // garbled key -> mod revision already logged
}

// New checks the options and makes an etcd client. It does not wait for
// etcd: the daemon starts even while etcd is down, and each call reports
// its own error then.
func New(opts Options) (*Etcd, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints are configured")
	}
	if opts.Scope == "" {
		return nil, errors.New("the cluster scope is empty")
	}
	if strings.Contains(opts.Scope, "/") {
		return nil, fmt.Errorf("the cluster scope %q contains a slash", opts.Scope)
	}
	if strings.Contains(opts.Name, "/") {
		return nil, fmt.Errorf("the member name %q contains a slash", opts.Name)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}

	cfg := clientv3.Config{
		Endpoints:   append([]string(nil), opts.Endpoints...),
		DialTimeout: dial,
		// Detect a dead connection under a long-lived watch. The server
		// refuses pings more often than every 5 s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             opts.Username,
		Password:             opts.Password,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			// gRPC's default backoff grows to two minutes between
			// connection attempts: far too long to notice that etcd is
			// back. Retry at most every 2 s, and give up on an attempt
			// (a black-holed endpoint) after the dial timeout.
			Backoff: backoff.Config{
				BaseDelay:  250 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: dial,
		})},
	}
	tlsCfg, err := tlsConfig(opts)
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsCfg

	if opts.Citus && opts.Group < 0 {
		return nil, fmt.Errorf("the citus group %d is negative", opts.Group)
	}
	scopePrefix := prefixFor(opts.Namespace, opts.Scope)
	prefix := scopePrefix
	if opts.Citus {
		prefix += strconv.Itoa(opts.Group) + "/"
	}
	e := &Etcd{
		prefix:      prefix,
		scopePrefix: scopePrefix,
		name:        opts.Name,
		log:         log,
		cfg:         cfg,
		ttl:         ttlSeconds(ttl),
		warned:      make(map[string]int64),
	}
	cli, err := clientv3.New(cfg)
	switch {
	case err == nil:
		e.cli = cli
	case opts.Username != "":
		// With authentication the client asks etcd for a token at once;
		// etcd may be down now. Try again on first use.
		log.Warn("etcd is not reachable yet; will connect on first use", "endpoints", opts.Endpoints, "error", err)
	default:
		return nil, fmt.Errorf("making an etcd client for %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	return e, nil
}

// prefixFor is "<namespace><scope>/", the namespace defaulting to
// "/service/" and made to start and end with a slash.
func prefixFor(namespace, scope string) string {
	ns := namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if !strings.HasPrefix(ns, "/") {
		ns = "/" + ns
	}
	if !strings.HasSuffix(ns, "/") {
		ns += "/"
	}
	return ns + scope + "/"
}

// ttlSeconds rounds a TTL up to whole seconds, at least one.
func ttlSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// tlsConfig builds the client TLS configuration from the certificate files,
// or a default one when an endpoint is https:// without any file; nil for
// plain http.
func tlsConfig(opts Options) (*tls.Config, error) {
	secure := false
	for _, ep := range opts.Endpoints {
		if strings.HasPrefix(ep, "https://") {
			secure = true
		}
	}
	if opts.CACert == "" && opts.Cert == "" && opts.Key == "" {
		if secure {
			return &tls.Config{MinVersion: tls.VersionTLS12}, nil
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CACert != "" {
		pem, err := os.ReadFile(opts.CACert)
		if err != nil {
			return nil, fmt.Errorf("reading the etcd CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the etcd CA file %s holds no PEM certificate", opts.CACert)
		}
		c.RootCAs = pool
	}
	if (opts.Cert == "") != (opts.Key == "") {
		return nil, errors.New("the etcd client certificate and key must be given together")
	}
	if opts.Cert != "" {
		pair, err := tls.LoadX509KeyPair(opts.Cert, opts.Key)
		if err != nil {
			return nil, fmt.Errorf("loading the etcd client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// client returns the etcd client, making it if New could not.
func (e *Etcd) client() (*clientv3.Client, error) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if e.closed {
		return nil, errors.New("the etcd handle is closed")
	}
	if e.cli != nil {
		return e.cli, nil
	}
	cli, err := clientv3.New(e.cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s: %w", strings.Join(e.cfg.Endpoints, ","), err)
	}
	e.cli = cli
	return cli, nil
}

// Close closes the connection. The lease is not revoked: keys bound to it
// vanish when it expires, unless the caller deleted them first.
func (e *Etcd) Close() error {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.cli == nil {
		return nil
	}
	if err := e.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("closing the etcd client: %w", err)
	}
	return nil
}

// Prefix is "<namespace><scope>/" (with Citus, "<namespace><scope>/<group>/"),
// under which all the keys of this member's cluster are.
func (e *Etcd) Prefix() string { return e.prefix }

// ScopePrefix is "<namespace><scope>/": with Citus, every group's keys are
// under it.
func (e *Etcd) ScopePrefix() string { return e.scopePrefix }

// key is the full etcd key of a cluster key ("leader", "members/x").
func (e *Etcd) key(rel string) string { return e.prefix + rel }

// Names of the cluster keys, relative to the prefix.
const (
	keyInitialize = "initialize"
	keyConfig     = "config"
	keyLeader     = "leader"
	keyMembers    = "members/"
	keyHistory    = "history"
	keyStatus     = "status"
	keyFailover   = "failover"
	keySync       = "sync"
)
