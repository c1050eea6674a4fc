// Package dcs keeps a pgwarden cluster's shared state in etcd v3, in the
// same keys and formats as Patroni, so that patronictl and Patroni-aware
// tools read a pgwarden cluster and pgwarden reads a Patroni one.
//
// All keys live under "<namespace><scope>/" (namespace "/service/" by
// default):
//
//	initialize      the PostgreSQL system identifier, a plain decimal string
//	config          the dynamic configuration, JSON
//	leader          the leader's member name, plain text, bound to its lease
//	members/<name>  each member's state, JSON, bound to its lease
//	history         the timeline history, JSON
//	status          {"optime":N,"slots":{...}}, JSON
//	failover        a requested switchover or failover, JSON
//	sync            the synchronous replication state, JSON
//
// Each member holds one lease, kept alive by the caller's HA loop through
// RefreshLease; its member key and, on the leader, the leader key are bound
// to it, so they disappear when the member stops renewing. Every write that
// depends on the current state is a single etcd transaction.
//
// A whole-cluster view is read with one range read (Snapshot), and Watch
// wakes the HA loop when any key changes. Nothing here blocks on etcd being
// reachable: every call takes a context, and the caller bounds it.
package dcs
