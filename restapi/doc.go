// Package restapi serves pgwarden's REST API: the paths, status codes and
// JSON documents of Patroni's REST API, so that load balancers (HAProxy's
// httpchk, Kubernetes probes), monitoring and tools written for Patroni work
// against a pgwarden member unchanged.
//
// Every health and status answer is computed from the member status the HA
// loop last published on a [status.Board]; no such request ever queries
// PostgreSQL or the DCS. Health checks are therefore cheap and never block
// behind a slow database or etcd. Only the operation endpoints below read
// the DCS, through [Options.Ops].
//
// Read-only endpoints (GET, with HEAD and OPTIONS answering the same status
// line without a body):
//
//   - /, /primary, /master, /leader, /read-write: 200 when the member runs
//     the primary and holds an unexpired leader lease. GET / returns the
//     member status document like /patroni, with /primary's status code.
//   - /replica: 200 on a running, fresh, load-balanced replica; ?lag=
//     (bytes or "16kB", "1MB", ...), ?replication_state= and ?tag_<key>=
//     narrow it down.
//   - /read-only: /primary or /replica.
//   - /health: 200 when PostgreSQL is running.
//   - /liveness, /readiness: probes for orchestrators, status line only.
//   - /sync, /synchronous, /async, /asynchronous, /quorum,
//     /read-only-sync, /read-only-quorum, /standby-leader: as Patroni.
//   - /patroni: the member status document.
//   - /cluster: the cluster topology from the last DCS snapshot.
//   - /metrics: Prometheus metrics with Patroni's names.
//   - /config: the dynamic configuration (the config key), /history: the
//     history key, both in the layout of Python's json.dumps.
//
// Operation endpoints, backed by [Operations] (503 without one) and behind
// basic authentication when [Options.Auth] is set, answer with Patroni's
// status codes and plain-text messages: POST /switchover, POST /failover,
// DELETE /switchover, POST /restart, DELETE /restart, POST /reinitialize,
// POST /reload, PATCH /config, PUT /config. Other packages may add unsafe
// routes with [Server.HandleUnsafe].
package restapi
