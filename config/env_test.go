package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestEnvOverrides(t *testing.T) {
	file := doc(map[string]string{
		"restapi": "restapi:\n  listen: 127.0.0.1:8008\n  authentication:\n    username: fileuser\n    password: filepass\n",
		"log":     "log:\n  format: text\n  level: info\n",
	})
	cases := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{"no variables: the file wins", nil, func(t *testing.T, c *Config) {
			if c.Scope != "demo" || c.RestAPI.Authentication.Username != "fileuser" {
				t.Errorf("Scope=%q user=%q", c.Scope, c.RestAPI.Authentication.Username)
			}
		}},
		{"empty values are ignored", map[string]string{"PGWARDEN_SCOPE": "", "PGWARDEN_NAME": ""}, func(t *testing.T, c *Config) {
			if c.Scope != "demo" || c.Name != "node1" {
				t.Errorf("Scope=%q Name=%q", c.Scope, c.Name)
			}
		}},
		{"every variable", map[string]string{
			"PGWARDEN_SCOPE":                      "prod",
			"PGWARDEN_NAMESPACE":                  "pg",
			"PGWARDEN_NAME":                       "node7",
			"PGWARDEN_RESTAPI_LISTEN":             "0.0.0.0:9008",
			"PGWARDEN_RESTAPI_CONNECT_ADDRESS":    "10.1.1.7:9008",
			"PGWARDEN_RESTAPI_USERNAME":           "envuser",
			"PGWARDEN_RESTAPI_PASSWORD":           "envpass",
			"PGWARDEN_ETCD3_HOST":                 "etcd-a:2379",
			"PGWARDEN_ETCD3_HOSTS":                "etcd-b:2379,etcd-c:2379",
			"PGWARDEN_ETCD3_PROTOCOL":             "https",
			"PGWARDEN_ETCD3_USERNAME":             "eu",
			"PGWARDEN_ETCD3_PASSWORD":             "ep",
			"PGWARDEN_ETCD3_CACERT":               "/ca",
			"PGWARDEN_ETCD3_CERT":                 "/cert",
			"PGWARDEN_ETCD3_KEY":                  "/key",
			"PGWARDEN_POSTGRESQL_LISTEN":          "0.0.0.0:6432",
			"PGWARDEN_POSTGRESQL_CONNECT_ADDRESS": "10.1.1.7:6432",
			"PGWARDEN_POSTGRESQL_DATA_DIR":        "/srv/pg",
			"PGWARDEN_POSTGRESQL_BIN_DIR":         "/opt/pg/bin",
			"PGWARDEN_POSTGRESQL_PGPASS":          "/tmp/pgpass",
			"PGWARDEN_SUPERUSER_USERNAME":         "su",
			"PGWARDEN_SUPERUSER_PASSWORD":         "sup",
			"PGWARDEN_REPLICATION_USERNAME":       "rep",
			"PGWARDEN_REPLICATION_PASSWORD":       "repp",
			"PGWARDEN_LOG_FORMAT":                 "JSON",
			"PGWARDEN_LOG_LEVEL":                  "DEBUG",
		}, func(t *testing.T, c *Config) {
			want := Config{
				Scope: "prod", Namespace: "/pg/", Name: "node7",
				RestAPI: RestAPI{Listen: "0.0.0.0:9008", ConnectAddress: "10.1.1.7:9008",
					Authentication: &BasicAuth{"envuser", "envpass"}},
				Etcd3: Etcd3{Hosts: []string{"etcd-a:2379", "etcd-b:2379", "etcd-c:2379"}, Protocol: "https",
					Username: "eu", Password: "ep", CACert: "/ca", Cert: "/cert", Key: "/key"},
				Bootstrap: c.Bootstrap,
				PostgreSQL: PostgreSQL{Listen: "0.0.0.0:6432", ConnectAddress: "10.1.1.7:6432", DataDir: "/srv/pg",
					BinDir: "/opt/pg/bin", PgPass: "/tmp/pgpass", Superuser: Credentials{"su", "sup"},
					Replication: Credentials{"rep", "repp"}, Parameters: map[string]string{}, OSUser: "postgres"},
				Tags: Tags{Raw: map[string]any{}},
				Log:  Log{Format: "json", Level: "debug"},
				Path: "test.yml",
			}
			if !reflect.DeepEqual(*c, want) {
				t.Errorf("got  %+v\nwant %+v", *c, want)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWithEnv([]byte(file), "test.yml", envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestEnvRestAPICredentialsWithoutSection(t *testing.T) {
	c, err := ParseWithEnv([]byte(doc(nil)), "test.yml", envOf(map[string]string{
		"PGWARDEN_RESTAPI_USERNAME": "u", "PGWARDEN_RESTAPI_PASSWORD": "p",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.RestAPI.Authentication; a == nil || *a != (BasicAuth{"u", "p"}) {
		t.Errorf("Authentication = %+v, want u/p", a)
	}
	_, err = ParseWithEnv([]byte(doc(nil)), "test.yml", envOf(map[string]string{"PGWARDEN_RESTAPI_USERNAME": "u"}))
	if err == nil || !strings.Contains(err.Error(), "restapi.authentication.password: required") {
		t.Errorf("username without password: err = %v", err)
	}
}

func TestEnvFillsMissingSettings(t *testing.T) {
	c, err := ParseWithEnv([]byte("scope: demo\n"), "test.yml", envOf(map[string]string{
		"PGWARDEN_NAME":                "n1",
		"PGWARDEN_RESTAPI_LISTEN":      "127.0.0.1:8008",
		"PGWARDEN_ETCD3_HOSTS":         "127.0.0.1:2379",
		"PGWARDEN_POSTGRESQL_LISTEN":   "127.0.0.1:5432",
		"PGWARDEN_POSTGRESQL_DATA_DIR": "/d",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "n1" || c.PostgreSQL.ConnectAddress != "127.0.0.1:5432" || len(c.Etcd3.Hosts) != 1 {
		t.Errorf("got %+v", c)
	}
}

func TestEnvBadValues(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"protocol", map[string]string{"PGWARDEN_ETCD3_PROTOCOL": "ftp"},
			`PGWARDEN_ETCD3_PROTOCOL: etcd3.protocol: expected "http" or "https", got "ftp"`},
		{"hosts", map[string]string{"PGWARDEN_ETCD3_HOSTS": "etcd1:2379,etcd2"},
			`PGWARDEN_ETCD3_HOSTS: etcd3.hosts: expected host:port, got "etcd2"`},
		{"host", map[string]string{"PGWARDEN_ETCD3_HOST": "etcd1:port"},
			`PGWARDEN_ETCD3_HOST: etcd3.host: invalid port "port"`},
		{"restapi listen", map[string]string{"PGWARDEN_RESTAPI_LISTEN": "8008"},
			`PGWARDEN_RESTAPI_LISTEN: restapi.listen: expected host:port, got "8008"`},
		{"postgresql listen", map[string]string{"PGWARDEN_POSTGRESQL_LISTEN": "localhost"},
			`PGWARDEN_POSTGRESQL_LISTEN: postgresql.listen: expected host[,host...]:port`},
		{"postgresql connect address", map[string]string{"PGWARDEN_POSTGRESQL_CONNECT_ADDRESS": "0.0.0.0:5432"},
			`PGWARDEN_POSTGRESQL_CONNECT_ADDRESS: postgresql.connect_address: "0.0.0.0:5432" is not an address`},
		{"log format", map[string]string{"PGWARDEN_LOG_FORMAT": "xml"},
			`PGWARDEN_LOG_FORMAT: log.format: expected "text" or "json", got "xml"`},
		{"log level", map[string]string{"PGWARDEN_LOG_LEVEL": "chatty"},
			`PGWARDEN_LOG_LEVEL: log.level: expected one of`},
		{"scope", map[string]string{"PGWARDEN_SCOPE": "a/b"},
			`PGWARDEN_SCOPE: scope: must not contain "/"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, doc(nil), envOf(tc.env), tc.want)
		})
	}
}

func TestEnvVarsList(t *testing.T) {
	names := EnvVars()
	if len(names) != 28 {
		t.Errorf("EnvVars() has %d names, want 28: %q", len(names), names)
	}
	for _, want := range []string{"PGWARDEN_SCOPE", "PGWARDEN_ETCD3_HOSTS", "PGWARDEN_SUPERUSER_PASSWORD", "PGWARDEN_LOG_LEVEL"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("EnvVars() lacks %s", want)
		}
	}
}
