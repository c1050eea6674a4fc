// Package config loads and validates a node's YAML file, in Patroni's layout,
// so that an existing patroni.yml can be handed to pgwarden unchanged.
//
// The file is parsed into a yaml.Node tree rather than straight into structs,
// so every error names the file, the line and the dotted path of the key at
// fault, for example
//
//	patroni.yml:12: postgresql.paramters: unknown key (did you mean "parameters"?)
//
// Three kinds of keys are told apart:
//
//   - keys pgwarden implements (scope, name, restapi.listen, etcd3.hosts,
//     bootstrap.dcs.ttl, postgresql.parameters, tags, ...), decoded into
//     [Config];
//   - keys of Patroni's schema that pgwarden accepts but does not implement
//     yet (watchdog, ctl, bootstrap.dcs.synchronous_mode, other DCS sections,
//     ...): they are never refused, and their dotted paths are listed in
//     [Config.Unsupported] so the daemon can say so once;
//   - any other key, which is a typo: it is refused, with the closest valid
//     sibling as a suggestion.
//
// Sections in which Patroni accepts arbitrary sub-keys (postgresql.parameters,
// tags, callbacks, custom bootstrap and replica methods, ctl, citus, the
// sections of other DCSs, ...) are not checked for typos.
//
// After the file, environment variables named like Patroni's but with the
// PGWARDEN_ prefix (PGWARDEN_SCOPE, PGWARDEN_ETCD3_HOSTS, ...) override single
// settings; see [ParseWithEnv]. Then defaults are filled in (Patroni's:
// ttl 30s, loop_wait 10s, retry_timeout 10s, namespace "/service/", ...) and
// the result is validated.
//
// The bootstrap.dcs section is kept twice: decoded in [Dynamic], and verbatim
// as plain Go values in [Dynamic.Raw], which is what is written to the DCS
// config key when the cluster is bootstrapped. [DynamicFromMap] decodes that
// key again when it is read back.
package config
