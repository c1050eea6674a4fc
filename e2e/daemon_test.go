package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/launcher"
)

// validConfig is a complete node configuration; nothing it names needs to
// exist for --validate-config.
const validConfig = `scope: vc
name: node1

restapi:
  listen: 127.0.0.1:18008

etcd3:
  hosts: 127.0.0.1:12379

bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10

postgresql:
  listen: 127.0.0.1:15432
  data_dir: /tmp/pgwarden-validate-config/data
  parameters:
    work_mem: 4MB
`

// runBinary runs the built pgwarden with args and returns its exit code,
// stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running %s %v: %v", binary, args, err)
	}
	return code, stdout.String(), stderr.String()
}

// lineOf returns the 1-based number of the first line of text that starts
// with prefix.
func lineOf(t *testing.T, text, prefix string) int {
	t.Helper()
	for n, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return n + 1
		}
	}
	t.Fatalf("no line starting with %q", prefix)
	return 0
}

// --validate-config accepts a valid file and refuses a typo or a bad
// timing rule with the file, the line, the key and a hint, without
// starting anything; --version prints the version.
func TestValidateConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("valid", func(t *testing.T) {
		p := write("valid.yml", validConfig)
		code, out, errOut := runBinary(t, "--validate-config", p)
		if code != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
		}
		if !strings.Contains(out, p) || !strings.Contains(out, "valid") {
			t.Errorf("stdout %q does not say that %s is valid", out, p)
		}
	})

	t.Run("typo", func(t *testing.T) {
		text := strings.Replace(validConfig, "  parameters:", "  paramters:", 1)
		p := write("typo.yml", text)
		line := lineOf(t, text, "  paramters:")
		code, _, errOut := runBinary(t, "--validate-config", p)
		if code != 1 {
			t.Fatalf("exit code %d, want 1; stderr:\n%s", code, errOut)
		}
		for _, want := range []string{
			fmt.Sprintf("%s:%d:", p, line),
			"postgresql.paramters",
			`did you mean "parameters"`,
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr does not contain %q:\n%s", want, errOut)
			}
		}
		t.Logf("refused: %s", strings.TrimSpace(errOut))
	})

	t.Run("ttl", func(t *testing.T) {
		text := strings.Replace(validConfig, "    ttl: 30\n    loop_wait: 10\n    retry_timeout: 10\n",
			"    ttl: 5\n    loop_wait: 2\n    retry_timeout: 2\n", 1)
		if text == validConfig {
			t.Fatal("test bug: the timing lines were not replaced")
		}
		p := write("ttl.yml", text)
		line := lineOf(t, text, "    ttl:")
		code, _, errOut := runBinary(t, "--validate-config", p)
		if code != 1 {
			t.Fatalf("exit code %d, want 1; stderr:\n%s", code, errOut)
		}
		for _, want := range []string{fmt.Sprintf("%s:%d:", p, line), "bootstrap.dcs.ttl"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr does not contain %q:\n%s", want, errOut)
			}
		}
		t.Logf("refused: %s", strings.TrimSpace(errOut))
	})

	t.Run("version", func(t *testing.T) {
		code, out, errOut := runBinary(t, "--version")
		if code != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
		}
		if !strings.HasPrefix(out, "pgwarden ") || strings.TrimSpace(strings.TrimPrefix(out, "pgwarden ")) == "" {
			t.Errorf("--version printed %q, want \"pgwarden <version>\"", out)
		}
	})
}

// replaceFile writes text to path through a temporary file and a rename,
// so that the daemon never reads a half-written file.
func replaceFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 100 ms until it is true or timeout passes; it
// returns how long it took, or -1.
func waitFor(timeout time.Duration, cond func() bool) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -1
}

// showSetting returns SHOW name on node i, "" on error.
func showSetting(c *launcher.Cluster, i int, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := connect(ctx, c, i)
	if err != nil {
		return ""
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
		return ""
	}
	return v
}

// memberTags reads node's member key from etcd and returns its tags.
func memberTags(t *testing.T, c *launcher.Cluster, name string) map[string]any {
	t.Helper()
	cli := etcdClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/service/"+c.Opts.Scope+"/members/"+name)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("member key of %s: %d keys", name, len(resp.Kvs))
	}
	var m struct {
		Tags map[string]any `json:"tags"`
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		t.Fatalf("member key of %s: %v", name, err)
	}
	return m.Tags
}

// SIGHUP re-reads the configuration file: tags and postgresql.parameters
// apply at once; an invalid file is refused, logged, and the running
// configuration kept; the daemon keeps running throughout.
func TestSighupReload(t *testing.T) {
	c, p := startCluster(t, nil)
	r := (p + 1) % len(c.Nodes)
	other := (p + 2) % len(c.Nodes)
	n := c.Nodes[r]
	pid := c.DaemonPID(r)
	orig, err := readFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(orig, "\ntags:") || !strings.Contains(orig, "\npostgresql:\n") || strings.Contains(orig, "work_mem") {
		t.Fatalf("unexpected launcher configuration:\n%s", orig)
	}
	code := func(i int, path string) int { return c.HealthCode(context.Background(), i, path, time.Second) }
	if code(r, "/replica") != 200 {
		t.Fatalf("%s /replica = %d before the reload, want 200", n.Name, code(r, "/replica"))
	}
	if v := showSetting(c, r, "work_mem"); v != "4MB" {
		t.Fatalf("work_mem on %s = %q before the reload, want the default 4MB", n.Name, v)
	}
	hup := func() {
		t.Helper()
		if err := c.Signal(r, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// 1. A tag: noloadbalance takes the replica out of /replica.
	tagged := strings.TrimRight(orig, "\n") + "\n\ntags:\n  noloadbalance: true\n"
	replaceFile(t, n.ConfigPath, tagged)
	hup()
	took := waitFor(10*time.Second, func() bool { return code(r, "/replica") == 503 })
	if took < 0 {
		t.Fatalf("%s /replica still %d 10 s after SIGHUP with noloadbalance", n.Name, code(r, "/replica"))
	}
	t.Logf("noloadbalance: %s /replica 503 %s after SIGHUP", n.Name, took.Round(time.Millisecond))
	if got := code(r, "/health"); got != 200 {
		t.Errorf("%s /health = %d after tagging noloadbalance, want 200", n.Name, got)
	}
	if got := code(other, "/replica"); got != 200 {
		t.Errorf("untouched replica %s /replica = %d, want 200", c.Nodes[other].Name, got)
	}
	if waitFor(5*time.Second, func() bool { v, _ := memberTags(t, c, n.Name)["noloadbalance"].(bool); return v }) < 0 {
		t.Errorf("member key of %s has tags %v, want noloadbalance: true", n.Name, memberTags(t, c, n.Name))
	}

	// 2. postgresql.parameters: work_mem reaches PostgreSQL by a reload.
	withParam := strings.Replace(tagged, "\npostgresql:\n", "\npostgresql:\n  parameters:\n    work_mem: 7MB\n", 1)
	replaceFile(t, n.ConfigPath, withParam)
	hup()
	took = waitFor(10*time.Second, func() bool { return showSetting(c, r, "work_mem") == "7MB" })
	if took < 0 {
		t.Fatalf("SHOW work_mem on %s = %q 10 s after SIGHUP, want 7MB", n.Name, showSetting(c, r, "work_mem"))
	}
	t.Logf("work_mem: SHOW work_mem on %s = 7MB %s after SIGHUP", n.Name, took.Round(time.Millisecond))
	if got := code(r, "/replica"); got != 503 {
		t.Errorf("%s /replica = %d after the second reload, want 503 (still noloadbalance)", n.Name, got)
	}

	// 3. An invalid file (a typo key, and another work_mem) is refused.
	logBefore, err := readFile(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	invalid := strings.Replace(withParam, "work_mem: 7MB", "work_mem: 9MB", 1) + "namespce: /service/\n"
	replaceFile(t, n.ConfigPath, invalid)
	hup()
	var refusal string
	if waitFor(10*time.Second, func() bool {
		b, _ := readFile(n.LogPath)
		if len(b) < len(logBefore) {
			return false
		}
		for _, l := range strings.Split(b[len(logBefore):], "\n") {
			if strings.Contains(l, "configuration not reloaded") {
				refusal = l
				return true
			}
		}
		return false
	}) < 0 {
		b, _ := readFile(n.LogPath)
		t.Fatalf("no \"configuration not reloaded\" in %s's log after SIGHUP with an invalid file; new log lines:\n%s", n.Name, b[len(logBefore):])
	}
	t.Logf("invalid file: %s logged: %s", n.Name, refusal)
	if !strings.Contains(refusal, "namespce") {
		t.Errorf("the refusal does not name the bad key namespce: %s", refusal)
	}
	time.Sleep(2 * time.Second) // a cycle or two: nothing may change
	if got := c.DaemonPID(r); got != pid || syscall.Kill(pid, 0) != nil {
		t.Fatalf("%s's daemon (pid %d) is not running any more after an invalid reload (now %d)", n.Name, pid, got)
	}
	if got := code(r, "/health"); got != 200 {
		t.Errorf("%s /health = %d after an invalid reload, want 200", n.Name, got)
	}
	if got := code(r, "/replica"); got != 503 {
		t.Errorf("%s /replica = %d after an invalid reload, want 503 (the running noloadbalance kept)", n.Name, got)
	}
	if v := showSetting(c, r, "work_mem"); v != "7MB" {
		t.Errorf("SHOW work_mem on %s = %q after an invalid reload, want 7MB kept", n.Name, v)
	}

	// 4. Back to the launcher's file: the tag and the parameter go away.
	replaceFile(t, n.ConfigPath, orig)
	hup()
	if waitFor(10*time.Second, func() bool { return code(r, "/replica") == 200 && showSetting(c, r, "work_mem") == "4MB" }) < 0 {
		t.Errorf("after restoring the file: %s /replica = %d, work_mem = %q; want 200 and 4MB", n.Name, code(r, "/replica"), showSetting(c, r, "work_mem"))
	}
	if _, err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, c.Table())
	}
}

// The daemons stay small: a few tens of MB of resident memory each.
func TestDaemonMemory(t *testing.T) {
	c, _ := startCluster(t, nil)
	time.Sleep(5 * time.Second)
	var parts []string
	for i, n := range c.Nodes {
		pid := c.DaemonPID(i)
		if pid == 0 {
			t.Fatalf("%s's daemon is not running", n.Name)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		rss, hwm := procKB(t, string(b), "VmRSS:"), procKB(t, string(b), "VmHWM:")
		mb := float64(rss) / 1024
		parts = append(parts, fmt.Sprintf("%s %.1f MB", n.Name, mb))
		t.Logf("%s daemon pid %d: VmRSS %.1f MB, peak (VmHWM) %.1f MB", n.Name, pid, mb, float64(hwm)/1024)
		if mb >= 100 {
			t.Errorf("%s's daemon uses %.1f MB resident, want under 100 MB", n.Name, mb)
		}
		for _, child := range childProcesses(pid, "pgwarden") {
			t.Logf("%s daemon's child pgwarden process pid %d (%s): VmRSS %.1f MB", n.Name, child.pid, child.cmdline, float64(child.rssKB)/1024)
		}
	}
	t.Logf("MEASURED daemon RSS: %s", strings.Join(parts, ", "))
}

// procKB reads a "Key:   1234 kB" line of /proc/<pid>/status.
func procKB(t *testing.T, status, key string) int64 {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if !strings.HasPrefix(l, key) {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(l, key))
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return v
	}
	t.Fatalf("no %s line in /proc/<pid>/status:\n%s", key, status)
	return 0
}

type childProcess struct {
	pid     int
	rssKB   int64
	cmdline string
}

// childProcesses lists the live processes named name whose parent is ppid.
func childProcesses(ppid int, name string) []childProcess {
	entries, _ := os.ReadDir("/proc")
	var out []childProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		var gotName string
		var gotPPid int
		var rss int64
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "Name":
				gotName = v
			case "PPid":
				gotPPid, _ = strconv.Atoi(v)
			case "VmRSS":
				rss, _ = strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
			}
		}
		if gotName != name || gotPPid != ppid {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, childProcess{pid: pid, rssKB: rss, cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))})
	}
	return out
}
