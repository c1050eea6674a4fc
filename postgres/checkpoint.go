package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Checkpoint runs CHECKPOINT on the local server. Before a planned
// shutdown it makes the shutdown checkpoint short, so writes stop for
// less time.
func (i *Instance) Checkpoint(ctx context.Context) error {
	err := i.withConn(ctx, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CHECKPOINT")
		return err
	})
	if err != nil {
		return fmt.Errorf("CHECKPOINT: %w", err)
	}
	return nil
}

// CheckParameters reports whether params would be accepted by
// SetParameters (names and values PostgreSQL's configuration can hold).
func CheckParameters(params map[string]string) error {
	_, err := copyParameters(params)
	return err
}
