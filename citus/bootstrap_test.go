package citus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstalled(t *testing.T) {
	// A fake pg_config pointing at folders the test fills.
	dir := t.TempDir()
	lib, share := filepath.Join(dir, "lib"), filepath.Join(dir, "share")
	for _, d := range []string{filepath.Join(dir, "bin"), lib, filepath.Join(share, "extension")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho " + lib + "\necho " + share + "\n"
	if err := os.WriteFile(filepath.Join(dir, "bin", "pg_config"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := Installed(bin); err == nil || !strings.Contains(err.Error(), "citus.so is missing") {
		t.Fatalf("without citus.so: %v", err)
	}
	os.WriteFile(filepath.Join(lib, "citus.so"), nil, 0o644)
	if err := Installed(bin); err == nil || !strings.Contains(err.Error(), "citus.control is missing") {
		t.Fatalf("without citus.control: %v", err)
	}
	os.WriteFile(filepath.Join(share, "extension", "citus.control"), nil, 0o644)
	if err := Installed(bin); err != nil {
		t.Fatalf("with both: %v", err)
	}
	if err := Installed(filepath.Join(dir, "nosuch")); err == nil || !strings.Contains(err.Error(), "cannot tell") {
		t.Fatalf("without pg_config: %v", err)
	}
}

func TestAdjustParameters(t *testing.T) {
	p := map[string]string{"shared_preload_libraries": "pg_stat_statements, citus", "max_connections": "50"}
	AdjustParameters(p, false, "10.0.0.1")
	if p["shared_preload_libraries"] != "citus,pg_stat_statements" || p["max_prepared_transactions"] != "100" ||
		p["wal_level"] != "logical" || p["citus.local_hostname"] != "10.0.0.1" {
		t.Errorf("adjusted: %v", p)
	}
	p = map[string]string{"max_prepared_transactions": "7"}
	AdjustParameters(p, true, "10.0.0.1")
	if _, ok := p["shared_preload_libraries"]; ok || p["max_prepared_transactions"] != "7" || p["citus.local_hostname"] != "" {
		t.Errorf("stand-in: %v", p)
	}
}
