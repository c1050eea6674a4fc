package citus

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Installed reports, as an error saying what is missing, whether the Citus
// extension is installed for the PostgreSQL whose binaries are in binDir:
// citus.so in pg_config's pkglibdir and citus.control in its
// sharedir/extension (what makes citus appear in pg_available_extensions).
func Installed(binDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pgConfig := filepath.Join(binDir, "pg_config")
	out, err := exec.CommandContext(ctx, pgConfig, "--pkglibdir", "--sharedir").Output()
	if err != nil {
		return fmt.Errorf("cannot tell whether Citus is installed: %s: %w", pgConfig, err)
	}
	dirs := strings.Fields(string(out))
	if len(dirs) != 2 {
		return fmt.Errorf("cannot tell whether Citus is installed: %s printed %q", pgConfig, out)
	}
	for _, f := range []string{filepath.Join(dirs[0], "citus.so"), filepath.Join(dirs[1], "extension", "citus.control")} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("the Citus extension is not installed for the PostgreSQL in %s: %s is missing", binDir, f)
		}
	}
	return nil
}
