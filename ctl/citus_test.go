package ctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// patronictlPath is Debian's patronictl (3.0.2), the reference of the
// output formats; the comparisons with it are skipped when it is missing.
const patronictlPath = "/usr/bin/patronictl"

// citusConfig is the citus section of the tool's file in the tests.
const citusConfig = "citus:\n  group: 0\n  database: citus\n"

// loadCitusKeys writes a dump of "key\nvalue\n" pairs under namespace ns,
// replacing "/service/demo/" by ns+"demo/" and the given strings of the
// values (REST URLs) by others.
func loadCitusKeys(t *testing.T, file, ns string, replace map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		k := strings.Replace(lines[i], "/service/demo/", ns+"demo/", 1)
		v := lines[i+1]
		for old, nw := range replace {
			v = strings.ReplaceAll(v, old, nw)
		}
		put(t, k, v)
	}
}

// testNamespace is a namespace of the test's own.
func testNamespace(t *testing.T) string {
	return "/" + strings.Trim(scopeRe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-") + "/"
}

// runPatronictl runs the real patronictl with the file at cfg; skipped
// when it is not installed.
func runPatronictl(t *testing.T, cfg string, stdin string, args ...string) result {
	t.Helper()
	if _, err := os.Stat(patronictlPath); err != nil {
		t.Skipf("%s is not installed", patronictlPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, patronictlPath, append([]string{"-c", cfg}, args...)...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "TZ=UTC"}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{out: out.String(), err: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("patronictl %v: %v", args, err)
	}
	return r
}

// citusReadCases are the read-only commands compared with patronictl on
// the sample Citus cluster: the golden file and the arguments.
var citusReadCases = []struct {
	name, golden string
	args         []string
	// plain: the file has no citus section (--group alone makes the
	// tool use the group layout).
	plain bool
}{
	{"list every group", "citus-list.txt", []string{"list"}, false},
	{"list named", "citus-list.txt", []string{"list", "demo"}, false},
	{"list group 0", "citus-list-group0.txt", []string{"list", "--group", "0"}, false},
	{"list group 1", "citus-list-group1.txt", []string{"list", "--group", "1"}, false},
	{"list group 2", "citus-list-group2.txt", []string{"list", "demo", "--group", "2"}, false},
	{"list extended", "citus-list-extended.txt", []string{"list", "-e"}, false},
	{"list tsv", "citus-list-tsv.txt", []string{"list", "-f", "tsv"}, false},
	{"list json", "citus-list-json.txt", []string{"list", "-f", "json"}, false},
	{"list yaml", "citus-list-yaml.txt", []string{"list", "-f", "yaml"}, false},
	{"list group 1 tsv", "citus-list-group1-tsv.txt", []string{"list", "--group", "1", "-f", "tsv"}, false},
	{"list group 1 json", "citus-list-group1-json.txt", []string{"list", "--group", "1", "-f", "json"}, false},
	{"topology every group", "citus-topology.txt", []string{"topology"}, false},
	{"topology group 2", "citus-topology-group2.txt", []string{"topology", "--group", "2"}, false},
	{"show-config of the file's group", "citus-show-config-group0.txt", []string{"show-config"}, false},
	{"show-config group 2", "citus-show-config-group2.txt", []string{"show-config", "--group", "2"}, false},
	{"history group 1", "citus-history-group1.txt", []string{"history", "--group", "1"}, false},
	{"dsn of the leaders", "citus-dsn.txt", []string{"dsn"}, false},
	{"dsn group 2", "citus-dsn-group2.txt", []string{"dsn", "--group", "2"}, false},
	{"dsn of a worker", "citus-dsn-member.txt", []string{"dsn", "--member", "work1-2"}, false},
	{"list group 1, no citus section", "citus-list-group1.txt", []string{"list", "--group", "1"}, true},
	{"topology group 2, no citus section", "citus-topology-group2.txt", []string{"topology", "--group", "2"}, true},
	{"history group 1, no citus section", "citus-history-group1.txt", []string{"history", "--group", "1"}, true},
}

// citusFiles are the tool's files for a Citus cluster: with and without
// the citus section.
type citusFiles struct{ ns, cfg, plain string }

func (f citusFiles) file(plain bool) string {
	if plain {
		return f.plain
	}
	return f.cfg
}

// citusCluster loads the sample Citus cluster (groups 0, 1 and 2, as
// Patroni 3.0.2 writes them) in a namespace of the test's own, the REST
// URLs replaced as given.
func citusCluster(t *testing.T, replace map[string]string) citusFiles {
	ns := testNamespace(t)
	loadCitusKeys(t, "citus-patroni-3.0.2-etcd-keys.txt", ns, replace)
	return citusFiles{ns, writeConfig(t, ns, "demo", citusConfig), writeConfig(t, ns, "demo", "")}
}

func TestCitusReadCommands(t *testing.T) {
	files := citusCluster(t, nil)
	for _, tc := range citusReadCases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, files.file(tc.plain), nil, tc.args...)
			r.mustSucceed(t)
			golden(t, tc.golden, r.out)
		})
	}
}

// TestCitusMatchesPatronictl runs patronictl 3.0.2 on the same keys and
// file: its output must be the golden file's, byte for byte.
func TestCitusMatchesPatronictl(t *testing.T) {
	files := citusCluster(t, nil)
	for _, tc := range citusReadCases {
		t.Run(tc.name, func(t *testing.T) {
			r := runPatronictl(t, files.file(tc.plain), "", tc.args...)
			if r.code != 0 {
				t.Fatalf("patronictl %v: exit code %d\n%s%s", tc.args, r.code, r.out, r.err)
			}
			if want := readTestdata(t, tc.golden); r.out != want {
				t.Errorf("patronictl %v:\n%s\nthe golden file %s:\n%s", tc.args, r.out, tc.golden, want)
			}
		})
	}
}

// TestCitusPatroni4Keys reads the sample as Patroni 4 writes it
// (replication_state, receive_lsn and replay_lsn in the member keys).
// pgwardenctl shows the replicas' replication state, as patronictl 4
// does; patronictl 3.0.2 ignores those fields and prints what it prints
// for the 3.0.2 keys.
func TestCitusPatroni4Keys(t *testing.T) {
	ns := testNamespace(t)
	loadCitusKeys(t, "citus-patroni-4.1.4-etcd-keys.txt", ns, nil)
	cfg := writeConfig(t, ns, "demo", citusConfig)
	for _, tc := range []struct {
		name, golden, patronictl string
		args                     []string
	}{
		{"list", "citus-list-patroni4.txt", "citus-list.txt", []string{"list"}},
		{"list group 0", "citus-list-group0-patroni4.txt", "citus-list-group0.txt", []string{"list", "--group", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, cfg, nil, tc.args...)
			r.mustSucceed(t)
			golden(t, tc.golden, r.out)
			p := runPatronictl(t, cfg, "", tc.args...)
			if want := readTestdata(t, tc.patronictl); p.code != 0 || p.out != want {
				t.Errorf("patronictl %v: exit code %d\n%s\nwant:\n%s", tc.args, p.code, p.out, want)
			}
		})
	}
}

// TestCitusWithoutCoordinator: the workers' groups are listed when group
// 0 has no keys (yet).
func TestCitusWithoutCoordinator(t *testing.T) {
	files := citusCluster(t, nil)
	if _, err := etcdCli.Delete(t.Context(), files.ns+"demo/0/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, golden string
		args         []string
	}{
		{"list", "citus-list-no-coordinator.txt", []string{"list"}},
		{"list group 0", "citus-list-group0-empty.txt", []string{"list", "--group", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, files.cfg, nil, tc.args...)
			r.mustSucceed(t)
			golden(t, tc.golden, r.out)
			p := runPatronictl(t, files.cfg, "", tc.args...)
			if p.code != 0 || p.out != r.out {
				t.Errorf("patronictl %v: exit code %d\n%s\nwant:\n%s", tc.args, p.code, p.out, r.out)
			}
		})
	}
}
