// Package ha is the high-availability loop: each cycle it observes the
// cluster in etcd and the local PostgreSQL, decides with a pure function
// (Decide) what this member should do, and acts on that plan.
//
// Decide does no I/O and reads no clock: the observation carries the
// instant. Effects live in the Loop, behind the DCS and Postgres
// interfaces, so every branch of the decision is unit-tested with plain
// values.
package ha
