// Package ha is the high-availability loop: each cycle it observes the
// cluster in etcd and the local PostgreSQL, decides with a pure function
// (Decide) what this member should do, and acts on that plan.
//
// Decide does no I/O and reads no clock: the observation carries the
// instant. Effects live in the Loop, behind the DCS and Postgres
// interfaces, so every branch of the decision is unit-tested with plain
// values.
//
// Files: decide.go (roles, failover, rejoin), manual.go (switchover,
// failover requests, scheduled restarts, reinitialize), replication.go
// (synchronous standbys and slots), then the loop: loop.go (observe and
// cycle), execute.go (actions), record.go (keys and status written after
// a cycle), settings.go (configuration), ops.go (operator requests from
// the REST API), guard.go (the lease guard and fence).
package ha
