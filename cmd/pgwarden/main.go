// Command pgwarden is the high-availability daemon: one runs beside every
// PostgreSQL instance, keeps the group's leader key in etcd and makes the
// local instance the primary or a standby of the leader.
//
// Usage: pgwarden CONFIG.yml | --validate-config CONFIG.yml | --version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/citus"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/fence"
	"github.com/pgwarden/pgwarden/ha"
	"github.com/pgwarden/pgwarden/internal/version"
	"github.com/pgwarden/pgwarden/postgres"
	"github.com/pgwarden/pgwarden/restapi"
	"github.com/pgwarden/pgwarden/status"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("pgwarden", flag.ContinueOnError)
	validate := fs.Bool("validate-config", false, "check the configuration file and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fenceDir := fs.String("fence", "", "internal: run as the fence process of the PostgreSQL in this data directory")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pgwarden [--validate-config] CONFIG.yml\n       pgwarden --version\n")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *fenceDir != "" {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("fence", *fenceDir)
		fence.Watch(os.Stdin, *fenceDir, log)
		return 0
	}
	if *showVersion {
		fmt.Printf("pgwarden %s\n", version.Version)
		return 0
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	path := fs.Arg(0)
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgwarden: %v\n", err)
		return 1
	}
	if *validate {
		fmt.Printf("%s: configuration is valid\n", path)
		return 0
	}
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, level).With("member", cfg.Name)
	slog.SetDefault(log)
	if err := serve(cfg, path, log, level); err != nil {
		log.Error("pgwarden stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c config.Log, level *slog.LevelVar) *slog.Logger {
	setLevel(level, c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func setLevel(level *slog.LevelVar, s string) {
	switch s {
	case "debug":
		level.Set(slog.LevelDebug)
	case "warn", "warning":
		level.Set(slog.LevelWarn)
	case "error":
		level.Set(slog.LevelError)
	default:
		level.Set(slog.LevelInfo)
	}
}

func serve(cfg *config.Config, path string, log *slog.Logger, level *slog.LevelVar) error {
	for _, k := range cfg.Unsupported {
		log.Warn("configuration key accepted but not supported yet; it has no effect", "key", k)
	}
	if cfg.Citus != nil && cfg.Citus.StandinSQL == "" {
		// PostgreSQL would not start without it (citus is preloaded), and
		// a bootstrap would be retried over and over.
		if err := citus.Installed(cfg.PostgreSQL.BinDir); err != nil {
			return fmt.Errorf("citus section: %w; install Citus on every node of the Citus cluster", err)
		}
	}
	d, err := dcs.New(dcs.Options{
		Endpoints: cfg.Etcd3.Endpoints(),
		Username:  cfg.Etcd3.Username, Password: cfg.Etcd3.Password,
		CACert: cfg.Etcd3.CACert, Cert: cfg.Etcd3.Cert, Key: cfg.Etcd3.Key,
		Namespace: cfg.Namespace, Scope: cfg.Scope, Name: cfg.Name,
		Citus: cfg.Citus != nil, Group: citusGroup(cfg),
		TTL:    cfg.Bootstrap.DCS.TTL,
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("connecting to etcd: %w", err)
	}
	defer d.Close()

	pg, err := postgres.New(pgSettings(cfg, log))
	if err != nil {
		return err
	}
	defer pg.Close()

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding our own binary for the fence process: %w", err)
	}
	fc, err := fence.Start([]string{self, "--fence", cfg.PostgreSQL.DataDir}, cfg.PostgreSQL.DataDir, log)
	if err != nil {
		return err
	}
	defer fc.Close()

	var cn *citusNode
	if cfg.Citus != nil {
		cn = newCitusNode(cfg, d, pg, log)
	}

	board := &status.Board{}
	hc := ha.Config{
		Name:      cfg.Name,
		Scope:     cfg.Scope,
		Version:   version.Version,
		ConnURL:   fmt.Sprintf("postgres://%s/postgres", net.JoinHostPort(cfg.PostgresConnectHost(), fmt.Sprint(cfg.PostgresConnectPort()))),
		APIURL:    cfg.RestAPIConnectURL(),
		Tags:      cfg.Tags,
		Bootstrap: cfg.Bootstrap.DCS,
		Fence:     fc,

		LocalParameters:       cfg.PostgreSQL.Parameters,
		UsePgRewind:           cfg.PostgreSQL.UsePgRewind,
		UseSlots:              cfg.PostgreSQL.UseSlots,
		RemoveOnRewindFailure: cfg.PostgreSQL.RemoveDataDirectoryOnRewindFailure,
		RemoveOnDiverged:      cfg.PostgreSQL.RemoveDataDirectoryOnDivergedTimelines,
	}
	var events restapi.CitusEvents
	var citusGroups func(context.Context) (map[int]*dcs.Cluster, int64, error)
	if cn != nil {
		citusGroups = d.SnapshotGroups
		hc.Citus, hc.CitusGroup = cn, cfg.Citus.Group
		if cn.coord != nil {
			events = cn.coord
		}
	}
	loop := ha.New(hc, d, pg, board, log)

	reloadFn := func() error { return reload(path, cfg, log, level, loop) }
	api := restapi.New(restapi.Options{Board: board, Auth: cfg.RestAPI.Authentication, Logger: log,
		Ops: operations{Loop: loop, reload: reloadFn}, Citus: events, CitusGroups: citusGroups})
	ln, err := net.Listen("tcp", cfg.RestAPI.Listen)
	if err != nil {
		return fmt.Errorf("restapi.listen %s: %w", cfg.RestAPI.Listen, err)
	}
	go func() {
		if err := api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("REST API stopped", "err", err)
		}
	}()

	ctx, stop := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			if s == syscall.SIGHUP {
				_ = reloadFn()
				continue
			}
			log.Info("signal received: stopping", "signal", s.String())
			stop()
			return
		}
	}()
	if cn != nil && cn.coord != nil {
		go cn.coord.Run(ctx)
	}
	log.Info("pgwarden starting", "version", version.Version, "scope", cfg.Scope,
		"restapi", cfg.RestAPI.Listen, "etcd", cfg.Etcd3.Endpoints())
	err = loop.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = api.Shutdown(sctx)
	return err
}

func pgSettings(cfg *config.Config, log *slog.Logger) postgres.Settings {
	return postgres.Settings{
		Name:          cfg.Name,
		DataDir:       cfg.PostgreSQL.DataDir,
		BinDir:        cfg.PostgreSQL.BinDir,
		ListenHosts:   cfg.PostgresListenHosts(),
		Port:          cfg.PostgresPort(),
		ConnectHost:   cfg.PostgresConnectHost(),
		Superuser:     postgres.Credentials(cfg.PostgreSQL.Superuser),
		Replication:   postgres.Credentials(cfg.PostgreSQL.Replication),
		Parameters:    pgParameters(cfg),
		PgHBA:         pgHBA(cfg),
		PgPass:        cfg.PostgreSQL.PgPass,
		InitdbOptions: cfg.Bootstrap.Initdb,
		OSUser:        cfg.PostgreSQL.OSUser,
		Logger:        log,
	}
}

func citusGroup(cfg *config.Config) int {
	if cfg.Citus == nil {
		return 0
	}
	return cfg.Citus.Group
}

// pgParameters are the parameters PostgreSQL starts with: bootstrap.dcs
// overlaid by the local ones, and what Citus needs.
func pgParameters(cfg *config.Config) map[string]string {
	p := cfg.MergedParameters(cfg.Bootstrap.DCS)
	if cfg.Citus != nil {
		citus.AdjustParameters(p, cfg.Citus.StandinSQL != "", cfg.PostgresConnectHost())
	}
	return p
}

// pgHBA: postgresql.pg_hba wins; bootstrap.pg_hba is used when it is
// absent, as Patroni does.
func pgHBA(cfg *config.Config) []string {
	if len(cfg.PostgreSQL.PgHBA) > 0 {
		return cfg.PostgreSQL.PgHBA
	}
	return cfg.Bootstrap.PgHBA
}

// reload re-reads the configuration file (SIGHUP, POST /reload). A file
// that no longer validates is refused whole and the running configuration
// kept.
func reload(path string, cur *config.Config, log *slog.Logger, level *slog.LevelVar, loop *ha.Loop) error {
	next, err := config.Load(path)
	if err != nil {
		log.Error("reload: configuration not reloaded, keeping the running one", "err", err)
		return err
	}
	if err := postgres.CheckParameters(next.PostgreSQL.Parameters); err != nil {
		log.Error("reload: configuration not reloaded, keeping the running one", "err", err)
		return err
	}
	for _, k := range []struct {
		name    string
		changed bool
	}{
		{"scope", next.Scope != cur.Scope},
		{"name", next.Name != cur.Name},
		{"restapi.listen", next.RestAPI.Listen != cur.RestAPI.Listen},
		{"postgresql.data_dir", next.PostgreSQL.DataDir != cur.PostgreSQL.DataDir},
		{"postgresql.listen", next.PostgreSQL.Listen != cur.PostgreSQL.Listen},
	} {
		if k.changed {
			log.Warn("reload: this key changes only at restart", "key", k.name)
		}
	}
	setLevel(level, next.Log.Level)
	loop.Reload(next.Tags, next.PostgreSQL.Parameters)
	log.Info("reload: configuration reloaded", "path", path)
	return nil
}
