package config

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is one node's YAML file (Patroni's layout).
type Config struct {
	Scope     string
	Namespace string // default "/service/"; always starts and ends with "/"
	Name      string

	RestAPI    RestAPI
	Etcd3      Etcd3
	Bootstrap  Bootstrap
	PostgreSQL PostgreSQL
	Tags       Tags
	Log        Log
	// Citus is the citus section; nil when absent (not a Citus cluster).
	Citus *Citus

	// Unsupported lists Patroni keys that were present in the file and are
	// accepted but not implemented yet (dotted paths, e.g. "watchdog"), in
	// the order met.
	Unsupported []string
	// Path is the file the config was loaded from ("" when parsed from bytes).
	Path string
}

// Citus places this node in a Citus cluster (Patroni's citus section).
type Citus struct {
	Group    int    // 0: the coordinator group; 1..N: worker groups
	Database string // the database holding the citus extension
	// RegisterSecondaries registers every streaming standby as a
	// noderole 'secondary' row of pg_dist_node (default true).
	RegisterSecondaries bool
	// StandinSQL, for tests only: do not load or create the real Citus
	// extension; instead run this SQL file in Database at bootstrap. It
	// must create a stand-in of the coordinator catalogue (pg_dist_node and
	// the citus_* functions pgwarden calls). pgwarden's CI uses one because
	// Debian has no Citus package.
	StandinSQL string
}

// IsCoordinator reports whether the node is in the coordinator group.
func (c *Citus) IsCoordinator() bool { return c != nil && c.Group == 0 }

type RestAPI struct {
	Listen         string // "127.0.0.1:8008"
	ConnectAddress string // default: Listen
	Authentication *BasicAuth
}

type BasicAuth struct {
	Username string
	Password string
}

type Etcd3 struct {
	Hosts    []string // "host:port" each; from etcd3.url, etcd3.host, etcd3.hosts (list or comma-separated string)
	Protocol string   // "http" (default) or "https"
	Username string
	Password string
	CACert   string
	Cert     string
	Key      string
}

// Endpoints returns the etcd URLs ("http://host:port").
func (e Etcd3) Endpoints() []string {
	proto := e.Protocol
	if proto == "" {
		proto = DefaultProtocol
	}
	out := make([]string, len(e.Hosts))
	for i, h := range e.Hosts {
		out[i] = proto + "://" + h
	}
	return out
}

type Bootstrap struct {
	DCS    Dynamic
	Initdb []string // normalized to command-line options: "--data-checksums", "--encoding=UTF8"
	PgHBA  []string
}

// Dynamic is the dynamic configuration (bootstrap.dcs, later the config key).
type Dynamic struct {
	TTL                  time.Duration // default 30s
	LoopWait             time.Duration // default 10s
	RetryTimeout         time.Duration // default 10s
	MaximumLagOnFailover int64         // bytes, default 1048576
	Parameters           map[string]string

	SynchronousMode       bool
	SynchronousModeStrict bool
	SynchronousNodeCount  int           // default 1
	UseSlots              bool          // postgresql.use_slots, default true
	UsePgRewind           bool          // postgresql.use_pg_rewind, default true (Patroni: false)
	MemberSlotsTTL        time.Duration // default 30 min
	Slots                 map[string]PermanentSlot
	Pause                 bool
	CheckTimeline         bool // a standby on an older timeline than the history key's may not be promoted
	// Raw is the whole bootstrap.dcs mapping as plain Go values
	// (map[string]any, []any, string, int, float64, bool), ints as int.
	Raw map[string]any
}

type PostgreSQL struct {
	Listen         string // "127.0.0.1:5432"; hosts may be comma-separated
	ConnectAddress string // default: first listen host + port
	DataDir        string
	BinDir         string // default "/usr/lib/postgresql/15/bin"
	PgPass         string
	Superuser      Credentials // username default "postgres"
	Replication    Credentials // username default "replicator"
	Parameters     map[string]string
	PgHBA          []string
	OSUser         string // pgwarden key postgresql.os_user: run postgres as this OS user when root (default "postgres")

	// UsePgRewind and UseSlots, when set, override the dynamic
	// configuration's postgresql.use_pg_rewind / use_slots on this node.
	UsePgRewind *bool
	UseSlots    *bool
	// RemoveDataDirectoryOnRewindFailure and ...OnDivergedTimelines allow
	// deleting the data directory to clone it again when pg_rewind failed
	// or cannot be used; without them such a member stays stopped.
	RemoveDataDirectoryOnRewindFailure     bool
	RemoveDataDirectoryOnDivergedTimelines bool
}

type Credentials struct {
	Username string
	Password string
}

type Tags struct {
	NoFailover    bool
	NoLoadBalance bool
	CloneFrom     bool
	NoSync        bool
	// Raw holds every tag as written (including custom ones), for the member key.
	Raw map[string]any
}

type Log struct {
	Format string // "text" (default) or "json"
	Level  string // "info" (default), "debug", "warn", "error"
}

// Load reads the file at path, applies the PGWARDEN_* environment overrides
// of the process and validates the result.
func Load(path string) (*Config, error) {
	return LoadWithEnv(path, os.LookupEnv)
}

// LoadWithEnv is Load with the environment read through lookup (nil: no
// overrides).
func LoadWithEnv(path string, lookup func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseWithEnv(data, path, lookup)
}

// Parse parses and validates a configuration without environment
// overrides. filename is only used in error messages and Config.Path.
func Parse(data []byte, filename string) (*Config, error) {
	return ParseWithEnv(data, filename, nil)
}

// ParseWithEnv parses a configuration, overrides settings from the
// environment variables listed by EnvVars, read through lookup (nil: none),
// fills in defaults and validates. All problems found are returned, as
// *FieldError values joined together.
func ParseWithEnv(data []byte, filename string, lookup func(string) (string, bool)) (*Config, error) {
	l := newLoader(filename)
	if l.parseYAML(data) {
		l.decode()
	}
	if len(l.errs) > 0 {
		return nil, joinErrors(l.errs)
	}
	l.applyEnv(lookup)
	l.finish()
	if len(l.errs) > 0 {
		return nil, joinErrors(l.errs)
	}
	return l.cfg, nil
}

// PostgresPort is the port of postgresql.listen.
func (c *Config) PostgresPort() int {
	_, port, err := parseListen(c.PostgreSQL.Listen)
	if err != nil {
		return 0
	}
	return port
}

// PostgresListenHosts is the listen_addresses value for postgresql.listen:
// its hosts, comma-separated.
func (c *Config) PostgresListenHosts() string {
	hosts, _, err := parseListen(c.PostgreSQL.Listen)
	if err != nil {
		return ""
	}
	return strings.Join(hosts, ",")
}

// PostgresConnectHost is the host of postgresql.connect_address, without
// IPv6 brackets.
func (c *Config) PostgresConnectHost() string {
	host, _, err := splitHostPort(c.PostgreSQL.ConnectAddress)
	if err != nil {
		return ""
	}
	return host
}

// PostgresConnectPort is the port of postgresql.connect_address.
func (c *Config) PostgresConnectPort() int {
	_, port, err := splitHostPort(c.PostgreSQL.ConnectAddress)
	if err != nil {
		return 0
	}
	return port
}

// RestAPIConnectURL is the URL other nodes use to reach this node's REST
// API, as published in the member key: "http://host:port/patroni".
func (c *Config) RestAPIConnectURL() string {
	host, port, err := splitHostPort(c.RestAPI.ConnectAddress)
	if err != nil {
		return ""
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/patroni"
}

// MergedParameters returns the PostgreSQL parameters in effect: the dynamic
// ones overlaid by the local postgresql.parameters. The result is a new map.
func (c *Config) MergedParameters(dynamic Dynamic) map[string]string {
	out := make(map[string]string, len(dynamic.Parameters)+len(c.PostgreSQL.Parameters))
	for k, v := range dynamic.Parameters {
		out[k] = v
	}
	for k, v := range c.PostgreSQL.Parameters {
		out[k] = v
	}
	return out
}
