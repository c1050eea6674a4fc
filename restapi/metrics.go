package restapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/status"
)

// handleMetrics answers /metrics with the Prometheus text format (never
// OpenMetrics, whose encoder would rename the counters with a _total
// suffix). HEAD and OPTIONS answer 200 without gathering anything.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusOK)
		return
	}
	s.metrics.ServeHTTP(w, r)
}

// metricLabels are the variable labels of every metric, as Patroni 4.
var metricLabels = []string{"scope", "name"}

// postgresStates numbers the member states as Patroni's
// patroni_postgres_state does; states not listed report -1.
var postgresStates = map[string]float64{
	"initializing new cluster":        0,
	"initdb failed":                   1,
	"running custom bootstrap script": 2,
	"custom bootstrap failed":         3,
	"creating replica":                4,
	"running":                         5,
	"starting":                        6,
	"starting after custom bootstrap": 7,
	"start failed":                    8,
	"restarting":                      9,
	"restart failed":                  10,
	"stopping":                        11,
	"stopped":                         12,
	"stop failed":                     13,
	"crashed":                         14,
}

// metricDef is one metric: its descriptor and how to read it from a
// snapshot (ok false: not exported for this snapshot).
type metricDef struct {
	desc  *prometheus.Desc
	vtype prometheus.ValueType
	value func(n *status.Node) (v float64, ok bool)
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func always(f func(n *status.Node) float64) func(*status.Node) (float64, bool) {
	return func(n *status.Node) (float64, bool) { return f(n), true }
}

// collector exports the Board's current snapshot at scrape time, with the
// metric names, types and values of Patroni's /metrics.
type collector struct {
	board *status.Board
	defs  []metricDef
}

func newCollector(board *status.Board) *collector {
	c := &collector{board: board}
	gauge := func(name, help string, value func(*status.Node) (float64, bool)) {
		c.defs = append(c.defs, metricDef{prometheus.NewDesc(name, help, metricLabels, nil), prometheus.GaugeValue, value})
	}
	counter := func(name, help string, value func(*status.Node) (float64, bool)) {
		c.defs = append(c.defs, metricDef{prometheus.NewDesc(name, help, metricLabels, nil), prometheus.CounterValue, value})
	}
	isReplica := func(n *status.Node) bool { return queried(n) && n.PG.InRecovery }
	isPrimary := func(n *status.Node) bool { return queried(n) && !n.PG.InRecovery }

	gauge("patroni_version", "pgwarden version as Patroni encodes its own: two digits per component (4.1.4 is 040104).",
		always(func(n *status.Node) float64 { return versionNumber(n.Version) }))
	gauge("patroni_postgres_running", "1 when PostgreSQL runs and answers, else 0.",
		always(func(n *status.Node) float64 { return b2f(stateOf(n) == "running") }))
	gauge("patroni_postmaster_start_time", "Start time of the postmaster in seconds since the epoch, 0 when unknown.",
		always(func(n *status.Node) float64 {
			if !queried(n) || n.PG.StartTime.IsZero() {
				return 0
			}
			return float64(n.PG.StartTime.UnixMicro()) / 1e6
		}))
	gauge("patroni_primary", "1 when PostgreSQL runs as the primary, else 0.",
		always(func(n *status.Node) float64 { return b2f(roleOf(n) == "primary") }))
	counter("patroni_xlog_location", "WAL position of the primary in bytes, 0 on other members.",
		always(func(n *status.Node) float64 {
			if !isPrimary(n) {
				return 0
			}
			return float64(n.PG.WALPosition)
		}))
	gauge("patroni_standby_leader", "1 when this member is the leader of a standby cluster, else 0.",
		always(func(*status.Node) float64 { return 0 }))
	gauge("patroni_replica", "1 when PostgreSQL runs as a replica, else 0.",
		always(func(n *status.Node) float64 { return b2f(roleOf(n) == "replica") }))
	gauge("patroni_sync_standby", "1 when this member is a synchronous standby, else 0.",
		always(func(*status.Node) float64 { return 0 }))
	gauge("patroni_quorum_standby", "1 when this member is a quorum synchronous standby, else 0.",
		always(func(*status.Node) float64 { return 0 }))
	counter("patroni_xlog_received_location", "WAL position received by the replica in bytes, 0 on other members.",
		always(func(n *status.Node) float64 {
			if !isReplica(n) {
				return 0
			}
			return float64(receivedOf(n))
		}))
	counter("patroni_xlog_replayed_location", "WAL position replayed by the replica in bytes, 0 on other members.",
		always(func(n *status.Node) float64 {
			if !isReplica(n) {
				return 0
			}
			return float64(n.PG.ReplayedLSN)
		}))
	gauge("patroni_xlog_replayed_timestamp", "Commit time of the last replayed transaction in seconds since the epoch, 0 when unknown.",
		always(func(n *status.Node) float64 {
			if !isReplica(n) || n.PG.ReplayedTime.IsZero() {
				return 0
			}
			return float64(n.PG.ReplayedTime.UnixMicro()) / 1e6
		}))
	gauge("patroni_xlog_paused", "1 when WAL replay is paused, else 0.",
		always(func(n *status.Node) float64 { return b2f(isReplica(n) && n.PG.ReplayPaused) }))
	// Patroni exports the next two only when it could read the server
	// version (PostgreSQL answering, 9.6 or later).
	gauge("patroni_postgres_streaming", "1 when the replica streams WAL from its upstream, else 0.",
		func(n *status.Node) (float64, bool) {
			return b2f(replicationStateOf(n) == "streaming"), queried(n) && n.PG.ServerVersion >= 90600
		})
	gauge("patroni_postgres_in_archive_recovery", "1 when the replica restores WAL from an archive, else 0.",
		func(n *status.Node) (float64, bool) { return 0, queried(n) && n.PG.ServerVersion >= 90600 })
	gauge("patroni_postgres_server_version", "PostgreSQL server_version_num when it answers, else 0.",
		always(func(n *status.Node) float64 {
			if !queried(n) {
				return 0
			}
			return float64(n.PG.ServerVersion)
		}))
	gauge("patroni_cluster_unlocked", "1 when no member holds the leader key, else 0.",
		always(func(n *status.Node) float64 { return b2f(clusterUnlocked(n)) }))
	gauge("patroni_failsafe_mode_is_active", "1 when failsafe mode is active, else 0.",
		always(func(*status.Node) float64 { return 0 }))
	gauge("patroni_postgres_timeline", "Timeline of PostgreSQL when it answers, else 0.",
		always(func(n *status.Node) float64 {
			if !queried(n) {
				return 0
			}
			return float64(n.PG.Timeline)
		}))
	gauge("patroni_dcs_last_seen", "Last successful contact with the DCS in seconds since the epoch, 0 before the first.",
		always(func(n *status.Node) float64 {
			if n.DCSLastSeen.IsZero() {
				return 0
			}
			return float64(n.DCSLastSeen.Unix())
		}))
	gauge("patroni_pending_restart", "1 when PostgreSQL needs a restart for a parameter change, else 0.",
		always(func(n *status.Node) float64 { return b2f(n.PG.PendingRestart) }))
	gauge("patroni_is_paused", "1 when the cluster is in maintenance mode (automatic failover off), else 0.",
		always(func(n *status.Node) float64 { return b2f(n.Paused) }))
	gauge("patroni_postgres_state", "Member state as a number: 0 initializing new cluster, 1 initdb failed, "+
		"2 running custom bootstrap script, 3 custom bootstrap failed, 4 creating replica, 5 running, 6 starting, "+
		"7 starting after custom bootstrap, 8 start failed, 9 restarting, 10 restart failed, 11 stopping, "+
		"12 stopped, 13 stop failed, 14 crashed, -1 other.",
		always(func(n *status.Node) float64 {
			if v, ok := postgresStates[n.State]; ok {
				return v
			}
			return -1
		}))
	return c
}

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.defs {
		ch <- d.desc
	}
}

// Collect sends the metrics of the current snapshot; nothing before the
// first publication, when scope and name are not known.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.board.Load()
	if n == nil {
		return
	}
	for _, d := range c.defs {
		v, ok := d.value(n)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(d.desc, d.vtype, v, n.Scope, n.Name)
	}
}

// versionNumber encodes "4.1.4" as 40104 (Patroni prints it zero padded,
// 040104; the Prometheus encoder prints numbers, not strings). Non-numeric
// components (pre-release suffixes) count their leading digits only.
func versionNumber(v string) float64 {
	var out float64
	parts := strings.SplitN(v, ".", 3)
	for i := 0; i < 3; i++ {
		out *= 100
		if i < len(parts) {
			p := parts[i]
			end := 0
			for end < len(p) && p[end] >= '0' && p[end] <= '9' {
				end++
			}
			if x, err := strconv.Atoi(p[:end]); err == nil {
				out += float64(min(x, 99))
			}
		}
	}
	return out
}
