package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Defaults of the local configuration.
const (
	DefaultNamespace       = "/service/"
	DefaultProtocol        = "http"
	DefaultBinDir          = "/usr/lib/postgresql/15/bin"
	DefaultOSUser          = "postgres"
	DefaultSuperuser       = "postgres"
	DefaultReplicationUser = "replicator"
	DefaultLogFormat       = "text"
	DefaultLogLevel        = "info"
)

// finish fills in defaults and checks the settings after the file and the
// environment have been applied.
func (l *loader) finish() {
	c := l.cfg

	for _, req := range []struct{ path, value string }{
		{"scope", c.Scope},
		{"name", c.Name},
		{"restapi.listen", c.RestAPI.Listen},
		{"postgresql.listen", c.PostgreSQL.Listen},
		{"postgresql.data_dir", c.PostgreSQL.DataDir},
	} {
		if strings.TrimSpace(req.value) == "" {
			l.errorf(req.path, "required")
		}
	}
	for _, s := range []struct{ path, value string }{{"scope", c.Scope}, {"name", c.Name}} {
		if strings.Contains(s.value, "/") {
			l.errorf(s.path, "must not contain %q, got %q", "/", s.value)
		}
	}

	c.Namespace = strings.TrimSpace(c.Namespace)
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if !strings.HasPrefix(c.Namespace, "/") {
		c.Namespace = "/" + c.Namespace
	}
	if !strings.HasSuffix(c.Namespace, "/") {
		c.Namespace += "/"
	}

	l.finishRestAPI()
	l.finishEtcd3()
	l.finishPostgreSQL()
	l.finishLog()
	if c.Citus != nil {
		if !l.citusGroupSet {
			l.errorf("citus.group", "required in a Citus cluster: 0 for the coordinator, 1, 2, ... for workers")
		}
		if c.Citus.Database == "" {
			l.errorf("citus.database", "required in a Citus cluster: the database that holds the citus extension, the same on every node")
		}
		// As Patroni does for Citus (it picks quorum, which pgwarden does
		// not have): synchronous replication unless the file says otherwise,
		// since an asynchronous failover can lose a worker's PREPARE.
		if _, set := c.Bootstrap.DCS.Raw["synchronous_mode"]; !set {
			if c.Bootstrap.DCS.Raw == nil {
				c.Bootstrap.DCS.Raw = map[string]any{}
			}
			c.Bootstrap.DCS.Raw["synchronous_mode"] = true
			c.Bootstrap.DCS.SynchronousMode = true
		}
	}

	for _, e := range c.Bootstrap.DCS.check() {
		l.errs = append(l.errs, l.fieldError(joinPath("bootstrap.dcs", e.Path), e.Msg))
	}
}

func (l *loader) finishRestAPI() {
	r := &l.cfg.RestAPI
	if r.Listen != "" {
		host, _, err := splitHostPort(r.Listen)
		switch {
		case err != nil:
			l.errorf("restapi.listen", "%v", err)
		case r.ConnectAddress == "" && isWildcard(host):
			l.errorAtf("restapi.listen", "restapi.connect_address", "required because restapi.listen %q does not name a host other nodes can reach", r.Listen)
		case r.ConnectAddress == "":
			r.ConnectAddress = r.Listen
		}
	}
	if r.ConnectAddress != "" {
		l.checkConnectAddress("restapi.connect_address", r.ConnectAddress)
	}
	if a := r.Authentication; a != nil {
		if a.Username == "" {
			l.errorf("restapi.authentication.username", "required when restapi.authentication is set")
		}
		if a.Password == "" {
			l.errorf("restapi.authentication.password", "required when restapi.authentication is set")
		}
	}
}

// checkConnectAddress checks an address other nodes connect to.
func (l *loader) checkConnectAddress(path, addr string) {
	host, _, err := splitHostPort(addr)
	switch {
	case err != nil:
		l.errorf(path, "%v", err)
	case isWildcard(host):
		l.errorf(path, "%q is not an address other nodes can connect to", addr)
	}
}

func (l *loader) finishEtcd3() {
	e := &l.cfg.Etcd3
	e.Protocol = strings.ToLower(e.Protocol)
	refs := append(append([]hostRef(nil), l.etcdHost...), l.etcdHosts...)
	if l.etcdURL != "" {
		u, err := url.Parse(l.etcdURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			l.errorf("etcd3.url", "expected http://host:port or https://host:port, got %q", l.etcdURL)
		case l.protocolSet && e.Protocol != u.Scheme:
			l.errorf("etcd3.url", "scheme %q does not match etcd3.protocol %q", u.Scheme, e.Protocol)
		default:
			if !l.protocolSet {
				e.Protocol = u.Scheme
			}
			host := u.Host
			if u.Port() == "" {
				host = net.JoinHostPort(u.Hostname(), "2379")
			}
			refs = append([]hostRef{{host, "etcd3.url"}}, refs...)
		}
	}
	if e.Protocol == "" {
		e.Protocol = DefaultProtocol
	}
	if e.Protocol != "http" && e.Protocol != "https" {
		l.errorf("etcd3.protocol", `expected "http" or "https", got %q`, e.Protocol)
	}
	seen := map[string]bool{}
	e.Hosts = nil
	for _, h := range refs {
		host, _, err := splitHostPort(h.addr)
		switch {
		case err != nil && strings.Contains(h.addr, "://"):
			l.errorf(h.path, "%v (write host:port; the scheme comes from etcd3.protocol, or use etcd3.url)", err)
			continue
		case err != nil:
			l.errorf(h.path, "%v", err)
			continue
		case host == "":
			l.errorf(h.path, "missing host in %q", h.addr)
			continue
		}
		if !seen[h.addr] {
			seen[h.addr] = true
			e.Hosts = append(e.Hosts, h.addr)
		}
	}
	if len(refs) == 0 {
		msg := "at least one etcd endpoint is required (etcd3.host, etcd3.hosts or etcd3.url)"
		for _, other := range []string{"etcd", "consul", "zookeeper", "exhibitor", "kubernetes", "raft"} {
			if l.unsupported[other] {
				msg += fmt.Sprintf("; pgwarden supports only etcd3 as DCS, %q is not supported yet", other)
				break
			}
		}
		l.errorf("etcd3", "%s", msg)
	}
}

func (l *loader) finishPostgreSQL() {
	pg := &l.cfg.PostgreSQL
	if pg.Listen != "" {
		hosts, port, err := parseListen(pg.Listen)
		switch {
		case err != nil:
			l.errorf("postgresql.listen", "%v", err)
		case pg.ConnectAddress == "":
			for _, h := range hosts {
				if !isWildcard(h) {
					pg.ConnectAddress = net.JoinHostPort(h, fmt.Sprint(port))
					break
				}
			}
			if pg.ConnectAddress == "" {
				l.errorAtf("postgresql.listen", "postgresql.connect_address", "required because postgresql.listen %q does not name a host other nodes can reach", pg.Listen)
			}
		}
	}
	if pg.ConnectAddress != "" {
		l.checkConnectAddress("postgresql.connect_address", pg.ConnectAddress)
	}
	if pg.BinDir == "" {
		pg.BinDir = DefaultBinDir
	}
	if pg.OSUser == "" {
		pg.OSUser = DefaultOSUser
	}
	if pg.Superuser.Username == "" {
		pg.Superuser.Username = DefaultSuperuser
	}
	if pg.Replication.Username == "" {
		pg.Replication.Username = DefaultReplicationUser
	}
	if pg.Parameters == nil {
		pg.Parameters = map[string]string{}
	}
}

// logLevels maps accepted spellings, Patroni's included, to pgwarden's
// levels.
var logLevels = map[string]string{
	"debug": "debug", "info": "info", "warn": "warn", "warning": "warn",
	"error": "error", "critical": "error", "fatal": "error",
}

func (l *loader) finishLog() {
	lg := &l.cfg.Log
	switch f := strings.ToLower(lg.Format); f {
	case "":
		lg.Format = DefaultLogFormat
	case "text", "plain":
		lg.Format = "text"
	case "json":
		lg.Format = "json"
	default:
		l.errorf("log.format", `expected "text" or "json", got %q`, lg.Format)
	}
	if lg.Level == "" {
		lg.Level = DefaultLogLevel
	} else if lvl, ok := logLevels[strings.ToLower(lg.Level)]; ok {
		lg.Level = lvl
	} else {
		l.errorf("log.level", `expected one of "debug", "info", "warn", "error", got %q`, lg.Level)
	}
}
