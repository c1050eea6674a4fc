// Package citus keeps a Citus cluster's coordinator metadata (pg_dist_node) in step with the leaders pgwarden elects in every group.
package citus
