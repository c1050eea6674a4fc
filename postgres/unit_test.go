package postgres

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/testutil"
)

func TestQuoting(t *testing.T) {
	for _, c := range []struct{ fn, in, want string }{
		{"conf", `plain`, `'plain'`},
		{"conf", `it's \ here`, `'it''s \\ here'`},
		{"conf", "a\nb", `'a\nb'`},
		{"conn", `it's \ here`, `'it\'s \\ here'`},
		{"lit", `it's`, `'it''s'`},
		{"lit", `a\b'c`, ` E'a\\b''c'`},
		{"pgpass", `a:b\c`, `a\:b\\c`},
		{"hba", "replicator", "replicator"},
		{"hba", "repl user", `"repl user"`},
		{"hba", "all", `"all"`},
		{"hba", `Odd"Name`, `"Odd""Name"`},
	} {
		var got string
		switch c.fn {
		case "conf":
			got = quoteConfValue(c.in)
		case "conn":
			got = quoteConnValue(c.in)
		case "lit":
			got = quoteLiteral(c.in)
		case "pgpass":
			got = escapePgPass(c.in)
		case "hba":
			got = quoteHBAToken(c.in)
		}
		if got != c.want {
			t.Errorf("%s(%q) = %q, want %q", c.fn, c.in, got, c.want)
		}
	}
}

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/0", "0/3000060", "1/FF", "FFFFFFFF/FFFFFFFF"} {
		n, err := parseLSN(s)
		if err != nil {
			t.Fatalf("parseLSN(%s): %v", s, err)
		}
		if FormatLSN(n) != s {
			t.Errorf("FormatLSN(parseLSN(%s)) = %s", s, FormatLSN(n))
		}
	}
	if n, _ := parseLSN("1/2"); n != 1<<32|2 {
		t.Errorf("parseLSN(1/2) = %d", n)
	}
	for _, s := range []string{"", "3000060", "x/1", "1/"} {
		if _, err := parseLSN(s); err == nil {
			t.Errorf("parseLSN(%q): no error", s)
		}
	}
}

func TestParseHistory(t *testing.T) {
	h := "1\t0/3000060\tno recovery target specified\n\n# comment\n2\t0/5000000\tat restore point \"x\"\n"
	for _, c := range []struct {
		tli   int
		lsn   string
		found bool
	}{{1, "0/3000060", true}, {2, "0/5000000", true}, {3, "", false}} {
		lsn, found, err := parseHistory(h, c.tli)
		if err != nil || found != c.found || (found && FormatLSN(lsn) != c.lsn) {
			t.Errorf("parseHistory(%d) = %s, %v, %v", c.tli, FormatLSN(lsn), found, err)
		}
	}
	if _, _, err := parseHistory("1\n", 1); err == nil {
		t.Error("malformed history: no error")
	}
}

func TestParseControlData(t *testing.T) {
	out := `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7313467760759003774
Database cluster state:               shut down in recovery
pg_control last modified:             Sun 29 Nov 2026 05:54:25 AM UTC
Latest checkpoint location:           0/4000060
Latest checkpoint's REDO location:    0/4000028
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   1
Minimum recovery ending location:     0/5000110
Min recovery ending loc's timeline:   2
`
	cd, err := parseControlData(out)
	if err != nil {
		t.Fatal(err)
	}
	want := ControlData{SystemID: "7313467760759003774", State: "shut down in recovery",
		CheckpointLSN: 0x4000060, CheckpointTLI: 2, MinRecoveryLSN: 0x5000110, MinRecoveryTLI: 2}
	if cd != want {
		t.Fatalf("got %+v\nwant %+v", cd, want)
	}
	if _, err := parseControlData("garbage"); err == nil {
		t.Fatal("garbage: no error")
	}
}

func TestNewDefaults(t *testing.T) {
	dir := testutil.WorldTempDir(t, "pgw-*")
	inst, err := New(Settings{Name: "n1", DataDir: filepath.Join(dir, "a", "..", "data"), ListenHosts: "*",
		Parameters: map[string]string{"work_mem": "8MB"}})
	if err != nil {
		t.Fatal(err)
	}
	s := inst.Settings()
	if s.DataDir != filepath.Join(dir, "data") || s.BinDir != DefaultBinDir || s.Port != 5432 ||
		s.ConnectHost != "127.0.0.1" || s.Superuser.Username != "postgres" || s.Replication.Username != "replicator" ||
		s.OSUser != "postgres" || s.PgPass != filepath.Join(dir, "pgpass.n1") || s.LogFile != filepath.Join(dir, "postgresql.n1.log") {
		t.Fatalf("defaults: %+v", s)
	}
	s.Parameters["work_mem"] = "1GB"
	if inst.Settings().Parameters["work_mem"] != "8MB" {
		t.Fatal("Settings() shares the parameter map")
	}
	if c := defaultConnectHost("10.0.0.1, 10.0.0.2"); c != "10.0.0.1" {
		t.Fatalf("defaultConnectHost = %s", c)
	}
	for _, bad := range []Settings{
		{DataDir: "/tmp/x"},
		{Name: "a/b", DataDir: "/tmp/x"},
		{Name: "a"},
		{Name: "a", DataDir: "/tmp/x", Port: 70000},
		{Name: "a", DataDir: "/tmp/x", Parameters: map[string]string{"bad name": "1"}},
		{Name: "a", DataDir: "/tmp/x", PgHBA: []string{"local all all trust\nhost all all 0.0.0.0/0 trust"}},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v): no error", bad)
		}
	}
	for in, want := range map[string]string{"data-checksums": "--data-checksums", "encoding=UTF8": "--encoding=UTF8",
		"-k": "-k", "--locale=C": "--locale=C", "k": "-k"} {
		if got := normalizeInitdbOption(in); got != want {
			t.Errorf("normalizeInitdbOption(%s) = %s", in, got)
		}
	}
}

// TestWriteConfig checks the files WriteConfig produces, without a server.
func TestWriteConfig(t *testing.T) {
	dir := testutil.WorldTempDir(t, "pgw-*")
	data := filepath.Join(dir, "data")
	inst, err := New(Settings{
		Name: "m1", DataDir: data, ListenHosts: "127.0.0.1,10.0.0.1", Port: 6543,
		Superuser:   Credentials{"postgres", "s:p"},
		Replication: Credentials{"replicator", "r'p"},
		Parameters: map[string]string{
			"max_connections": "42", "Port": "1", "wal_log_hints": "off", "work_mem": "4MB",
			"unix_socket_directories": "/run/x", "primary_conninfo": "host=evil",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteConfig(false, nil); err == nil {
		t.Fatal("WriteConfig without a data directory: no error")
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	original := "# initdb's file\nshared_buffers = 128MB\n"
	if err := os.WriteFile(filepath.Join(data, confFile), []byte(original), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	exists := func(path string) bool {
		_, err := os.Stat(path)
		return err == nil
	}

	up := ConnInfo{Host: "10.1.2.3", Port: 5433}
	if err := inst.WriteConfig(true, &up); err != nil {
		t.Fatal(err)
	}
	if read(baseConfFile) != original {
		t.Fatal("postgresql.base.conf is not the original postgresql.conf")
	}
	conf := read(confFile)
	if !strings.HasPrefix(conf, "include 'postgresql.base.conf'\n") {
		t.Fatalf("first line:\n%s", conf)
	}
	for _, want := range []string{
		"listen_addresses = '127.0.0.1,10.0.0.1'\n",
		"port = '6543'\n",
		"unix_socket_directories = '/run/x'\n",
		"wal_level = 'logical'\n",
		"wal_log_hints = 'on'\n",
		"hot_standby = 'on'\n",
		"max_connections = '42'\n",
		"work_mem = '4MB'\n",
		"recovery_target_timeline = 'latest'\n",
		"primary_conninfo = 'host=''10.1.2.3'' port=''5433'' user=''replicator'' passfile=''" + filepath.Join(dir, "pgpass.m1") + "'' application_name=''m1'' sslmode=''prefer'' connect_timeout=''3'''\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("postgresql.conf lacks %q:\n%s", want, conf)
		}
	}
	for _, bad := range []string{"max_connections = '100'", "port = '1'", "wal_log_hints = 'off'", "evil"} {
		if strings.Contains(conf, bad) {
			t.Errorf("postgresql.conf has %q:\n%s", bad, conf)
		}
	}
	if !exists(filepath.Join(data, standbySig)) {
		t.Fatal("no standby.signal")
	}
	hba := read(hbaFile)
	if !strings.Contains(hba, "host replication replicator 0.0.0.0/0 scram-sha-256\n") || !strings.Contains(hba, "local all all trust\n") {
		t.Fatalf("pg_hba.conf:\n%s", hba)
	}
	pgpass, err := os.ReadFile(filepath.Join(dir, "pgpass.m1"))
	if err != nil || string(pgpass) != "*:*:*:replicator:r'p\n*:*:*:postgres:s\\:p\n" {
		t.Fatalf("pgpass = %q, %v", pgpass, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "pgpass.m1"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pgpass mode: %v %v", fi.Mode(), err)
	}
	if os.Geteuid() == 0 {
		for _, p := range []string{filepath.Join(dir, "pgpass.m1"), filepath.Join(data, confFile), filepath.Join(data, hbaFile), filepath.Join(data, standbySig)} {
			fi, err := os.Stat(p)
			if err != nil || fi.Sys().(*syscall.Stat_t).Uid != inst.runAs.uid {
				t.Fatalf("%s is not owned by the OS user", p)
			}
		}
	}

	// Again, as a primary: the base file stays, standby bits go away.
	if err := inst.WriteConfig(false, nil); err != nil {
		t.Fatal(err)
	}
	if read(baseConfFile) != original {
		t.Fatal("postgresql.base.conf was overwritten")
	}
	conf = read(confFile)
	if strings.Contains(conf, "primary_conninfo") || !strings.Contains(conf, "recovery_target_timeline = 'latest'") {
		t.Fatalf("primary's postgresql.conf (no primary_conninfo; recovery_target_timeline kept so that a promotion leaves nothing pending):\n%s", conf)
	}
	if exists(filepath.Join(data, standbySig)) {
		t.Fatal("standby.signal left behind")
	}

	// A standby without an upstream.
	if err := inst.WriteConfig(true, nil); err != nil {
		t.Fatal(err)
	}
	conf = read(confFile)
	if strings.Contains(conf, "primary_conninfo") || !strings.Contains(conf, "recovery_target_timeline = 'latest'") {
		t.Fatalf("standby without upstream:\n%s", conf)
	}

	// Lost base file with our postgresql.conf in place: an empty one appears.
	if err := os.Remove(filepath.Join(data, baseConfFile)); err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteConfig(false, nil); err != nil {
		t.Fatal(err)
	}
	if b := read(baseConfFile); strings.Contains(b, "include") || strings.Contains(b, "shared_buffers") {
		t.Fatalf("recreated base file:\n%s", b)
	}

	// Custom pg_hba lines are written verbatim.
	custom := inst.Settings()
	custom.PgHBA = []string{"local all all peer", "host all all 10.0.0.0/8 md5"}
	ci, err := New(custom)
	if err != nil {
		t.Fatal(err)
	}
	if err := ci.WriteConfig(false, nil); err != nil {
		t.Fatal(err)
	}
	if hba := read(hbaFile); !strings.HasSuffix(hba, "local all all peer\nhost all all 10.0.0.0/8 md5\n") || strings.Contains(hba, "scram") {
		t.Fatalf("custom pg_hba.conf:\n%s", hba)
	}
	if err := ci.WriteConfig(true, &ConnInfo{Host: "", Port: 1}); err == nil {
		t.Fatal("empty upstream host: no error")
	}
}

// TestBasebackupFailureCleansUp: a failed clone leaves an empty data dir
// and says why.
func TestBasebackupFailureCleansUp(t *testing.T) {
	inst := newTestInstance(t, "clone", nil)
	nobody := ConnInfo{Host: "127.0.0.1", Port: testutil.FreePort(t)}
	err := inst.Basebackup(context.Background(), nobody)
	if err == nil || !strings.Contains(err.Error(), "pg_basebackup") || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Basebackup from nowhere: %v", err)
	}
	t.Logf("Basebackup from nowhere: %v", err)
	if empty, err := inst.DataDirEmpty(); err != nil || !empty {
		t.Fatalf("DataDirEmpty after a failed basebackup = %v, %v", empty, err)
	}
	if _, err := os.Stat(inst.s.DataDir); err != nil {
		t.Fatalf("data dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(inst.s.DataDir, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := inst.Basebackup(context.Background(), nobody); !errors.Is(err, ErrDataDirNotEmpty) {
		t.Fatalf("Basebackup into a non-empty dir: %v", err)
	}
	if err := inst.Start(context.Background(), time.Second); err == nil || !strings.Contains(err.Error(), "does not hold a cluster") {
		t.Fatalf("Start without a cluster: %v", err)
	}
}

func TestSetParameters(t *testing.T) {
	dir := testutil.WorldTempDir(t, "pgw-*")
	data := filepath.Join(dir, "data")
	inst, err := New(Settings{Name: "sp", DataDir: data, Parameters: map[string]string{"work_mem": "4MB"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.SetParameters(map[string]string{"bad name": "x"}); err == nil {
		t.Fatal("invalid name: no error")
	}
	params := map[string]string{"work_mem": "64MB"}
	if err := inst.SetParameters(params); err != nil {
		t.Fatal(err)
	}
	params["work_mem"] = "1MB" // the instance keeps its own copy
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := inst.WriteConfig(false, nil); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(data, confFile))
	if err != nil || !strings.Contains(string(conf), "work_mem = '64MB'\n") {
		t.Fatalf("postgresql.conf after SetParameters (%v):\n%s", err, conf)
	}
	if inst.Settings().Parameters["work_mem"] != "64MB" {
		t.Fatal("Settings() does not show the new parameters")
	}
}

func TestLastLogLine(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "pg.log")
	body := "a\nLOG:  started streaming WAL from primary\nFATAL:  could not receive data from WAL stream: ERROR:  requested WAL segment 000000010000000000000003 has already been removed\nLOG: waiting\n"
	if err := os.WriteFile(log, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	i := &Instance{s: Settings{LogFile: log}}
	got, err := i.LastLogLine("started streaming", WALGoneMarker)
	if err != nil || !strings.Contains(got, "000000010000000000000003") {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := os.WriteFile(log, []byte(body+"LOG:  started streaming WAL from primary at 0/4000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := i.LastLogLine("started streaming", WALGoneMarker); got != "" {
		t.Fatalf("a line before the last start of streaming was reported: %q", got)
	}
}
