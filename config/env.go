package config

import "strings"

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "PGWARDEN_"

// envOverride is one environment variable and the setting it replaces.
type envOverride struct {
	name string // without EnvPrefix
	path string // dotted path of the setting, for errors
	set  func(l *loader, v string)
}

// envOverrides follow Patroni's PATRONI_* names with the PGWARDEN_ prefix.
var envOverrides = []envOverride{
	{"SCOPE", "scope", func(l *loader, v string) { l.cfg.Scope = v }},
	{"NAMESPACE", "namespace", func(l *loader, v string) { l.cfg.Namespace = v }},
	{"NAME", "name", func(l *loader, v string) { l.cfg.Name = v }},

	{"RESTAPI_LISTEN", "restapi.listen", func(l *loader, v string) { l.cfg.RestAPI.Listen = strings.TrimSpace(v) }},
	{"RESTAPI_CONNECT_ADDRESS", "restapi.connect_address", func(l *loader, v string) { l.cfg.RestAPI.ConnectAddress = strings.TrimSpace(v) }},
	{"RESTAPI_USERNAME", "restapi.authentication.username", func(l *loader, v string) { l.restAuth().Username = v }},
	{"RESTAPI_PASSWORD", "restapi.authentication.password", func(l *loader, v string) { l.restAuth().Password = v }},

	{"ETCD3_HOST", "etcd3.host", func(l *loader, v string) { l.etcdHost = []hostRef{{strings.TrimSpace(v), "etcd3.host"}} }},
	{"ETCD3_HOSTS", "etcd3.hosts", func(l *loader, v string) {
		l.etcdHosts = nil
		for _, h := range splitList(v) {
			l.etcdHosts = append(l.etcdHosts, hostRef{h, "etcd3.hosts"})
		}
	}},
	{"ETCD3_PROTOCOL", "etcd3.protocol", func(l *loader, v string) {
		l.cfg.Etcd3.Protocol = strings.TrimSpace(v)
		l.protocolSet = true
	}},
	{"ETCD3_USERNAME", "etcd3.username", func(l *loader, v string) { l.cfg.Etcd3.Username = v }},
	{"ETCD3_PASSWORD", "etcd3.password", func(l *loader, v string) { l.cfg.Etcd3.Password = v }},
	{"ETCD3_CACERT", "etcd3.cacert", func(l *loader, v string) { l.cfg.Etcd3.CACert = v }},
	{"ETCD3_CERT", "etcd3.cert", func(l *loader, v string) { l.cfg.Etcd3.Cert = v }},
	{"ETCD3_KEY", "etcd3.key", func(l *loader, v string) { l.cfg.Etcd3.Key = v }},

	{"CITUS_GROUP", "citus.group", func(l *loader, v string) {
		g, err := toInt64(strings.TrimSpace(v))
		if err != nil || g < 0 || g > 1<<30 {
			l.errorf("citus.group", "expected a group number, got %q", v)
			return
		}
		l.citus().Group = int(g)
		l.citusGroupSet = true
	}},
	{"CITUS_DATABASE", "citus.database", func(l *loader, v string) { l.citus().Database = strings.TrimSpace(v) }},

	{"POSTGRESQL_LISTEN", "postgresql.listen", func(l *loader, v string) { l.cfg.PostgreSQL.Listen = strings.TrimSpace(v) }},
	{"POSTGRESQL_CONNECT_ADDRESS", "postgresql.connect_address", func(l *loader, v string) { l.cfg.PostgreSQL.ConnectAddress = strings.TrimSpace(v) }},
	{"POSTGRESQL_DATA_DIR", "postgresql.data_dir", func(l *loader, v string) { l.cfg.PostgreSQL.DataDir = v }},
	{"POSTGRESQL_BIN_DIR", "postgresql.bin_dir", func(l *loader, v string) { l.cfg.PostgreSQL.BinDir = v }},
	{"POSTGRESQL_PGPASS", "postgresql.pgpass", func(l *loader, v string) { l.cfg.PostgreSQL.PgPass = v }},
	{"SUPERUSER_USERNAME", "postgresql.authentication.superuser.username", func(l *loader, v string) { l.cfg.PostgreSQL.Superuser.Username = v }},
	{"SUPERUSER_PASSWORD", "postgresql.authentication.superuser.password", func(l *loader, v string) { l.cfg.PostgreSQL.Superuser.Password = v }},
	{"REPLICATION_USERNAME", "postgresql.authentication.replication.username", func(l *loader, v string) { l.cfg.PostgreSQL.Replication.Username = v }},
	{"REPLICATION_PASSWORD", "postgresql.authentication.replication.password", func(l *loader, v string) { l.cfg.PostgreSQL.Replication.Password = v }},

	{"LOG_FORMAT", "log.format", func(l *loader, v string) { l.cfg.Log.Format = strings.TrimSpace(v) }},
	{"LOG_LEVEL", "log.level", func(l *loader, v string) { l.cfg.Log.Level = strings.TrimSpace(v) }},
}

// EnvVars lists the environment variables that override settings.
func EnvVars() []string {
	names := make([]string, len(envOverrides))
	for i, o := range envOverrides {
		names[i] = EnvPrefix + o.name
	}
	return names
}

// applyEnv overrides settings from the environment. Empty values are
// ignored. Values are checked by validation, whose errors then name the
// variable.
func (l *loader) applyEnv(lookup func(string) (string, bool)) {
	if lookup == nil {
		return
	}
	for _, o := range envOverrides {
		name := EnvPrefix + o.name
		v, ok := lookup(name)
		if !ok || v == "" {
			continue
		}
		o.set(l, v)
		l.env[o.path] = name
	}
}

func (l *loader) citus() *Citus {
	if l.cfg.Citus == nil {
		l.cfg.Citus = &Citus{RegisterSecondaries: true}
	}
	return l.cfg.Citus
}

func (l *loader) restAuth() *BasicAuth {
	if l.cfg.RestAPI.Authentication == nil {
		l.cfg.RestAPI.Authentication = &BasicAuth{}
	}
	return l.cfg.RestAPI.Authentication
}
