// Package e2e tests pgwarden across real processes: the built daemon,
// a real embedded etcd server and real PostgreSQL 15 instances on
// loopback, with real faults (kill -9, SIGSTOP/SIGCONT, SIGTERM).
package e2e
