package postgres

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

const (
	confFile     = "postgresql.conf"
	baseConfFile = "postgresql.base.conf"
	hbaFile      = "pg_hba.conf"
	autoConfFile = "postgresql.auto.conf"
	standbySig   = "standby.signal"
	recoverySig  = "recovery.signal"

	// confHeader starts every postgresql.conf pgwarden writes; its second
	// line tells our file apart from one written by initdb or an operator.
	confHeader = "include '" + baseConfFile + "'\n# Managed by pgwarden: rewritten on every (re)configuration. Do not edit;\n# set postgresql.parameters in the pgwarden configuration instead.\n"
	hbaHeader  = "# Managed by pgwarden: rewritten on every (re)configuration. Do not edit;\n# set postgresql.pg_hba in the pgwarden configuration instead.\n"
)

// confSetting is one name = value line of the managed postgresql.conf.
type confSetting struct {
	name, value string
}

// managedDefaults are the settings pgwarden writes unless Parameters says
// otherwise (listen_addresses and port are added from Settings).
var managedDefaults = []confSetting{
	{"wal_level", "logical"},
	{"max_wal_senders", "10"},
	{"max_replication_slots", "10"},
	{"hot_standby", "on"},
	{"max_standby_streaming_delay", "30s"},
	{"wal_keep_size", "128MB"},
	{"max_connections", "100"},
	// PostgreSQL 15's startup process can sleep this long after a promote
	// request while no WAL source answers (the old primary just stopped or
	// died), and a standby retries a missing replication slot this often:
	// the default 5s would be added to failovers, and 500ms was seen added
	// to a switchover's promotion (and so to the Citus worker stall). At
	// most 5 "could not connect" log lines a second while no primary runs.
	{"wal_retrieve_retry_interval", "200ms"},
	// A standby reports its flush position at least this often: commits
	// waiting for a standby that has just become synchronous (and had
	// already flushed their WAL) are released within a second, not ten.
	{"wal_receiver_status_interval", "1s"},
}

// reservedParams are never taken from Parameters: pgwarden owns them.
var reservedParams = map[string]string{
	"listen_addresses":         "comes from postgresql.listen",
	"port":                     "comes from postgresql.listen",
	"wal_log_hints":            "always on (pg_rewind needs it)",
	"primary_conninfo":         "managed by pgwarden",
	"primary_slot_name":        "managed by pgwarden (SetPrimarySlotName)",
	"recovery_target_timeline": "managed by pgwarden",
	"data_directory":           "cannot be set here",
	"config_file":              "cannot be set here",
}

// WriteConfig writes postgresql.conf, pg_hba.conf and the pgpass file, and
// creates (standby) or removes (primary) standby.signal. A standby with a
// nil upstream gets no primary_conninfo: it replays the WAL it has (and
// whatever restore_command fetches) and waits. A standby with an upstream
// also gets primary_slot_name when SetPrimarySlotName set one. Settings
// that postgresql.auto.conf would override and that are this node's own
// (see autoConfStrip) are removed from it. The data directory must exist.
// Changes take effect at the next start or reload.
func (i *Instance) WriteConfig(standby bool, upstream *ConnInfo) error {
	i.confMu.Lock()
	defer i.confMu.Unlock()
	return i.writeConfigLocked(standby, upstream)
}

func (i *Instance) writeConfigLocked(standby bool, upstream *ConnInfo) error {
	if err := i.checkAccess(); err != nil {
		return err
	}
	fi, err := os.Stat(i.s.DataDir)
	if err != nil {
		return fmt.Errorf("postgresql.data_dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("postgresql.data_dir %s is not a directory", i.s.DataDir)
	}
	if err := i.ensureBaseConf(); err != nil {
		return err
	}
	if err := i.ensureSocketDir(); err != nil {
		return err
	}
	conf, err := i.renderConf(standby, upstream)
	if err != nil {
		return err
	}
	if err := i.writeOwned(filepath.Join(i.s.DataDir, confFile), []byte(conf), 0o600); err != nil {
		return err
	}
	if err := i.writeOwned(filepath.Join(i.s.DataDir, hbaFile), []byte(i.renderHBA()), 0o600); err != nil {
		return err
	}
	if err := i.sanitizeAutoConf(); err != nil {
		return err
	}
	if err := i.writePgPass(); err != nil {
		return err
	}
	sig := filepath.Join(i.s.DataDir, standbySig)
	if standby {
		if err := i.writeOwned(sig, nil, 0o600); err != nil {
			return err
		}
	} else if err := os.Remove(sig); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	role := &configRole{standby: standby}
	if upstream != nil {
		up := *upstream
		role.upstream = &up
	}
	i.lastRole = role
	return nil
}

// SetPrimarySlotName sets the replication slot a standby streams through
// (primary_slot_name; "" for none). Nothing is written: the next
// WriteConfig (or Follow, which also reloads) applies it. PostgreSQL 13+
// applies a changed primary_slot_name on reload.
func (i *Instance) SetPrimarySlotName(name string) {
	i.confMu.Lock()
	i.primarySlot = name
	i.confMu.Unlock()
}

// autoConfStrip reports whether a setting found in postgresql.auto.conf is
// removed from it by WriteConfig: ALTER SYSTEM settings override
// postgresql.conf, and pg_rewind or pg_basebackup copy the source's
// postgresql.auto.conf, so these would carry another node's address,
// upstream or slot, or defeat what pgwarden manages.
func (i *Instance) autoConfStrip(name string) bool {
	switch name {
	case "listen_addresses", "port", "wal_log_hints",
		"primary_conninfo", "primary_slot_name", "recovery_target_timeline":
		return true
	case "synchronous_standby_names":
		return i.syncNames != nil
	}
	return false
}

var autoConfNameRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=|\s|$)`)

// sanitizeAutoConf removes the autoConfStrip settings from
// postgresql.auto.conf, when there are any; confMu must be held.
func (i *Instance) sanitizeAutoConf() error {
	path := filepath.Join(i.s.DataDir, autoConfFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var kept []string
	var removed []string
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if m := autoConfNameRE.FindStringSubmatch(line); m != nil && i.autoConfStrip(strings.ToLower(m[1])) {
			removed = append(removed, strings.TrimSpace(line))
			continue
		}
		kept = append(kept, line)
	}
	if len(removed) == 0 {
		return nil
	}
	i.log.Warn("removing node-specific settings from postgresql.auto.conf", "lines", removed)
	return i.writeOwned(path, []byte(strings.Join(kept, "")), 0o600)
}

// ensureSocketDir creates SocketDir (0700, owned by the OS user) unless
// Parameters names the socket directories.
func (i *Instance) ensureSocketDir() error {
	if i.s.SocketDir == "" {
		return nil
	}
	for k := range i.s.Parameters {
		if strings.EqualFold(k, "unix_socket_directories") {
			return nil
		}
	}
	fi, err := os.Stat(i.s.SocketDir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("socket directory %s is not a directory", i.s.SocketDir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("socket directory: %w", err)
	}
	if err := mkdirParents(i.s.SocketDir); err != nil {
		return fmt.Errorf("socket directory %s: %w", i.s.SocketDir, err)
	}
	if err := os.Mkdir(i.s.SocketDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("socket directory: %w", err)
	}
	if err := os.Chmod(i.s.SocketDir, 0o700); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	return i.chown(i.s.SocketDir)
}

// ensureBaseConf moves the postgresql.conf that initdb (or the primary we
// cloned, when it was not managed by pgwarden) wrote to postgresql.base.conf,
// once. If there is neither, an empty base file is created so that the
// include in our postgresql.conf resolves.
func (i *Instance) ensureBaseConf() error {
	base := filepath.Join(i.s.DataDir, baseConfFile)
	conf := filepath.Join(i.s.DataDir, confFile)
	if _, err := os.Stat(base); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data, err := os.ReadFile(conf)
	switch {
	case err == nil && !strings.HasPrefix(string(data), confHeader):
		if err := os.Rename(conf, base); err != nil {
			return fmt.Errorf("keeping the original configuration as %s: %w", baseConfFile, err)
		}
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return i.writeOwned(base, []byte("# Created empty by pgwarden: no original postgresql.conf was found.\n"), 0o600)
}

// renderConf returns the text of the managed postgresql.conf.
func (i *Instance) renderConf(standby bool, upstream *ConnInfo) (string, error) {
	settings := []confSetting{
		{"listen_addresses", i.s.ListenHosts},
		{"port", strconv.Itoa(i.s.Port)},
		{"unix_socket_directories", i.s.SocketDir},
	}
	settings = append(settings, managedDefaults...)
	settings = append(settings, confSetting{"wal_log_hints", "on"})

	index := make(map[string]int, len(settings))
	for k, s := range settings {
		index[s.name] = k
	}
	names := make([]string, 0, len(i.s.Parameters))
	for k := range i.s.Parameters {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		lower := strings.ToLower(name)
		if why, ok := reservedParams[lower]; ok {
			i.log.Warn("ignoring postgresql parameter", "name", name, "reason", why)
			continue
		}
		if !paramNameRE.MatchString(name) {
			return "", fmt.Errorf("invalid parameter name %q", name)
		}
		v := i.s.Parameters[name]
		if k, ok := index[lower]; ok {
			settings[k].value = v
			continue
		}
		index[lower] = len(settings)
		settings = append(settings, confSetting{lower, v})
	}
	if i.syncNames != nil {
		if k, ok := index["synchronous_standby_names"]; ok {
			settings[k].value = *i.syncNames
		} else {
			settings = append(settings, confSetting{"synchronous_standby_names", *i.syncNames})
		}
	}
	if standby {
		if upstream != nil {
			ci, err := i.primaryConninfo(*upstream)
			if err != nil {
				return "", err
			}
			settings = append(settings, confSetting{"primary_conninfo", ci})
			if i.primarySlot != "" {
				settings = append(settings, confSetting{"primary_slot_name", i.primarySlot})
			}
		}
	}
	// Written for both roles: it can only change at a restart, so
	// dropping it when a standby is promoted would leave the primary
	// reporting pending_restart for nothing (it is ignored outside
	// recovery).
	settings = append(settings, confSetting{"recovery_target_timeline", "latest"})

	var b strings.Builder
	b.WriteString(confHeader)
	if standby {
		if upstream != nil {
			fmt.Fprintf(&b, "# Role: standby of %s.\n", upstream)
		} else {
			b.WriteString("# Role: standby without upstream (replays local WAL only).\n")
		}
	} else {
		b.WriteString("# Role: primary.\n")
	}
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s.name, quoteConfValue(s.value))
	}
	return b.String(), nil
}

// primaryConninfo is the libpq connection string a standby uses to stream
// from upstream.
func (i *Instance) primaryConninfo(up ConnInfo) (string, error) {
	if up.Host == "" || up.Port <= 0 || up.Port > 65535 {
		return "", fmt.Errorf("invalid upstream %q", up.String())
	}
	kv := []confSetting{
		{"host", up.Host},
		{"port", strconv.Itoa(up.Port)},
		{"user", i.s.Replication.Username},
		{"passfile", i.s.PgPass},
		{"application_name", i.s.Name},
		{"sslmode", "prefer"},
		{"connect_timeout", "3"},
	}
	parts := make([]string, len(kv))
	for k, s := range kv {
		parts[k] = s.name + "=" + quoteConnValue(s.value)
	}
	return strings.Join(parts, " "), nil
}

// renderHBA returns pg_hba.conf: Settings.PgHBA, or the default.
func (i *Instance) renderHBA() string {
	var b strings.Builder
	b.WriteString(hbaHeader)
	if len(i.s.PgHBA) > 0 {
		for _, l := range i.s.PgHBA {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		return b.String()
	}
	repl := quoteHBAToken(i.s.Replication.Username)
	fmt.Fprintf(&b, "local all all trust\n")
	for _, net := range []string{"127.0.0.1/32", "::1/128", "0.0.0.0/0", "::/0"} {
		fmt.Fprintf(&b, "host replication %s %s scram-sha-256\n", repl, net)
	}
	for _, net := range []string{"127.0.0.1/32", "::1/128", "0.0.0.0/0", "::/0"} {
		fmt.Fprintf(&b, "host all all %s scram-sha-256\n", net)
	}
	return b.String()
}

// writePgPass writes the pgpass file with the replication and superuser
// passwords (roles without a password are left out).
func (i *Instance) writePgPass() error {
	var b strings.Builder
	seen := map[string]bool{}
	for _, c := range []Credentials{i.s.Replication, i.s.Superuser} {
		if c.Password == "" || seen[c.Username] {
			continue
		}
		seen[c.Username] = true
		fmt.Fprintf(&b, "*:*:*:%s:%s\n", escapePgPass(c.Username), escapePgPass(c.Password))
	}
	if err := mkdirParents(i.s.PgPass); err != nil {
		return fmt.Errorf("postgresql.pgpass %s: %w", i.s.PgPass, err)
	}
	return i.writeOwned(i.s.PgPass, []byte(b.String()), 0o600)
}

// writeOwned writes a file atomically (temp file + rename) with the given
// mode, owned by the OS user.
func (i *Instance) writeOwned(path string, data []byte, mode fs.FileMode) error {
	tmp := path + ".pgwarden-tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = i.chown(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// quoteConfValue quotes a value for postgresql.conf. Every GUC accepts a
// single-quoted value; inside, ' is doubled and backslash starts an escape.
func quoteConfValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return "'" + r.Replace(v) + "'"
}

// quoteConnValue quotes a value for a libpq keyword=value connection string.
func quoteConnValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// quoteLiteral quotes s as an SQL string literal, like libpq's
// PQescapeLiteral: ' is doubled, and when s contains a backslash the E”
// syntax is used with backslashes doubled, which is correct whatever
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	q := strings.ReplaceAll(s, "'", "''")
	if strings.Contains(q, `\`) {
		return ` E'` + strings.ReplaceAll(q, `\`, `\\`) + `'`
	}
	return "'" + q + "'"
}

// escapePgPass escapes a pgpass field.
func escapePgPass(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// quoteHBAToken returns a pg_hba.conf token for a role name.
func quoteHBAToken(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	switch s {
	case "all", "sameuser", "samerole", "samegroup", "replication":
		plain = false
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
