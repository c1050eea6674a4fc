package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/launcher"
)

// patronictlTimeout bounds one patronictl run; its etcd3 client retries for
// a long time when it cannot reach etcd, and a hung run must not hang CI.
const patronictlTimeout = 30 * time.Second

// Patroni's own patronictl (Debian's 3.0.2) reads a pgwarden cluster from
// etcd and shows it as it shows a Patroni cluster: one Leader, two
// Replicas, all running on timeline 1 with no lag, each host as
// 127.0.0.1:<port>. topology and history must work too.
func TestPatronictl(t *testing.T) {
	bin, err := exec.LookPath("patronictl")
	if err != nil {
		fmt.Println("SKIP: patronictl not installed (Debian package patroni)")
		t.Skip("patronictl not installed (Debian package patroni)")
	}
	if out, err := runPatronictl(bin, "version"); err == nil {
		t.Logf("using %s: %s", bin, strings.TrimSpace(out))
	}

	c, p := startCluster(t, nil)
	cfg := writePatronictlConfig(t, c)

	// The member keys and the status key are rewritten every loop_wait;
	// allow a few cycles for a replica's first full member key.
	var problems []string
	var rows []map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for attempt := 1; ; attempt++ {
		out, err := runPatronictl(bin, "-c", cfg, "list", "-f", "json")
		if err != nil {
			t.Fatalf("patronictl list -f json: %v\n%s", err, out)
		}
		rows = nil
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("patronictl list -f json printed no JSON list: %v\n%s", err, out)
		}
		problems = checkPatronictlRows(c, p, rows)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		t.Logf("patronictl list -f json, attempt %d: %s", attempt, strings.Join(problems, "; "))
		time.Sleep(time.Second)
	}
	pretty, _ := json.MarshalIndent(rows, "", "  ")
	if len(problems) > 0 {
		t.Errorf("patronictl list -f json does not show the cluster right:\n  %s\n%s",
			strings.Join(problems, "\n  "), pretty)
	}

	table, err := runPatronictl(bin, "-c", cfg, "list")
	if err != nil {
		t.Fatalf("patronictl list: %v\n%s", err, table)
	}
	t.Logf("patronictl list:\n%s", table)
	for _, want := range []string{" Cluster: e2e ", "| Member ", "| Host ", "| Role ", "| State ", "| TL ", "| Lag in MB |", "| Leader ", "| Replica "} {
		if !strings.Contains(table, want) {
			t.Errorf("patronictl list table lacks %q", want)
		}
	}
	for _, n := range c.Nodes {
		if !strings.Contains(table, fmt.Sprintf("| %s ", n.Name)) || !strings.Contains(table, fmt.Sprintf("127.0.0.1:%d", n.PGPort)) {
			t.Errorf("patronictl list table lacks member %s on 127.0.0.1:%d", n.Name, n.PGPort)
		}
	}

	topo, err := runPatronictl(bin, "-c", cfg, "topology")
	if err != nil {
		t.Errorf("patronictl topology: %v\n%s", err, topo)
	} else {
		t.Logf("patronictl topology:\n%s", topo)
	}

	hist, err := runPatronictl(bin, "-c", cfg, "history")
	if err != nil {
		t.Errorf("patronictl history: %v\n%s", err, hist)
	} else {
		t.Logf("patronictl history:\n%s", hist)
	}
}

// writePatronictlConfig writes the smallest configuration patronictl needs
// to find the cluster: scope, namespace and the etcd3 host.
func writePatronictlConfig(t *testing.T, c *launcher.Cluster) string {
	t.Helper()
	host := strings.TrimPrefix(c.EtcdURL(), "http://")
	if host == "" {
		t.Fatal("the cluster has no etcd URL")
	}
	path := filepath.Join(t.TempDir(), "patronictl.yml")
	body := fmt.Sprintf("scope: %s\nnamespace: /service/\netcd3:\n  hosts: %s\n", c.Opts.Scope, host)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runPatronictl runs patronictl with args and returns its standard output;
// on failure the error carries the exit status and standard error.
func runPatronictl(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), patronictlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s (%v)", patronictlTimeout, err)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("patronictl %s: %w; stderr: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// checkPatronictlRows compares the rows of `patronictl list -f json` with
// the cluster, whose primary is node p, and returns what differs.
func checkPatronictlRows(c *launcher.Cluster, p int, rows []map[string]any) []string {
	var problems []string
	if len(rows) != len(c.Nodes) {
		problems = append(problems, fmt.Sprintf("%d members listed, want %d", len(rows), len(c.Nodes)))
	}
	byName := map[string]map[string]any{}
	for _, r := range rows {
		name, _ := r["Member"].(string)
		byName[name] = r
	}
	for i, n := range c.Nodes {
		r, ok := byName[n.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("member %s not listed", n.Name))
			continue
		}
		want := map[string]any{
			"Cluster": c.Opts.Scope,
			"Member":  n.Name,
			"Host":    fmt.Sprintf("127.0.0.1:%d", n.PGPort),
			"Role":    "Replica",
			"State":   "running",
			"TL":      float64(1),
		}
		if i == p {
			want["Role"] = "Leader"
		} else {
			want["Lag in MB"] = float64(0)
		}
		// patronictl 3.0.2 shows the member key's state ("running");
		// later versions show a streaming replica as "streaming".
		if i != p && r["State"] == "streaming" {
			want["State"] = "streaming"
		}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := want[k]; !ok {
				problems = append(problems, fmt.Sprintf("%s: unexpected column %q = %v", n.Name, k, r[k]))
			}
		}
		for _, k := range []string{"Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"} {
			w, expected := want[k]
			if !expected {
				continue
			}
			if got, ok := r[k]; !ok {
				problems = append(problems, fmt.Sprintf("%s: column %q missing, want %v", n.Name, k, w))
			} else if got != w {
				problems = append(problems, fmt.Sprintf("%s: %s = %#v, want %#v", n.Name, k, got, w))
			}
		}
	}
	return problems
}
