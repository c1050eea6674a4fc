package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBinDir is where the PostgreSQL binaries are looked for when
// Settings.BinDir is empty.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// DefaultOSUser is the OS user PostgreSQL runs as when pgwarden runs as root.
const DefaultOSUser = "postgres"

// Credentials are a PostgreSQL role's name and password.
type Credentials struct {
	Username string
	Password string
}

// Settings describe the local instance.
type Settings struct {
	Name          string // member name: application_name on standbys
	DataDir       string
	BinDir        string // default /usr/lib/postgresql/15/bin when empty
	ListenHosts   string // listen_addresses value, e.g. "127.0.0.1" or "127.0.0.1,127.0.0.2"
	Port          int
	ConnectHost   string // how this member is reached by others (and by us, over TCP)
	Superuser     Credentials
	Replication   Credentials
	Parameters    map[string]string // bootstrap.dcs.postgresql.parameters overlaid by postgresql.parameters
	PgHBA         []string          // lines; nil: a default allowing the replication user and the superuser by password
	PgPass        string            // path of the 0600 pgpass file to write; default <data_dir>/../pgpass.<name>
	InitdbOptions []string          // e.g. ["--data-checksums", "--encoding=UTF8"] (without leading dashes allowed too)
	OSUser        string            // when running as root: the OS user that runs postgres (default "postgres")
	Logger        *slog.Logger

	// SocketDir is the directory of the server's Unix socket
	// (unix_socket_directories, unless Parameters sets that); default
	// <data_dir>/../socket.<name>, created 0700 by WriteConfig. It is kept
	// outside the data directory because pg_rewind fails on a source whose
	// data directory holds a socket. When the default path would be too
	// long for a Unix socket, no Unix socket is used.
	SocketDir string

	// LogFile is the file pg_ctl -l appends the server's stderr to; default
	// <data_dir>/../postgresql.<name>.log. It is kept outside the data
	// directory so that pg_basebackup and pg_rewind do not copy it around.
	LogFile string
}

// ConnInfo is how to reach another member's PostgreSQL.
type ConnInfo struct {
	Host string
	Port int
}

func (c ConnInfo) String() string { return fmt.Sprintf("%s:%d", c.Host, c.Port) }

// State is what one observation of the local instance says.
type State struct {
	Running        bool // postmaster alive (pid file + signal 0)
	Accepting      bool // a query succeeded
	InRecovery     bool
	Timeline       int
	WALPosition    int64 // primary: pg_current_wal_lsn; standby: max(received, replayed)
	ReceivedLSN    int64 // standby only, 0 when none
	ReplayedLSN    int64 // standby only
	ReplayedTime   time.Time
	ReplayPaused   bool
	Streaming      bool   // standby: wal receiver status = streaming
	UpstreamHost   string // standby: host/port from pg_stat_wal_receiver (conninfo), "" when none
	UpstreamPort   int
	SystemID       string
	ServerVersion  int
	StartTime      time.Time
	Replication    []Replica // primary: pg_stat_replication
	PendingRestart bool
}

// Replica is a row of pg_stat_replication.
type Replica struct {
	Usename         string `json:"usename"`
	ApplicationName string `json:"application_name"`
	ClientAddr      string `json:"client_addr"`
	State           string `json:"state"`
	SyncState       string `json:"sync_state"`
	SyncPriority    int    `json:"sync_priority"`
	// WAL positions the standby reported (0 when it reported none yet).
	WriteLSN  int64 `json:"write_lsn"`
	FlushLSN  int64 `json:"flush_lsn"`
	ReplayLSN int64 `json:"replay_lsn"`
}

// Slot is a row of pg_replication_slots.
type Slot struct {
	Name              string
	Type              string // "physical" or "logical"
	Active            bool
	ActivePID         int   // walsender (or logical decoding backend) using it, 0 when inactive
	RestartLSN        int64 // 0 when the slot reserves no WAL
	ConfirmedFlushLSN int64 // logical slots only, 0 otherwise
}

// TimelineHistoryLine is one line of a timeline history file: Timeline
// ended at LSN (where its successor branched off) for Reason.
type TimelineHistoryLine struct {
	Timeline int
	LSN      int64
	Reason   string
}

// ControlData is the subset of pg_controldata the HA loop needs.
type ControlData struct {
	SystemID       string
	State          string // "in production", "shut down", "shut down in recovery", "in archive recovery", "in crash recovery"
	CheckpointLSN  int64  // "Latest checkpoint location"
	CheckpointTLI  int    // "Latest checkpoint's TimeLineID"
	MinRecoveryLSN int64
	MinRecoveryTLI int
	// DataChecksumVersion is "Data page checksum version": 0 without
	// data checksums.
	DataChecksumVersion int
	// WALLogHints is "wal_log_hints setting" as of the server's last run.
	WALLogHints bool
}

// Errors callers may want to tell apart (use errors.Is).
var (
	// ErrStartTimeout: pg_ctl start gave up waiting, but the postmaster is
	// still running (for example a standby that has not reached a consistent
	// state yet). It is left running.
	ErrStartTimeout = errors.New("postgres did not become ready in time")
	// ErrNotInHistory: TimelineSwitchpoint was asked about a timeline that is
	// not an ancestor of the upstream's current timeline.
	ErrNotInHistory = errors.New("timeline is not in the upstream's history")
	// ErrDataDirNotEmpty: Initdb or Basebackup found files in the data directory.
	ErrDataDirNotEmpty = errors.New("data directory is not empty")
	// ErrRewindFailed: Rewind did not complete. Unless the error also
	// wraps ErrRewindSourceUnavailable, pg_rewind ran and may have changed
	// the data directory: it must not be started as a primary, and
	// reinitializing it is the way out if retrying does not help.
	ErrRewindFailed = errors.New("pg_rewind failed")
	// ErrRewindSourceUnavailable (always together with ErrRewindFailed):
	// the rewind source could not be reached or queried before pg_rewind
	// was started; the data directory was not touched.
	ErrRewindSourceUnavailable = errors.New("rewind source unavailable")
	// ErrRunning: the operation needs a stopped instance.
	ErrRunning = errors.New("postgres is running")
)

// Instance manages one local PostgreSQL data directory. Its methods may be
// called from several goroutines; database round trips are serialized.
type Instance struct {
	s     Settings
	log   *slog.Logger
	runAs *osAccount // nil: run binaries as ourselves

	connMu sync.Mutex // guards conn
	conn   *pgx.Conn

	confMu sync.Mutex // serializes WriteConfig; guards s.Parameters and the fields below
	// primarySlot is primary_slot_name for a standby ("" none).
	primarySlot string
	// syncNames, when non-nil, is synchronous_standby_names (it wins over
	// Parameters).
	syncNames *string
	// lastRole is what the last WriteConfig was asked to write, so that
	// SetSynchronousStandbyNames can rewrite the same configuration.
	lastRole *configRole
}

// configRole is the arguments of a WriteConfig.
type configRole struct {
	standby  bool
	upstream *ConnInfo
}

var paramNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// New validates s, fills in defaults and, when running as root, looks up
// the OS user PostgreSQL will run as and checks that the directories that
// already exist on the way to the data directory (and to the pgpass and log
// files) are traversable by it. It does not create or change anything.
func New(s Settings) (*Instance, error) {
	if s.Name == "" {
		return nil, errors.New("postgres: member name is empty")
	}
	if s.Name == "." || s.Name == ".." || strings.ContainsFunc(s.Name, func(r rune) bool { return r == '/' || r < ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("postgres: member name %q cannot be used in a file name", s.Name)
	}
	if s.DataDir == "" {
		return nil, errors.New("postgresql.data_dir is empty")
	}
	dd, err := filepath.Abs(s.DataDir)
	if err != nil {
		return nil, fmt.Errorf("postgresql.data_dir %s: %w", s.DataDir, err)
	}
	if dd == "/" {
		return nil, errors.New("postgresql.data_dir must not be /")
	}
	s.DataDir = dd
	if s.BinDir == "" {
		s.BinDir = DefaultBinDir
	}
	if s.Port == 0 {
		s.Port = 5432
	}
	if s.Port < 1 || s.Port > 65535 {
		return nil, fmt.Errorf("postgres: port %d out of range", s.Port)
	}
	s.ListenHosts = strings.TrimSpace(s.ListenHosts)
	if s.ListenHosts == "" {
		s.ListenHosts = "127.0.0.1"
	}
	if s.ConnectHost == "" {
		s.ConnectHost = defaultConnectHost(s.ListenHosts)
	}
	if s.Superuser.Username == "" {
		s.Superuser.Username = "postgres"
	}
	if s.Replication.Username == "" {
		s.Replication.Username = "replicator"
	}
	if s.OSUser == "" {
		s.OSUser = DefaultOSUser
	}
	if s.PgPass == "" {
		s.PgPass = filepath.Join(filepath.Dir(s.DataDir), "pgpass."+s.Name)
	} else if s.PgPass, err = filepath.Abs(s.PgPass); err != nil {
		return nil, fmt.Errorf("postgresql.pgpass: %w", err)
	}
	if s.LogFile == "" {
		s.LogFile = filepath.Join(filepath.Dir(s.DataDir), "postgresql."+s.Name+".log")
	} else if s.LogFile, err = filepath.Abs(s.LogFile); err != nil {
		return nil, fmt.Errorf("postgres: log file: %w", err)
	}
	// sun_path holds 107 bytes and a NUL.
	const maxSocketDir = 107 - len("/.s.PGSQL.65535")
	if s.SocketDir == "" {
		s.SocketDir = filepath.Join(filepath.Dir(s.DataDir), "socket."+s.Name)
		if len(s.SocketDir) > maxSocketDir {
			s.SocketDir = ""
		}
	} else if s.SocketDir, err = filepath.Abs(s.SocketDir); err != nil {
		return nil, fmt.Errorf("postgres: socket directory: %w", err)
	} else if len(s.SocketDir) > maxSocketDir {
		return nil, fmt.Errorf("postgres: socket directory %s is too long for a Unix socket path", s.SocketDir)
	}
	if s.Parameters, err = copyParameters(s.Parameters); err != nil {
		return nil, err
	}
	for _, l := range s.PgHBA {
		if strings.ContainsAny(l, "\n\r") {
			return nil, fmt.Errorf("postgresql.pg_hba: line %q contains a line break", l)
		}
	}
	s.PgHBA = append([]string(nil), s.PgHBA...)
	s.InitdbOptions = append([]string(nil), s.InitdbOptions...)

	i := &Instance{s: s, log: s.Logger}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() == 0 {
		acct, err := lookupAccount(s.OSUser)
		if err != nil {
			return nil, err
		}
		i.runAs = acct
		if err := i.checkAccess(); err != nil {
			return nil, err
		}
	}
	return i, nil
}

// defaultConnectHost picks the first concrete listen address, or loopback
// when PostgreSQL listens on a wildcard.
func defaultConnectHost(listen string) string {
	first := strings.TrimSpace(strings.Split(listen, ",")[0])
	switch first {
	case "", "*", "0.0.0.0", "::":
		return "127.0.0.1"
	}
	return first
}

// copyParameters validates parameter names and returns a private copy.
func copyParameters(in map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if !paramNameRE.MatchString(k) {
			return nil, fmt.Errorf("postgresql.parameters: invalid parameter name %q", k)
		}
		out[k] = v
	}
	return out, nil
}

// SetParameters replaces Settings.Parameters (after a configuration
// reload). Nothing is written: the next WriteConfig uses them, and a
// Reload (or restart, for some) makes PostgreSQL apply them.
func (i *Instance) SetParameters(params map[string]string) error {
	p, err := copyParameters(params)
	if err != nil {
		return err
	}
	i.confMu.Lock()
	i.s.Parameters = p
	i.confMu.Unlock()
	return nil
}

// Settings returns the settings with defaults filled in.
func (i *Instance) Settings() Settings {
	i.confMu.Lock()
	defer i.confMu.Unlock()
	s := i.s
	s.Parameters = make(map[string]string, len(i.s.Parameters))
	for k, v := range i.s.Parameters {
		s.Parameters[k] = v
	}
	s.PgHBA = append([]string(nil), i.s.PgHBA...)
	s.InitdbOptions = append([]string(nil), i.s.InitdbOptions...)
	return s
}

// Close closes the observation connection. The instance stays usable; the
// next query reconnects.
func (i *Instance) Close() {
	i.connMu.Lock()
	defer i.connMu.Unlock()
	i.dropConnLocked()
}
