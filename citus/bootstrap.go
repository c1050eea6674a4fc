package citus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// AdjustParameters sets what every node of a Citus cluster needs, as
// Patroni does: citus first in shared_preload_libraries, wal_level logical
// (Citus moves shards with logical replication), max_prepared_transactions
// twice max_connections unless set (Citus commits across nodes with
// two-phase commit, and standbys need the same value), and
// citus.local_hostname to the address this node is reached at. A stand-in
// (tests without Citus) gets only the last three but the hostname.
func AdjustParameters(p map[string]string, standin bool, localHost string) {
	if !standin {
		libs := []string{"citus"}
		for _, l := range strings.Split(p["shared_preload_libraries"], ",") {
			l = strings.TrimSpace(strings.Trim(strings.TrimSpace(l), `"`))
			if l != "" && l != "citus" {
				libs = append(libs, l)
			}
		}
		p["shared_preload_libraries"] = strings.Join(libs, ",")
		if localHost != "" {
			p["citus.local_hostname"] = localHost
		}
	}
	p["wal_level"] = "logical"
	if v := strings.TrimSpace(p["max_prepared_transactions"]); v == "" || v == "0" {
		mc := 100
		if n, err := strconv.Atoi(strings.TrimSpace(p["max_connections"])); err == nil && n > 0 {
			mc = n
		}
		p["max_prepared_transactions"] = strconv.Itoa(2 * mc)
	}
}

// BootstrapOptions say how to set up Citus in a freshly initialised
// primary.
type BootstrapOptions struct {
	Database    string
	Coordinator bool
	Host        string // this node's address, for citus_set_coordinator_host
	Port        int
	StandinSQL  string // tests only: run this file instead of CREATE EXTENSION citus
	// Connect opens a superuser connection to the local instance.
	Connect func(ctx context.Context, db string) (*pgx.Conn, error)
}

// Bootstrap creates the Citus database and the extension in it, and on
// the coordinator registers this node as the coordinator
// (citus_set_coordinator_host). Run once, on the primary that initdb made.
func Bootstrap(ctx context.Context, o BootstrapOptions) error {
	if o.Database != "postgres" {
		conn, err := o.Connect(ctx, "postgres")
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{o.Database}.Sanitize())
		conn.Close(ctx)
		var pe *pgconn.PgError
		if err != nil && !(errors.As(err, &pe) && pe.Code == "42P04") { // duplicate_database
			return fmt.Errorf("creating the Citus database %s: %w", o.Database, err)
		}
	}
	conn, err := o.Connect(ctx, o.Database)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if o.StandinSQL != "" {
		sql, err := os.ReadFile(o.StandinSQL)
		if err != nil {
			return fmt.Errorf("citus.standin_sql: %w", err)
		}
		if _, err := conn.PgConn().Exec(ctx, string(sql)).ReadAll(); err != nil {
			return fmt.Errorf("running the Citus stand-in %s: %w", o.StandinSQL, err)
		}
	} else if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS citus"); err != nil {
		return fmt.Errorf("CREATE EXTENSION citus in %s (is Citus installed, and first in shared_preload_libraries?): %w", o.Database, err)
	}
	if o.Coordinator {
		if _, err := conn.Exec(ctx, "SELECT citus_set_coordinator_host($1, $2, 'primary', 'default')", o.Host, o.Port); err != nil {
			return fmt.Errorf("registering this node as the Citus coordinator: %w", err)
		}
	}
	return nil
}
