package config

import "gopkg.in/yaml.v3"

// keyKind says how the value under a key is checked.
type keyKind uint8

const (
	// kindLeaf is a scalar or a list; the decoder checks its type.
	kindLeaf keyKind = iota
	// kindSection is a mapping whose sub-keys are all known: anything else
	// is a typo.
	kindSection
	// kindFree is a value whose content is not checked: a mapping with
	// arbitrary keys (parameters, tags, callbacks, other DCSs, ...) or a
	// structure pgwarden does not look into.
	kindFree
)

// keySpec describes one key of the file.
type keySpec struct {
	kind keyKind
	// unsupported marks a key of Patroni's schema that pgwarden accepts but
	// does not implement yet; its path goes to Config.Unsupported.
	unsupported bool
	// implemented, for an unsupported key, reports the values that ask for
	// what pgwarden does anyway (bootstrap.method: initdb), which are not
	// worth a warning.
	implemented func(v *yaml.Node) bool
	// sub lists the known keys of a section.
	sub map[string]*keySpec
	// extra accepts a sub-key that is not in sub: a user-named section such
	// as a custom bootstrap or replica creation method. It is recorded as
	// unsupported and its content is not checked.
	extra func(section *yaml.Node, name string, v *yaml.Node) bool
}

func leaf() *keySpec { return &keySpec{kind: kindLeaf} }

func free() *keySpec { return &keySpec{kind: kindFree} }

func section(sub map[string]*keySpec) *keySpec {
	return &keySpec{kind: kindSection, sub: sub}
}

// notYet marks a key as accepted but not implemented.
func (k *keySpec) notYet() *keySpec {
	k.unsupported = true
	return k
}

// later is a leaf of Patroni's schema that pgwarden does not implement yet.
func later() *keySpec { return leaf().notYet() }

// laterKeys returns leaves for names, all not implemented yet.
func laterKeys(m map[string]*keySpec, names ...string) map[string]*keySpec {
	for _, n := range names {
		m[n] = later()
	}
	return m
}

// schema is the tree of every key pgwarden or Patroni knows.
var schema = buildSchema()

func buildSchema() *keySpec {
	root := map[string]*keySpec{
		"scope":     leaf(),
		"namespace": leaf(),
		"name":      leaf(),

		"restapi": section(laterKeys(map[string]*keySpec{
			"listen":          leaf(),
			"connect_address": leaf(),
			"authentication": section(map[string]*keySpec{
				"username": leaf(),
				"password": leaf(),
			}),
			"http_extra_headers":  free().notYet(),
			"https_extra_headers": free().notYet(),
		}, "certfile", "keyfile", "keyfile_password", "cafile", "ciphers", "verify_client",
			"allowlist", "allowlist_include_members", "request_queue_size", "server_tokens")),

		"etcd3": section(laterKeys(map[string]*keySpec{
			"host":     leaf(),
			"hosts":    leaf(),
			"url":      leaf(),
			"protocol": leaf(),
			"username": leaf(),
			"password": leaf(),
			"cacert":   leaf(),
			"cert":     leaf(),
			"key":      leaf(),
		}, "proxy", "srv", "srv_suffix", "use_proxies")),

		"bootstrap":  bootstrapSchema(),
		"postgresql": postgresqlSchema(),
		"tags":       free(),

		"log": section(laterKeys(map[string]*keySpec{
			"format":        leaf(),
			"level":         leaf(),
			"type":          leaf(),
			"static_fields": free().notYet(),
			"loggers":       free().notYet(),
		}, "traceback_level", "dateformat", "max_queue_size", "dir", "file_num", "file_size", "mode")),

		"thread_pool_size":  later(),
		"thread_stack_size": later(),
		"ctl":               free().notYet(),
		"watchdog":          free().notYet(),
		"citus": section(map[string]*keySpec{
			"group":                leaf(),
			"database":             leaf(),
			"register_secondaries": leaf(),
			"standin_sql":          leaf(),
		}),
		"etcd":       free().notYet(),
		"consul":     free().notYet(),
		"zookeeper":  free().notYet(),
		"exhibitor":  free().notYet(),
		"kubernetes": free().notYet(),
		"raft":       free().notYet(),
	}
	// Patroni lets the dynamic settings also appear at the top level of
	// the local file; pgwarden only reads them from bootstrap.dcs.
	for name, spec := range dynamicSchema() {
		if name == "postgresql" {
			continue
		}
		spec.unsupported = true
		root[name] = spec
	}
	return section(root)
}

// dynamicSchema lists the keys of the dynamic configuration
// (bootstrap.dcs, the DCS config key). It returns a fresh tree on each call.
func dynamicSchema() map[string]*keySpec {
	return laterKeys(map[string]*keySpec{
		"ttl":                     leaf(),
		"loop_wait":               leaf(),
		"retry_timeout":           leaf(),
		"maximum_lag_on_failover": leaf(),
		"standby_cluster": section(map[string]*keySpec{
			"host":                     leaf(),
			"port":                     leaf(),
			"primary_slot_name":        leaf(),
			"create_replica_methods":   leaf(),
			"restore_command":          leaf(),
			"archive_cleanup_command":  leaf(),
			"recovery_min_apply_delay": leaf(),
		}).notYet(),
		"slots":        free(),
		"ignore_slots": free().notYet(),
		"postgresql": section(laterKeys(map[string]*keySpec{
			"parameters":    free(),
			"recovery_conf": free().notYet(),
			"use_pg_rewind": leaf(),
			"use_slots":     leaf(),
		}, "pg_hba", "pg_ident", "pg_ctl_timeout")),
		"synchronous_mode":        leaf(),
		"synchronous_mode_strict": leaf(),
		"synchronous_node_count":  leaf(),
		"member_slots_ttl":        leaf(),
		"pause":                   leaf(),
		"check_timeline":          leaf(),
	}, "maximum_lag_on_syncnode", "max_timelines_history",
		"master_start_timeout", "primary_start_timeout", "master_stop_timeout", "primary_stop_timeout",
		"failsafe_mode")
}

func bootstrapSchema() *keySpec {
	s := section(laterKeys(map[string]*keySpec{
		"dcs":    section(dynamicSchema()),
		"initdb": leaf(),
		"pg_hba": leaf(),
		"users":  free().notYet(),
		"method": &keySpec{kind: kindLeaf, unsupported: true, implemented: func(v *yaml.Node) bool {
			v = resolve(v)
			return v != nil && v.Kind == yaml.ScalarNode && v.Value == "initdb"
		}},
	}, "post_bootstrap", "post_init"))
	// A custom bootstrap method is a section named by bootstrap.method,
	// holding at least a command.
	s.extra = func(sec *yaml.Node, name string, v *yaml.Node) bool {
		if m := resolve(lookup(sec, "method")); m != nil && m.Kind == yaml.ScalarNode && m.Value == name {
			return true
		}
		return hasCommand(v)
	}
	return s
}

// authKeys are the libpq connection options Patroni accepts next to a
// user's name and password.
var authKeys = []string{"sslmode", "sslkey", "sslpassword", "sslcert", "sslrootcert",
	"sslcrl", "sslcrldir", "gssencmode", "channel_binding"}

func userSchema() *keySpec {
	return section(laterKeys(map[string]*keySpec{
		"username": leaf(),
		"password": leaf(),
	}, authKeys...))
}

func postgresqlSchema() *keySpec {
	s := section(laterKeys(map[string]*keySpec{
		"listen":          leaf(),
		"connect_address": leaf(),
		"data_dir":        leaf(),
		"bin_dir":         leaf(),
		"pgpass":          leaf(),
		"parameters":      free(),
		"pg_hba":          leaf(),
		"os_user":         leaf(),
		"use_pg_rewind":   leaf(),
		"use_slots":       leaf(),

		"remove_data_directory_on_rewind_failure":     leaf(),
		"remove_data_directory_on_diverged_timelines": leaf(),
		"authentication": section(map[string]*keySpec{
			"superuser":   userSchema(),
			"replication": userSchema(),
			"rewind":      userSchema().notYet(),
		}),
		"bin_name": section(map[string]*keySpec{
			"pg_ctl":         leaf(),
			"initdb":         leaf(),
			"pg_controldata": leaf(),
			"pg_basebackup":  leaf(),
			"postgres":       leaf(),
			"pg_isready":     leaf(),
			"pg_rewind":      leaf(),
		}).notYet(),
		"callbacks":     free().notYet(),
		"basebackup":    free().notYet(),
		"recovery_conf": free().notYet(),
		"create_replica_methods": &keySpec{kind: kindLeaf, unsupported: true, implemented: func(v *yaml.Node) bool {
			v = resolve(v)
			return v != nil && v.Kind == yaml.SequenceNode && len(v.Content) == 1 &&
				resolve(v.Content[0]).Value == "basebackup"
		}},
	}, "proxy_address", "config_dir", "config_base_name", "custom_conf", "database", "krbsrvname",
		"pg_ident", "pg_ctl_timeout", "use_unix_socket", "use_unix_socket_repl",
		"pre_promote", "before_stop"))
	// A custom replica creation method is a section named in
	// create_replica_methods, holding at least a command.
	s.extra = func(sec *yaml.Node, name string, v *yaml.Node) bool {
		if list := resolve(lookup(sec, "create_replica_methods")); list != nil && list.Kind == yaml.SequenceNode {
			for _, item := range list.Content {
				if item = resolve(item); item != nil && item.Value == name {
					return true
				}
			}
		}
		return hasCommand(v)
	}
	return s
}

// hasCommand reports whether v is a mapping with a "command" key, the mark of
// a custom bootstrap or replica creation method.
func hasCommand(v *yaml.Node) bool {
	v = resolve(v)
	return v != nil && v.Kind == yaml.MappingNode && lookup(v, "command") != nil
}

// knownKeys lists a section's keys for suggestions.
func (k *keySpec) knownKeys() []string {
	keys := make([]string, 0, len(k.sub))
	for name := range k.sub {
		keys = append(keys, name)
	}
	return keys
}
