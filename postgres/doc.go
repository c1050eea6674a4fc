// Package postgres manages the local PostgreSQL instance: it creates a data
// directory (initdb or pg_basebackup), writes the configuration pgwarden owns
// (postgresql.conf, pg_hba.conf, the pgpass file and standby.signal), starts,
// stops, promotes and re-points the server, and observes it over one
// persistent pgx connection.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the daemon's effective uid is 0,
// every PostgreSQL binary (initdb, pg_ctl, pg_basebackup, pg_controldata) is
// started as Settings.OSUser (default "postgres") in a session of its own, and
// the files pgwarden writes into or for the data directory are chowned to that
// user. Every ancestor directory of the data directory must be traversable by
// that user; New reports an error naming the offending directory otherwise.
//
// # Files
//
// In the data directory pgwarden owns:
//
//   - postgresql.conf: rewritten by every WriteConfig. Its first line includes
//     postgresql.base.conf, which is the postgresql.conf that initdb (or the
//     cloned primary) produced, renamed once.
//   - pg_hba.conf: Settings.PgHBA, or a default that admits the superuser and
//     the replication role by scram-sha-256 password over TCP and everybody
//     over the Unix socket (which lives in the 0700 socket directory).
//   - standby.signal: present exactly when the instance is configured as a
//     standby.
//
// postgresql.auto.conf (ALTER SYSTEM) is left alone except that WriteConfig
// removes from it the settings that are this node's own or that pgwarden
// manages (listen_addresses, port, wal_log_hints, primary_conninfo,
// primary_slot_name, recovery_target_timeline, and synchronous_standby_names
// once SetSynchronousStandbyNames manages it): pg_basebackup and pg_rewind
// copy the source's file, and its settings would override ours.
//
// Next to the data directory (by default) live the pgpass file
// (pgpass.<name>, mode 0600) used by pg_basebackup, pg_rewind and the
// standby's WAL receiver, the server log postgresql.<name>.log, which pg_ctl
// -l appends the postmaster's stderr to, pg_rewind's log
// pg_rewind.<name>.log, and the Unix socket directory socket.<name> (not in
// the data directory: pg_rewind fails on a source data directory that holds
// a socket).
//
// # Replication
//
// Standbys set application_name to the member name in primary_conninfo, so
// synchronous_standby_names (see SyncStandbyNames) names members, and
// stream through the slot set by SetPrimarySlotName (SlotName gives
// Patroni's slot name for a member). Rewind runs pg_rewind; it needs data
// checksums (Initdb turns them on) or wal_log_hints (always on in the
// managed configuration).
package postgres
