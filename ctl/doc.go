// Package ctl is pgwardenctl, the command-line tool of pgwarden: the
// equivalent of Patroni's patronictl, with the same commands, prompts,
// table formats and exit conventions.
//
// It reads the cluster's state straight from etcd (the keys under
// <namespace><scope>/, through package dcs) and asks the members to act
// through their REST API, exactly as patronictl does: list, topology,
// history, show-config, dsn and version only read; switchover, failover,
// restart, reinit, reload, pause, resume and flush call the members'
// endpoints (POST /switchover, /failover, /restart, /reinitialize, /reload,
// PATCH /config, DELETE /restart and /switchover); edit-config and remove
// write etcd directly (the config key with compare-and-swap on its
// revision, and the deletion of every key of the cluster).
//
// The settings come from the daemon's own YAML file (-c, the
// PGWARDENCTL_CONFIG_FILE environment variable or /etc/pgwarden/pgwarden.yml)
// or from flags (--dcs-url, --namespace, and the cluster name as the first
// argument). A file that the daemon would refuse (a patronictl-only file
// without name or postgresql section, say) is read leniently for the keys
// the tool needs: scope, namespace, etcd3, restapi.authentication and ctl.
//
// For a Citus cluster (a citus section in the file, or --group) the keys of
// each Citus group are under <namespace><scope>/<group>/, and the commands
// behave as patronictl's do for Citus: see citus.go.
//
// Every command is a cobra command built by NewRootCommand; Main runs one
// with the given arguments and streams and returns the exit code: 0 on
// success, 1 when the command failed (the reason is printed on stderr as
// "Error: ..."), 2 on a usage error.
package ctl
