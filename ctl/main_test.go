package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/internal/etcdserver"
	"github.com/pgwarden/pgwarden/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// etcdURL is the embedded etcd shared by the package's tests; each test
// uses its own scope.
var (
	etcdURL string
	etcdCli *clientv3.Client
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		dir, err := os.MkdirTemp("", "pgwardenctl-etcd-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cp, err1 := testutil.FreePortNoT()
		pp, err2 := testutil.FreePortNoT()
		if err1 != nil || err2 != nil {
			fmt.Fprintln(os.Stderr, "no free port", err1, err2)
			return 1
		}
		etcdURL = fmt.Sprintf("http://127.0.0.1:%d", cp)
		srv, err := etcdserver.Start(dir, etcdURL, fmt.Sprintf("http://127.0.0.1:%d", pp))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer srv.Stop()
		etcdCli, err = clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer etcdCli.Close()
		return m.Run()
	}()
	os.Exit(code)
}

// fixedNow is the clock of every test run.
var fixedNow = time.Date(2026, 11, 29, 5, 19, 15, 179270000, time.UTC)

func put(t *testing.T, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := etcdCli.Put(ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, key string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := etcdCli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

func countKeys(t *testing.T, prefix string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := etcdCli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// loadKeys writes a dump of "key\nvalue\n" pairs (the samples' format)
// under namespace ns, replacing "/service/pbench/" by ns+scope+"/" and
// the sample's REST ports by the fake members' URLs.
func loadKeys(t *testing.T, file, ns, scope string, apiURLs map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		k := strings.Replace(lines[i], "/service/pbench/", ns+scope+"/", 1)
		v := lines[i+1]
		for old, nw := range apiURLs {
			v = strings.ReplaceAll(v, old, nw)
		}
		put(t, k, v)
	}
}

// writeConfig writes a configuration file for the tool and returns its path.
func writeConfig(t *testing.T, ns, scope string, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pgwarden.yml")
	text := fmt.Sprintf("scope: %s\nnamespace: %s\netcd3:\n  hosts: %s\nrestapi:\n  authentication:\n    username: admin\n    password: secret\n%s",
		scope, ns, strings.TrimPrefix(etcdURL, "http://"), extra)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type result struct {
	out, err string
	code     int
}

// run runs pgwardenctl in-process with the file at cfg (when not "").
func run(t *testing.T, cfg string, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb bytes.Buffer
	a := &App{
		Stdin:             stdin,
		Stdout:            &out,
		Stderr:            &errb,
		Lookup:            func(string) (string, bool) { return "", false },
		Now:               func() time.Time { return fixedNow },
		EtcdTimeout:       5 * time.Second,
		RESTTimeout:       2 * time.Second,
		SwitchoverTimeout: 3 * time.Second,
		RestartTimeout:    3 * time.Second,
		PollInterval:      20 * time.Millisecond,
	}
	if cfg != "" {
		args = append([]string{"-c", cfg}, args...)
	} else {
		args = append([]string{"--dcs-url", etcdURL}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := a.Run(ctx, args)
	return result{out.String(), errb.String(), code}
}

func (r result) mustSucceed(t *testing.T) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- want\n%s\n--- got\n%s", name, want, got)
	}
}

// request is one call a fake member received.
type request struct {
	Method, Path, Body, Auth, ContentType string
}

// fakeMember stands in for one member's REST API.
type fakeMember struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []request
	// reply answers a request; nil answers 200 "OK".
	reply func(r request) (int, string)
}

func newFakeMember(t *testing.T, name string) *fakeMember {
	f := &fakeMember{name: name}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{Method: r.Method, Path: r.URL.Path, Body: string(body), Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		reply := f.reply
		f.mu.Unlock()
		code, text := http.StatusOK, "OK"
		if reply != nil {
			code, text = reply(req)
		}
		w.WriteHeader(code)
		io.WriteString(w, text)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMember) setReply(fn func(r request) (int, string)) {
	f.mu.Lock()
	f.reply = fn
	f.mu.Unlock()
}

func (f *fakeMember) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// unsafeRequests leaves out the GETs.
func (f *fakeMember) unsafeRequests() []request {
	var out []request
	for _, r := range f.requests() {
		if r.Method != http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeMember) apiURL() string { return f.srv.URL + "/patroni" }

// cluster is a test cluster: the 3.0.2 sample's keys under its own scope,
// with fake REST APIs for node0..node2.
type cluster struct {
	ns      string // a namespace of the test's own
	scope   string
	cfg     string
	members map[string]*fakeMember
}

var scopeRe = regexp.MustCompile(`[^a-z0-9]+`)

func newCluster(t *testing.T, keysFile string) *cluster {
	t.Helper()
	c := &cluster{ns: "/" + strings.Trim(scopeRe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-") + "/", scope: "pbench", members: map[string]*fakeMember{}}
	urls := map[string]string{}
	for i, n := range []string{"node0", "node1", "node2"} {
		f := newFakeMember(t, n)
		c.members[n] = f
		urls[fmt.Sprintf("http://127.0.0.1:%d/patroni", 8011+i)] = f.apiURL()
	}
	loadKeys(t, keysFile, c.ns, c.scope, urls)
	c.cfg = writeConfig(t, c.ns, c.scope, "")
	return c
}

func (c *cluster) key(k string) string { return c.ns + c.scope + "/" + k }

// normalize puts the sample's REST URLs back into an output.
func (c *cluster) normalize(s string) string {
	for n, f := range c.members {
		s = strings.ReplaceAll(s, f.apiURL(), "http://"+n+"/patroni")
	}
	return s
}

// stdinThen is a reader that calls fn before it first returns data.
type stdinThen struct {
	r    *bufio.Reader
	once sync.Once
	fn   func()
}

func (s *stdinThen) Read(p []byte) (int, error) {
	s.once.Do(s.fn)
	return s.r.Read(p)
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return m
}
