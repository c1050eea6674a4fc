package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFullPatroniFile(t *testing.T) {
	c, err := LoadWithEnv("testdata/patroni-full.yml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Scope", c.Scope, "batman"},
		{"Namespace", c.Namespace, "/db/"},
		{"Name", c.Name, "postgresql0"},
		{"Path", c.Path, "testdata/patroni-full.yml"},
		{"RestAPI.Listen", c.RestAPI.Listen, "0.0.0.0:8008"},
		{"RestAPI.ConnectAddress", c.RestAPI.ConnectAddress, "10.0.0.10:8008"},
		{"RestAPI.Authentication", *c.RestAPI.Authentication, BasicAuth{"username", "password"}},
		{"RestAPIConnectURL", c.RestAPIConnectURL(), "http://10.0.0.10:8008/patroni"},
		{"Etcd3.Hosts", c.Etcd3.Hosts, []string{"10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"}},
		{"Etcd3.Endpoints", c.Etcd3.Endpoints(), []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"}},
		{"Etcd3.Protocol", c.Etcd3.Protocol, "https"},
		{"Etcd3.Username", c.Etcd3.Username, "patroni"},
		{"Etcd3.Password", c.Etcd3.Password, "etcdpass"},
		{"Etcd3.CACert", c.Etcd3.CACert, "/etc/etcd/ca.crt"},
		{"Etcd3.Cert", c.Etcd3.Cert, "/etc/etcd/client.crt"},
		{"Etcd3.Key", c.Etcd3.Key, "/etc/etcd/client.key"},
		{"Log", c.Log, Log{Format: "json", Level: "warn"}},
		{"DCS.TTL", c.Bootstrap.DCS.TTL, 30 * time.Second},
		{"DCS.LoopWait", c.Bootstrap.DCS.LoopWait, 10 * time.Second},
		{"DCS.RetryTimeout", c.Bootstrap.DCS.RetryTimeout, 10 * time.Second},
		{"DCS.MaximumLagOnFailover", c.Bootstrap.DCS.MaximumLagOnFailover, int64(1048576)},
		{"DCS.Parameters", c.Bootstrap.DCS.Parameters, map[string]string{
			"wal_level": "hot_standby", "hot_standby": "on", "max_connections": "100",
			"checkpoint_completion_target": "0.9", "wal_log_hints": "on", "archive_mode": "off",
		}},
		{"DCS.Raw.synchronous_mode", c.Bootstrap.DCS.Raw["synchronous_mode"], false},
		{"DCS.Raw.ttl", c.Bootstrap.DCS.Raw["ttl"], 30},
		{"DCS.Raw.postgresql.use_slots", c.Bootstrap.DCS.Raw["postgresql"].(map[string]any)["use_slots"], true},
		{"DCS.Raw.parameters.checkpoint_completion_target",
			c.Bootstrap.DCS.Raw["postgresql"].(map[string]any)["parameters"].(map[string]any)["checkpoint_completion_target"], 0.9},
		{"Initdb", c.Bootstrap.Initdb, []string{"--encoding=UTF8", "--data-checksums"}},
		{"Bootstrap.PgHBA", c.Bootstrap.PgHBA, []string{"host replication replicator 127.0.0.1/32 md5", "host all all 0.0.0.0/0 md5"}},
		{"PostgreSQL.Listen", c.PostgreSQL.Listen, "127.0.0.1,10.0.0.10:5432"},
		{"PostgreSQL.ConnectAddress", c.PostgreSQL.ConnectAddress, "127.0.0.1:5432"},
		{"PostgresListenHosts", c.PostgresListenHosts(), "127.0.0.1,10.0.0.10"},
		{"PostgresPort", c.PostgresPort(), 5432},
		{"PostgreSQL.DataDir", c.PostgreSQL.DataDir, "data/postgresql0"},
		{"PostgreSQL.BinDir", c.PostgreSQL.BinDir, "/usr/lib/postgresql/16/bin"},
		{"PostgreSQL.PgPass", c.PostgreSQL.PgPass, "/tmp/pgpass0"},
		{"PostgreSQL.Superuser", c.PostgreSQL.Superuser, Credentials{"postgres", "zalando"}},
		{"PostgreSQL.Replication", c.PostgreSQL.Replication, Credentials{"replicator", "rep-pass"}},
		{"PostgreSQL.Parameters", c.PostgreSQL.Parameters, map[string]string{"unix_socket_directories": "..", "shared_buffers": "128MB"}},
		{"PostgreSQL.OSUser", c.PostgreSQL.OSUser, "postgres"},
		{"Tags.NoFailover", c.Tags.NoFailover, false},
		{"Tags.NoLoadBalance", c.Tags.NoLoadBalance, true},
		{"Tags.CloneFrom", c.Tags.CloneFrom, true},
		{"Tags.NoSync", c.Tags.NoSync, false},
		{"Tags.Raw", c.Tags.Raw, map[string]any{
			"nofailover": false, "noloadbalance": true, "clonefrom": true, "nosync": false,
			"replicatefrom": "postgresql1", "datacenter": "eu-west-1",
		}},
		{"Unsupported", c.Unsupported, []string{
			"restapi.certfile", "ctl", "log.dir",
			"bootstrap.post_bootstrap",
			"postgresql.authentication.superuser.sslmode", "postgresql.authentication.rewind",
			"postgresql.create_replica_methods", "postgresql.wal_e", "postgresql.basebackup", "postgresql.callbacks",
			"watchdog", "tags.replicatefrom",
		}},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
}

func TestEtcdHosts(t *testing.T) {
	cases := []struct {
		name      string
		etcd3     string
		env       map[string]string
		hosts     []string
		endpoints []string
	}{
		{
			name:      "single host",
			etcd3:     "etcd3:\n  host: 127.0.0.1:2379\n",
			hosts:     []string{"127.0.0.1:2379"},
			endpoints: []string{"http://127.0.0.1:2379"},
		},
		{
			name:      "hosts as list",
			etcd3:     "etcd3:\n  hosts:\n    - etcd1:2379\n    - etcd2:2379\n",
			hosts:     []string{"etcd1:2379", "etcd2:2379"},
			endpoints: []string{"http://etcd1:2379", "http://etcd2:2379"},
		},
		{
			name:  "hosts as comma-separated string",
			etcd3: "etcd3:\n  hosts: etcd1:2379, etcd2:2379,etcd3:2379\n",
			hosts: []string{"etcd1:2379", "etcd2:2379", "etcd3:2379"},
		},
		{
			name:  "host and hosts merged without duplicates",
			etcd3: "etcd3:\n  host: etcd0:2379\n  hosts: [etcd1:2379, etcd0:2379]\n",
			hosts: []string{"etcd0:2379", "etcd1:2379"},
		},
		{
			name:      "https protocol",
			etcd3:     "etcd3:\n  hosts: [etcd1:2379]\n  protocol: HTTPS\n",
			hosts:     []string{"etcd1:2379"},
			endpoints: []string{"https://etcd1:2379"},
		},
		{
			name:      "url sets the protocol",
			etcd3:     "etcd3:\n  url: https://etcd9:2379\n",
			hosts:     []string{"etcd9:2379"},
			endpoints: []string{"https://etcd9:2379"},
		},
		{
			name:  "IPv6 host",
			etcd3: "etcd3:\n  host: '[::1]:2379'\n",
			hosts: []string{"[::1]:2379"},
		},
		{
			name:      "environment replaces hosts, in Patroni's quoted form",
			etcd3:     "etcd3:\n  hosts: [etcd1:2379]\n",
			env:       map[string]string{"PGWARDEN_ETCD3_HOSTS": "'e1:2379','e2:2379'", "PGWARDEN_ETCD3_PROTOCOL": "https"},
			hosts:     []string{"e1:2379", "e2:2379"},
			endpoints: []string{"https://e1:2379", "https://e2:2379"},
		},
		{
			name:  "environment host merged with file hosts",
			etcd3: "etcd3:\n  hosts: [etcd1:2379]\n",
			env:   map[string]string{"PGWARDEN_ETCD3_HOST": "etcd0:2379"},
			hosts: []string{"etcd0:2379", "etcd1:2379"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWithEnv([]byte(doc(map[string]string{"etcd3": tc.etcd3})), "test.yml", envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !equalStrings(c.Etcd3.Hosts, tc.hosts) {
				t.Errorf("Hosts = %q, want %q", c.Etcd3.Hosts, tc.hosts)
			}
			if tc.endpoints != nil && !equalStrings(c.Etcd3.Endpoints(), tc.endpoints) {
				t.Errorf("Endpoints() = %q, want %q", c.Etcd3.Endpoints(), tc.endpoints)
			}
		})
	}
}

func TestInitdb(t *testing.T) {
	cases := []struct {
		name   string
		initdb string
		want   []string
	}{
		{"absent", "", nil},
		{"plain strings", "    - data-checksums\n    - no-instructions\n", []string{"--data-checksums", "--no-instructions"}},
		{"one-key mappings", "    - encoding: UTF8\n    - locale: en_US.UTF-8\n", []string{"--encoding=UTF8", "--locale=en_US.UTF-8"}},
		{"mixed, order kept", "    - encoding: UTF8\n    - data-checksums\n    - auth-host: scram-sha-256\n",
			[]string{"--encoding=UTF8", "--data-checksums", "--auth-host=scram-sha-256"}},
		{"already dashed", "    - --data-checksums\n    - -k\n", []string{"--data-checksums", "-k"}},
		{"flow style", "    [data-checksums, {encoding: UTF8}]\n", []string{"--data-checksums", "--encoding=UTF8"}},
		{"mapping with null value", "    - data-checksums:\n", []string{"--data-checksums"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := doc(nil)
			if tc.initdb != "" {
				text = doc(map[string]string{"bootstrap": "bootstrap:\n  initdb:\n" + tc.initdb})
			}
			c := mustParse(t, text)
			if !equalStrings(c.Bootstrap.Initdb, tc.want) {
				t.Errorf("Initdb = %q, want %q", c.Bootstrap.Initdb, tc.want)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	cases := []struct {
		name  string
		text  string
		wants []string
	}{
		{
			name: "typo in postgresql, exact message",
			text: `scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
etcd3:
  host: 127.0.0.1:2379
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /data
  authentication:
    superuser: {username: postgres}
  paramters:
    max_connections: 100
`,
			wants: []string{`test.yml:12: postgresql.paramters: unknown key (did you mean "parameters"?)`},
		},
		{
			name:  "typo at top level",
			text:  doc(map[string]string{"tgas": "tgas:\n  nofailover: true\n"}),
			wants: []string{"test.yml:10: tgas: unknown key", `did you mean "tags"?`},
		},
		{
			name:  "typo in bootstrap.dcs",
			text:  doc(map[string]string{"bootstrap": "bootstrap:\n  dcs:\n    ttl: 30\n    loop_wiat: 10\n"}),
			wants: []string{"test.yml:13: bootstrap.dcs.loop_wiat: unknown key", `did you mean "loop_wait"?`},
		},
		{
			name:  "dash instead of underscore",
			text:  doc(map[string]string{"restapi": "restapi:\n  listen: 127.0.0.1:8008\n  connect-address: 127.0.0.1:8008\n"}),
			wants: []string{"test.yml:5: restapi.connect-address: unknown key", `did you mean "connect_address"?`},
		},
		{
			name:  "typo in etcd3",
			text:  doc(map[string]string{"etcd3": "etcd3:\n  hots: 127.0.0.1:2379\n"}),
			wants: []string{"test.yml:6: etcd3.hots: unknown key", `did you mean "host"?`},
		},
		{
			name:  "typo in restapi.authentication",
			text:  doc(map[string]string{"restapi": "restapi:\n  listen: 127.0.0.1:8008\n  authentication:\n    usrname: a\n    password: b\n"}),
			wants: []string{"test.yml:6: restapi.authentication.usrname: unknown key", `did you mean "username"?`},
		},
		{
			name:  "no suggestion when nothing is close",
			text:  doc(map[string]string{"zzzzzzzzzz": "zzzzzzzzzz: 1\n"}),
			wants: []string{"test.yml:10: zzzzzzzzzz: unknown key"},
		},
		{
			name:  "typo in an unsupported section with a fixed schema",
			text:  doc(map[string]string{"bootstrap": "bootstrap:\n  dcs:\n    standby_cluster:\n      hots: 10.0.0.1\n"}),
			wants: []string{"test.yml:13: bootstrap.dcs.standby_cluster.hots: unknown key", `did you mean "host"?`},
		},
		{
			name: "unknown key and wrong type reported together",
			text: doc(map[string]string{"tags": "tags:\n  nofailover: maybe\n", "wathcdog": "wathcdog: {}\n"}),
			wants: []string{"test.yml:11: tags.nofailover: expected true or false",
				"test.yml:12: wathcdog: unknown key (did you mean \"watchdog\"?)"},
		},
		{
			name: "several errors reported together",
			text: doc(map[string]string{"nmae": "nmae: x\n", "scpe": "scpe: y\n"}),
			wants: []string{"test.yml:10: nmae: unknown key (did you mean \"name\"?)",
				"test.yml:11: scpe: unknown key (did you mean \"scope\"?)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, tc.text, nil, tc.wants...)
		})
	}
}

func TestFreeSectionsAreNotChecked(t *testing.T) {
	c := mustParse(t, doc(map[string]string{
		"postgresql": `postgresql:
  listen: 127.0.0.1:5432
  data_dir: /data
  parameters:
    made_up_parameter: 1
    auto_explain.log_min_duration: 10s
  callbacks:
    on_anything: /bin/true
  create_replica_methods: [pgbackrest, basebackup]
  pgbackrest:
    command: /usr/bin/pgbackrest restore
    keep_data: true
`,
		"bootstrap": `bootstrap:
  method: restore
  restore:
    command: /usr/local/bin/restore.sh
    recovery_conf:
      restore_command: cp /archive/%f %p
`,
		"tags":  "tags:\n  my_tag: 1.5\n  another: text\n",
		"ctl":   "ctl:\n  whatever: 1\n",
		"citus": "citus:\n  group: 0\n  database: citus\n",
	}))
	if got, want := c.PostgreSQL.Parameters["auto_explain.log_min_duration"], "10s"; got != want {
		t.Errorf("dotted parameter = %q, want %q", got, want)
	}
	if got, want := c.PostgreSQL.Parameters["made_up_parameter"], "1"; got != want {
		t.Errorf("made_up_parameter = %q, want %q", got, want)
	}
	// In file order: the base sections first, then the added ones sorted.
	want := []string{"postgresql.callbacks", "postgresql.create_replica_methods", "postgresql.pgbackrest",
		"bootstrap.method", "bootstrap.restore", "ctl"}
	if !equalStrings(c.Unsupported, want) {
		t.Errorf("Unsupported = %q, want %q", c.Unsupported, want)
	}
	if c.Citus == nil || c.Citus.Group != 0 || c.Citus.Database != "citus" || !c.Citus.RegisterSecondaries || !c.Citus.IsCoordinator() {
		t.Errorf("Citus = %+v", c.Citus)
	}
	if got := c.Tags.Raw["my_tag"]; got != 1.5 {
		t.Errorf("Tags.Raw[my_tag] = %#v, want 1.5", got)
	}
}

func TestWrongTypes(t *testing.T) {
	cases := []struct {
		name     string
		sections map[string]string
		wants    []string
	}{
		{"ttl not a duration", map[string]string{"bootstrap": "bootstrap:\n  dcs:\n    ttl: abc\n"},
			[]string{"test.yml:12: bootstrap.dcs.ttl:", `expected a number of seconds or a duration such as "500ms", got "abc"`}},
		{"negative loop_wait", map[string]string{"bootstrap": "bootstrap:\n  dcs:\n    loop_wait: -1\n"},
			[]string{"test.yml:12: bootstrap.dcs.loop_wait: must not be negative"}},
		{"maximum_lag_on_failover not whole", map[string]string{"bootstrap": "bootstrap:\n  dcs:\n    maximum_lag_on_failover: 1.5\n"},
			[]string{"test.yml:12: bootstrap.dcs.maximum_lag_on_failover: expected a number of bytes, got 1.5"}},
		{"dcs parameter is a list", map[string]string{"bootstrap": "bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n        shared_preload_libraries: [a, b]\n"},
			[]string{"test.yml:14: bootstrap.dcs.postgresql.parameters.shared_preload_libraries: expected a string, number or boolean, got a list"}},
		{"tags.nofailover maybe", map[string]string{"tags": "tags:\n  nofailover: maybe\n"},
			[]string{"test.yml:11: tags.nofailover: expected true or false, got \"maybe\""}},
		{"tags.failover_priority text", map[string]string{"tags": "tags:\n  failover_priority: high\n"},
			[]string{"test.yml:11: tags.failover_priority: expected an integer"}},
		{"etcd3.hosts mapping", map[string]string{"etcd3": "etcd3:\n  hosts: {a: b}\n"},
			[]string{"test.yml:6: etcd3.hosts: expected a list of host:port or a comma-separated string, got a mapping"}},
		{"etcd3.hosts item not host:port", map[string]string{"etcd3": "etcd3:\n  hosts:\n    - etcd1:2379\n    - etcd2\n"},
			[]string{"test.yml:8: etcd3.hosts[1]: expected host:port, got \"etcd2\""}},
		{"scope mapping", map[string]string{"scope": "scope:\n  a: b\n"},
			[]string{"test.yml:1: scope: expected a string, got a mapping"}},
		{"restapi list", map[string]string{"restapi": "restapi:\n  - listen\n"},
			[]string{"test.yml:3: restapi: expected a mapping, got a list"}},
		{"initdb string", map[string]string{"bootstrap": "bootstrap:\n  initdb: data-checksums\n"},
			[]string{"test.yml:11: bootstrap.initdb: expected a list of options"}},
		{"initdb nested list", map[string]string{"bootstrap": "bootstrap:\n  initdb:\n    - data-checksums\n    - [a, b]\n"},
			[]string{"test.yml:13: bootstrap.initdb[1]: expected an option"}},
		{"pg_hba string", map[string]string{"postgresql": "postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /d\n  pg_hba: host all all 0.0.0.0/0 md5\n"},
			[]string{"test.yml:10: postgresql.pg_hba: expected a list of strings"}},
		{"parameters not a mapping", map[string]string{"postgresql": "postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /d\n  parameters: [a]\n"},
			[]string{"test.yml:10: postgresql.parameters: expected a mapping of parameter names to values, got a list"}},
		{"parameter name with a space", map[string]string{"postgresql": "postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /d\n  parameters:\n    \"bad name\": 1\n"},
			[]string{"test.yml:11: postgresql.parameters.bad name: not a valid PostgreSQL parameter name"}},
		{"log.type", map[string]string{"log": "log:\n  type: xml\n"},
			[]string{"test.yml:11: log.type: expected \"plain\" or \"json\", got \"xml\""}},
		{"log.level", map[string]string{"log": "log:\n  level: loud\n"},
			[]string{"test.yml:11: log.level: expected one of"}},
		{"etcd3.protocol", map[string]string{"etcd3": "etcd3:\n  host: a:1\n  protocol: ftp\n"},
			[]string{"test.yml:7: etcd3.protocol: expected \"http\" or \"https\", got \"ftp\""}},
		{"postgresql.listen without port", map[string]string{"postgresql": "postgresql:\n  listen: 127.0.0.1\n  data_dir: /d\n"},
			[]string{"test.yml:8: postgresql.listen: expected host[,host...]:port"}},
		{"restapi.listen bad port", map[string]string{"restapi": "restapi:\n  listen: 127.0.0.1:99999\n"},
			[]string{"test.yml:4: restapi.listen: invalid port \"99999\""}},
		{"duplicate key", map[string]string{"name": "name: a\nname: b\n"},
			[]string{"test.yml:3: name: duplicate key (first set at line 2)"}},
		{"invalid YAML", map[string]string{"name": "name: [unclosed\n"},
			[]string{"test.yml:", "invalid YAML"}},
		{"top level is a list", map[string]string{"scope": "- a\n", "name": "", "restapi": "", "etcd3": "", "postgresql": ""},
			[]string{"test.yml:1: expected a mapping of settings at the top level, got a list"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, doc(tc.sections), nil, tc.wants...)
		})
	}
}

func TestTTLRule(t *testing.T) {
	cases := []struct {
		name  string
		dcs   string
		ok    bool
		wants []string
		ttl   time.Duration
	}{
		{"defaults", "", true, nil, 30 * time.Second},
		{"exactly at the limit", "    ttl: 40\n    loop_wait: 10\n    retry_timeout: 15\n", true, nil, 40 * time.Second},
		{"durations with units", "    ttl: 3s\n    loop_wait: 500ms\n    retry_timeout: 1s\n", true, nil, 3 * time.Second},
		{"seconds as strings", "    ttl: '45'\n    loop_wait: \"5\"\n", true, nil, 45 * time.Second},
		{"fractional seconds", "    ttl: 2.5\n    loop_wait: 0.5\n    retry_timeout: 1\n", true, nil, 2500 * time.Millisecond},
		{"ttl too short", "    ttl: 20\n    loop_wait: 10\n    retry_timeout: 10\n", false,
			[]string{"test.yml:12: bootstrap.dcs.ttl:", "ttl (20s) must be at least loop_wait + 2*retry_timeout = 10s + 2*10s = 30s"}, 0},
		{"ttl default too short for loop_wait", "    loop_wait: 15\n", false,
			[]string{"test.yml:11: bootstrap.dcs.ttl:", "ttl (30s) must be at least loop_wait + 2*retry_timeout = 15s + 2*10s = 35s"}, 0},
		{"loop_wait zero", "    loop_wait: 0\n", false,
			[]string{"test.yml:12: bootstrap.dcs.loop_wait: must be greater than 0"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := doc(nil)
			if tc.dcs != "" {
				text = doc(map[string]string{"bootstrap": "bootstrap:\n  dcs:\n" + tc.dcs})
			}
			if !tc.ok {
				mustFail(t, text, nil, tc.wants...)
				return
			}
			c := mustParse(t, text)
			if c.Bootstrap.DCS.TTL != tc.ttl {
				t.Errorf("TTL = %v, want %v", c.Bootstrap.DCS.TTL, tc.ttl)
			}
		})
	}
}

func TestUnsupportedKeysAccepted(t *testing.T) {
	cases := []struct {
		name     string
		sections map[string]string
		want     []string
	}{
		{"none", nil, nil},
		{"other DCS sections", map[string]string{
			"consul":     "consul:\n  host: 127.0.0.1:8500\n  anything: goes\n",
			"kubernetes": "kubernetes:\n  labels: {app: demo}\n",
			"zookeeper":  "zookeeper:\n  hosts: ['a:2181']\n",
		}, []string{"consul", "kubernetes", "zookeeper"}},
		{"dynamic keys at the top level", map[string]string{
			"standby_cluster":  "standby_cluster:\n  host: 10.0.0.1\n  port: 5432\n",
			"synchronous_mode": "synchronous_mode: true\n",
			"failsafe_mode":    "failsafe_mode: true\n",
		}, []string{"failsafe_mode", "standby_cluster", "synchronous_mode"}},
		{"bootstrap.dcs extras kept in Raw", map[string]string{
			"bootstrap": `bootstrap:
  dcs:
    synchronous_mode: true
    synchronous_mode_strict: false
    synchronous_node_count: 1
    failsafe_mode: true
    check_timeline: true
    primary_start_timeout: 300
    master_start_timeout: 300
    primary_stop_timeout: 0
    max_timelines_history: 0
    member_slots_ttl: 30min
    slots:
      my_slot: {type: physical}
    ignore_slots:
      - name: ignored
    standby_cluster:
      host: 10.0.0.1
      port: 5432
    postgresql:
      use_pg_rewind: true
      use_slots: true
      recovery_conf: {restore_command: /bin/true}
      pg_hba: [host all all 0.0.0.0/0 md5]
      pg_ident: [a b c]
  users:
    admin: {password: x}
  post_init: /bin/true
`,
		}, []string{
			"bootstrap.dcs.failsafe_mode", "bootstrap.dcs.primary_start_timeout",
			"bootstrap.dcs.master_start_timeout", "bootstrap.dcs.primary_stop_timeout", "bootstrap.dcs.max_timelines_history",
			"bootstrap.dcs.ignore_slots", "bootstrap.dcs.standby_cluster",
			"bootstrap.dcs.postgresql.recovery_conf",
			"bootstrap.dcs.postgresql.pg_hba", "bootstrap.dcs.postgresql.pg_ident", "bootstrap.users", "bootstrap.post_init"}},
		{"restapi TLS and log extras", map[string]string{
			"restapi": "restapi:\n  listen: 127.0.0.1:8008\n  keyfile: /k\n  verify_client: required\n  allowlist: [10.0.0.0/8]\n  http_extra_headers: {X-A: b}\n",
			"log":     "log:\n  format: '%(asctime)s %(message)s'\n  file_size: 1000\n  loggers: {urllib3: DEBUG}\n",
		}, []string{"restapi.keyfile", "restapi.verify_client", "restapi.allowlist", "restapi.http_extra_headers",
			"log.file_size", "log.loggers", "log.format"}},
		{"postgresql extras", map[string]string{
			"postgresql": `postgresql:
  listen: 127.0.0.1:5432
  data_dir: /data
  use_unix_socket: true
  pg_ctl_timeout: 60
  remove_data_directory_on_rewind_failure: true
  bin_name: {postgres: postgres}
  pre_promote: /bin/true
  create_replica_methods: [basebackup]
`,
		}, []string{"postgresql.use_unix_socket", "postgresql.pg_ctl_timeout",
			"postgresql.bin_name", "postgresql.pre_promote"}},
		{"etcd3 discovery", map[string]string{
			"etcd3": "etcd3:\n  host: 127.0.0.1:2379\n  srv: example.org\n  use_proxies: true\n",
		}, []string{"etcd3.srv", "etcd3.use_proxies"}},
		{"tags with Patroni meanings", map[string]string{
			"tags": "tags:\n  nostream: true\n  failover_priority: 2\n",
		}, []string{"tags.failover_priority", "tags.nostream"}},
		{"watchdog and thread pool", map[string]string{
			"thread_pool_size": "thread_pool_size: 5\n",
			"watchdog":         "watchdog:\n  mode: automatic\n  driver: default\n",
		}, []string{"thread_pool_size", "watchdog"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, doc(tc.sections))
			if !equalStrings(c.Unsupported, tc.want) {
				t.Errorf("Unsupported = %q, want %q", c.Unsupported, tc.want)
			}
		})
	}
}

func TestBootstrapDCSRaw(t *testing.T) {
	c := mustParse(t, doc(map[string]string{"bootstrap": `bootstrap:
  dcs:
    ttl: 500ms
    loop_wait: 100ms
    retry_timeout: 200ms
    synchronous_mode: on
    postgresql:
      parameters:
        max_connections: 200
        wal_keep_size: 1GB
`}))
	want := map[string]any{
		"ttl": "500ms", "loop_wait": "100ms", "retry_timeout": "200ms",
		"synchronous_mode": true,
		"postgresql":       map[string]any{"parameters": map[string]any{"max_connections": 200, "wal_keep_size": "1GB"}},
	}
	if !reflect.DeepEqual(c.Bootstrap.DCS.Raw, want) {
		t.Errorf("Raw = %#v, want %#v", c.Bootstrap.DCS.Raw, want)
	}
	d := c.Bootstrap.DCS
	if d.TTL != 500*time.Millisecond || d.LoopWait != 100*time.Millisecond || d.RetryTimeout != 200*time.Millisecond {
		t.Errorf("durations = %v %v %v", d.TTL, d.LoopWait, d.RetryTimeout)
	}
	// Raw read back through DynamicFromMap gives the same Dynamic.
	again, err := DynamicFromMap(d.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, d) {
		t.Errorf("DynamicFromMap(Raw) = %#v, want %#v", again, d)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, doc(nil))
	checks := []struct {
		name      string
		got, want any
	}{
		{"Namespace", c.Namespace, "/service/"},
		{"RestAPI.ConnectAddress", c.RestAPI.ConnectAddress, "127.0.0.1:8008"},
		{"RestAPI.Authentication", c.RestAPI.Authentication, (*BasicAuth)(nil)},
		{"Etcd3.Protocol", c.Etcd3.Protocol, "http"},
		{"PostgreSQL.ConnectAddress", c.PostgreSQL.ConnectAddress, "127.0.0.1:5432"},
		{"PostgreSQL.BinDir", c.PostgreSQL.BinDir, "/usr/lib/postgresql/15/bin"},
		{"PostgreSQL.OSUser", c.PostgreSQL.OSUser, "postgres"},
		{"PostgreSQL.Superuser", c.PostgreSQL.Superuser, Credentials{Username: "postgres"}},
		{"PostgreSQL.Replication", c.PostgreSQL.Replication, Credentials{Username: "replicator"}},
		{"PostgreSQL.Parameters", c.PostgreSQL.Parameters, map[string]string{}},
		{"DCS", c.Bootstrap.DCS, Dynamic{
			TTL: 30 * time.Second, LoopWait: 10 * time.Second, RetryTimeout: 10 * time.Second,
			MaximumLagOnFailover: 1048576, Parameters: map[string]string{}, Raw: map[string]any{},
			SynchronousNodeCount: 1, UseSlots: true, UsePgRewind: true, MemberSlotsTTL: 30 * time.Minute,
		}},
		{"Tags", c.Tags, Tags{Raw: map[string]any{}}},
		{"Log", c.Log, Log{Format: "text", Level: "info"}},
		{"Unsupported", len(c.Unsupported), 0},
		{"Path", c.Path, "test.yml"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
}

func TestNamespaceNormalized(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"service", "/service/"},
		{"/service", "/service/"},
		{"service/", "/service/"},
		{"/a/b/", "/a/b/"},
		{"/", "/"},
		{"''", "/service/"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c := mustParse(t, doc(map[string]string{"namespace": "namespace: " + tc.in + "\n"}))
			if c.Namespace != tc.want {
				t.Errorf("Namespace = %q, want %q", c.Namespace, tc.want)
			}
		})
	}
}

func TestRequiredAndAddresses(t *testing.T) {
	cases := []struct {
		name     string
		sections map[string]string
		wants    []string
	}{
		{"empty file", map[string]string{"scope": "", "name": "", "restapi": "", "etcd3": "", "postgresql": ""},
			[]string{"test.yml: scope: required", "test.yml: name: required", "test.yml: restapi.listen: required",
				"test.yml: postgresql.listen: required", "test.yml: postgresql.data_dir: required", "test.yml: etcd3: at least one etcd endpoint"}},
		{"no etcd3 but etcd v2", map[string]string{"etcd3": "", "etcd": "etcd:\n  host: 127.0.0.1:2379\n"},
			[]string{"etcd3: at least one etcd endpoint is required", `"etcd" is not supported yet`}},
		{"null values count as missing", map[string]string{"scope": "scope:\n", "name": "name: ~\n"},
			[]string{"scope: required", "name: required"}},
		{"slash in scope", map[string]string{"scope": "scope: a/b\n"},
			[]string{"test.yml:1: scope: must not contain \"/\""}},
		{"wildcard restapi listen without connect_address", map[string]string{"restapi": "restapi:\n  listen: 0.0.0.0:8008\n"},
			[]string{"test.yml:4: restapi.connect_address: required because restapi.listen \"0.0.0.0:8008\""}},
		{"wildcard postgresql listen without connect_address", map[string]string{"postgresql": "postgresql:\n  listen: '*:5432'\n  data_dir: /d\n"},
			[]string{"test.yml:8: postgresql.connect_address: required because postgresql.listen \"*:5432\""}},
		{"wildcard connect_address", map[string]string{"postgresql": "postgresql:\n  listen: 127.0.0.1:5432\n  connect_address: 0.0.0.0:5432\n  data_dir: /d\n"},
			[]string{"test.yml:9: postgresql.connect_address: \"0.0.0.0:5432\" is not an address other nodes can connect to"}},
		{"restapi authentication incomplete", map[string]string{"restapi": "restapi:\n  listen: 127.0.0.1:8008\n  authentication:\n    username: a\n"},
			[]string{"test.yml:5: restapi.authentication.password: required when restapi.authentication is set"}},
		{"etcd3.url scheme conflicts with protocol", map[string]string{"etcd3": "etcd3:\n  url: https://e:2379\n  protocol: http\n"},
			[]string{"test.yml:6: etcd3.url: scheme \"https\" does not match etcd3.protocol \"http\""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, doc(tc.sections), nil, tc.wants...)
		})
	}
}

func TestAddressHelpers(t *testing.T) {
	cases := []struct {
		name        string
		restapi     string
		pg          string
		listenHosts string
		port        int
		connectHost string
		connectPort int
		restURL     string
	}{
		{"single host", "restapi:\n  listen: 127.0.0.1:8008\n", "postgresql:\n  listen: 127.0.0.1:5433\n  data_dir: /d\n",
			"127.0.0.1", 5433, "127.0.0.1", 5433, "http://127.0.0.1:8008/patroni"},
		{"several hosts, first wildcard skipped", "restapi:\n  listen: 0.0.0.0:8008\n  connect_address: node1.example:8008\n",
			"postgresql:\n  listen: 0.0.0.0, 10.0.0.5:5432\n  data_dir: /d\n",
			"0.0.0.0,10.0.0.5", 5432, "10.0.0.5", 5432, "http://node1.example:8008/patroni"},
		{"explicit connect address", "restapi:\n  listen: 127.0.0.1:8008\n",
			"postgresql:\n  listen: '*:5432'\n  connect_address: db1:6432\n  data_dir: /d\n",
			"*", 5432, "db1", 6432, "http://127.0.0.1:8008/patroni"},
		{"IPv6", "restapi:\n  listen: '[::1]:8008'\n", "postgresql:\n  listen: '[::1]:5432'\n  data_dir: /d\n",
			"::1", 5432, "::1", 5432, "http://[::1]:8008/patroni"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, doc(map[string]string{"restapi": tc.restapi, "postgresql": tc.pg}))
			if got := c.PostgresListenHosts(); got != tc.listenHosts {
				t.Errorf("PostgresListenHosts() = %q, want %q", got, tc.listenHosts)
			}
			if got := c.PostgresPort(); got != tc.port {
				t.Errorf("PostgresPort() = %d, want %d", got, tc.port)
			}
			if got := c.PostgresConnectHost(); got != tc.connectHost {
				t.Errorf("PostgresConnectHost() = %q, want %q", got, tc.connectHost)
			}
			if got := c.PostgresConnectPort(); got != tc.connectPort {
				t.Errorf("PostgresConnectPort() = %d, want %d", got, tc.connectPort)
			}
			if got := c.RestAPIConnectURL(); got != tc.restURL {
				t.Errorf("RestAPIConnectURL() = %q, want %q", got, tc.restURL)
			}
		})
	}
}

func TestMergedParameters(t *testing.T) {
	c := mustParse(t, doc(map[string]string{"postgresql": `postgresql:
  listen: 127.0.0.1:5432
  data_dir: /d
  parameters:
    work_mem: 8MB
    log_connections: true
`}))
	dyn, err := DynamicFromMap(map[string]any{"postgresql": map[string]any{"parameters": map[string]any{
		"work_mem": "4MB", "max_connections": float64(100),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	got := c.MergedParameters(dyn)
	want := map[string]string{"work_mem": "8MB", "max_connections": "100", "log_connections": "on"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MergedParameters = %v, want %v", got, want)
	}
	got["work_mem"] = "x"
	if dyn.Parameters["work_mem"] != "4MB" || c.PostgreSQL.Parameters["work_mem"] != "8MB" {
		t.Error("MergedParameters returned a map shared with its inputs")
	}
}

func TestYAMLAnchorsAndMerge(t *testing.T) {
	c := mustParse(t, `scope: demo
name: node1
restapi:
  listen: &api 127.0.0.1:8008
  connect_address: *api
etcd3:
  hosts: &etcd [e1:2379, e2:2379]
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /data
  authentication:
    superuser: &su
      username: admin
      password: secret
    replication:
      <<: *su
      username: repl
`)
	if c.RestAPI.ConnectAddress != "127.0.0.1:8008" {
		t.Errorf("ConnectAddress = %q", c.RestAPI.ConnectAddress)
	}
	if !equalStrings(c.Etcd3.Hosts, []string{"e1:2379", "e2:2379"}) {
		t.Errorf("Hosts = %q", c.Etcd3.Hosts)
	}
	if want := (Credentials{"repl", "secret"}); c.PostgreSQL.Replication != want {
		t.Errorf("Replication = %+v, want %+v", c.PostgreSQL.Replication, want)
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse([]byte(doc(map[string]string{"bootstrap": "bootstrap:\n  dcs:\n    ttl: abc\n"})), "node.yml")
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	want := FieldError{File: "node.yml", Line: 12, Path: "bootstrap.dcs.ttl", Msg: fe.Msg}
	if *fe != want || !strings.Contains(fe.Msg, `"abc"`) {
		t.Errorf("FieldError = %+v, want %+v", *fe, want)
	}
}

func TestExampleFile(t *testing.T) {
	c, err := LoadWithEnv("../config.example.yml", noEnv)
	if err != nil {
		t.Fatalf("config.example.yml: %v", err)
	}
	if c.Scope != "demo" || c.Name != "node1" {
		t.Errorf("scope/name = %q/%q, want demo/node1", c.Scope, c.Name)
	}
	if !equalStrings(c.Etcd3.Endpoints(), []string{"http://127.0.0.1:2379"}) {
		t.Errorf("Endpoints() = %q", c.Etcd3.Endpoints())
	}
	if len(c.Unsupported) != 0 {
		t.Errorf("the example uses unsupported keys: %q", c.Unsupported)
	}
	if !equalStrings(c.Bootstrap.Initdb, []string{"--data-checksums", "--encoding=UTF8", "--locale=C.UTF-8"}) {
		t.Errorf("Initdb = %q", c.Bootstrap.Initdb)
	}
}

func TestTagsPublishedAsBooleans(t *testing.T) {
	c := mustParse(t, doc(map[string]string{"tags": "tags:\n  nofailover: \"true\"\n  nosync: off\n  zone: a\n"}))
	want := map[string]any{"nofailover": true, "nosync": false, "zone": "a"}
	if !reflect.DeepEqual(c.Tags.Raw, want) {
		t.Errorf("Tags.Raw = %#v, want %#v", c.Tags.Raw, want)
	}
	if !c.Tags.NoFailover || c.Tags.NoSync {
		t.Errorf("Tags = %+v", c.Tags)
	}
}

func TestEtcdHostWithScheme(t *testing.T) {
	mustFail(t, doc(map[string]string{"etcd3": "etcd3:\n  hosts: [http://e1:2379]\n"}), nil,
		`test.yml:6: etcd3.hosts[0]: expected host:port, got "http://e1:2379" (write host:port; the scheme comes from etcd3.protocol, or use etcd3.url)`)
}
