package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/launcher"
)

// The operations of patronictl (Debian's 3.0.2) and of our pgwardenctl
// against a pgwarden cluster, one after the other, with the same
// arguments: each must do what it does on a Patroni cluster.

func TestPatronictlOperations(t *testing.T) {
	bin, err := exec.LookPath("patronictl")
	if err != nil {
		fmt.Println("SKIP: patronictl not installed (Debian package patroni)")
		t.Skip("patronictl not installed (Debian package patroni)")
	}
	runCtlOperations(t, func(c *launcher.Cluster, args ...string) (string, error) {
		cfg := writePatronictlConfig(t, c)
		return runPatronictl(bin, append([]string{"-c", cfg}, args...)...)
	})
}

func TestPgwardenctlOperations(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join(filepath.Dir(binary), "pgwardenctl"))
	if err != nil {
		t.Fatal(err)
	}
	runCtlOperations(t, func(c *launcher.Cluster, args ...string) (string, error) {
		return runPatronictl(bin, append([]string{"-c", c.Nodes[0].ConfigPath}, args...)...)
	})
}

func runCtlOperations(t *testing.T, ctl func(c *launcher.Cluster, args ...string) (string, error)) {
	c, p := startCluster(t, nil)
	run := func(args ...string) string {
		t.Helper()
		out, err := ctl(c, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	scope := c.Opts.Scope
	exec1(t, c, p, "CREATE TABLE ctl(id int)")
	time.Sleep(2 * time.Second) // member keys show the replicas streaming

	// switchover --force to a named candidate.
	cand := otherThan(c, p)
	out := run("switchover", scope, "--leader", c.Nodes[p].Name, "--candidate", c.Nodes[cand].Name, "--force")
	t.Logf("switchover:\n%s", out)
	eventually(t, 20*time.Second, "candidate is the primary after switchover", func() string {
		if c.Primary() != cand {
			return c.Table()
		}
		return ""
	})
	if _, err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatalf("after switchover: %v\n%s", err, c.Table())
	}
	time.Sleep(2 * time.Second)

	// failover --force to another member (the leader is healthy: it acts
	// as a switchover, as in Patroni).
	target := otherThan(c, cand)
	out = run("failover", scope, "--candidate", c.Nodes[target].Name, "--force")
	t.Logf("failover:\n%s", out)
	eventually(t, 20*time.Second, "target is the primary after failover", func() string {
		if c.Primary() != target {
			return c.Table()
		}
		return ""
	})
	if _, err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatalf("after failover: %v\n%s", err, c.Table())
	}
	// A failover to a healthy leader is a handover: the old leader rejoins
	// as it is, without pg_rewind.
	if b := readLog(t, c, cand); strings.Contains(b, "rewound the data directory") {
		t.Errorf("the leader that handed over in a failover needed pg_rewind")
	}

	// history shows both promotions.
	eventually(t, 10*time.Second, "history lists two promotions", func() string {
		h, _ := ctl(c, "history", scope)
		if !strings.Contains(h, c.Nodes[cand].Name) || !strings.Contains(h, c.Nodes[target].Name) {
			return h
		}
		return ""
	})

	// pause / resume.
	out = run("pause", scope, "--wait")
	t.Logf("pause:\n%s", out)
	if l := run("list", scope); !strings.Contains(l, "Maintenance mode: on") {
		t.Errorf("list does not show maintenance mode:\n%s", l)
	}
	out = run("resume", scope, "--wait")
	t.Logf("resume:\n%s", out)
	if l := run("list", scope); strings.Contains(l, "Maintenance mode: on") {
		t.Errorf("list still shows maintenance mode after resume:\n%s", l)
	}

	// show-config / edit-config --force with a parameter change.
	if sc := run("show-config", scope); !strings.Contains(sc, "loop_wait") {
		t.Errorf("show-config lacks loop_wait:\n%s", sc)
	}
	run("edit-config", scope, "--pg", "work_mem=9MB", "--force")
	for i := range c.Nodes {
		eventually(t, 15*time.Second, fmt.Sprintf("work_mem on node %d", i), func() string {
			if v := query1(t, c, i, "SHOW work_mem"); v != "9MB" {
				return "work_mem = " + v
			}
			return ""
		})
	}

	// A reload-only parameter leaves nothing pending, also on the members
	// that were promoted meanwhile.
	for i := range c.Nodes {
		eventually(t, 10*time.Second, fmt.Sprintf("nothing pending restart on node %d", i), func() string {
			if v := query1(t, c, i, "SELECT coalesce(string_agg(name, ','), '') FROM pg_settings WHERE pending_restart"); v != "" {
				return "pending: " + v
			}
			return ""
		})
	}

	// restart --force of one replica: a new postmaster, still a replica.
	r := otherThan(c, target)
	before := c.PostmasterPID(r)
	out = run("restart", scope, c.Nodes[r].Name, "--force")
	t.Logf("restart:\n%s", out)
	eventually(t, 30*time.Second, "replica restarted", func() string {
		if pid := c.PostmasterPID(r); pid == 0 || pid == before {
			return fmt.Sprintf("postmaster %d (was %d)", pid, before)
		}
		return ""
	})

	// reinit --force of a replica: cloned again, streaming.
	exec1(t, c, target, "INSERT INTO ctl VALUES (42)")
	out = run("reinit", scope, c.Nodes[r].Name, "--force")
	t.Logf("reinit:\n%s", out)
	if _, err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatalf("after reinit: %v\n%s", err, c.Table())
	}
	waitRow(t, c, r, "ctl", 42, 30*time.Second)
	t.Logf("list at the end:\n%s", run("list", scope))

}
