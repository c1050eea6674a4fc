package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/citus"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/postgres"
)

// citusNode is this member's part in a Citus cluster: the ha.Citus the
// loop calls, and on the coordinator group the keeper of pg_dist_node.
type citusNode struct {
	cfg      *config.Citus
	pg       *postgres.Instance
	host     string
	port     int
	notifier *citus.Notifier
	coord    *citus.Coordinator // coordinator group only
}

func newCitusNode(cfg *config.Config, d *dcs.Etcd, pg *postgres.Instance, log *slog.Logger) *citusNode {
	c := &citusNode{cfg: cfg.Citus, pg: pg, host: cfg.PostgresConnectHost(), port: cfg.PostgresConnectPort()}
	n := &citus.Notifier{Group: cfg.Citus.Group, Name: cfg.Name, Groups: d,
		HTTP: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	if a := cfg.RestAPI.Authentication; a != nil {
		n.Username, n.Password = a.Username, a.Password
	}
	c.notifier = n
	if cfg.Citus.IsCoordinator() {
		c.coord = citus.NewCoordinator(citus.CoordinatorOptions{
			Groups:              d,
			RegisterSecondaries: cfg.Citus.RegisterSecondaries,
			Log:                 log,
			Connect: func(ctx context.Context) (*pgx.Conn, error) {
				return pg.ConnectDB(ctx, cfg.Citus.Database, map[string]string{
					"statement_timeout":                   "0",
					"idle_in_transaction_session_timeout": "0",
					"application_name":                    "pgwarden citus",
				})
			},
		})
	}
	if cfg.Citus.StandinSQL != "" {
		log.Warn("citus.standin_sql is set: running against a test stand-in of the Citus catalogue, not Citus", "file", cfg.Citus.StandinSQL)
	}
	return c
}

func (c *citusNode) AdjustParameters(p map[string]string) {
	citus.AdjustParameters(p, c.cfg.StandinSQL != "", c.host)
}

func (c *citusNode) Bootstrap(ctx context.Context) error {
	return citus.Bootstrap(ctx, citus.BootstrapOptions{
		Database:    c.cfg.Database,
		Coordinator: c.cfg.IsCoordinator(),
		Host:        c.host,
		Port:        c.port,
		StandinSQL:  c.cfg.StandinSQL,
		Connect: func(ctx context.Context, db string) (*pgx.Conn, error) {
			return c.pg.ConnectDB(ctx, db, map[string]string{"synchronous_commit": "local", "statement_timeout": "0"})
		},
	})
}

func (c *citusNode) Notify(ctx context.Context, event string, timeout, cooldown time.Duration) error {
	return c.notifier.Notify(ctx, event, timeout, cooldown)
}

func (c *citusNode) Leading(ctx context.Context, leading bool) {
	if c.coord != nil {
		c.coord.SetLeading(ctx, leading)
	}
}
