// Package citus keeps a Citus cluster's coordinator metadata (pg_dist_node)
// in step with the leaders pgwarden elects in every group.
//
// topology.go and want.go are pure: from the rows of pg_dist_node and a
// group's DCS keys they plan the citus_add_node / citus_update_node /
// citus_add_secondary_node / citus_remove_node calls that make the table
// true, keeping (nodename, nodeport) unique at every step. coordinator.go
// runs on the coordinator group's members: one goroutine owns a connection
// to the local Citus database, compares the table with the DCS on every
// change, and carries out the workers' events (POST /citus), holding a
// group's statements in an open transaction while its primary changes.
// notify.go is the worker side of those events; bootstrap.go sets Citus up
// in a new cluster and adjusts PostgreSQL's parameters.
package citus
