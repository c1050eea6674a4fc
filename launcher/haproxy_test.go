package launcher

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func needHAProxy(t *testing.T) string {
	t.Helper()
	bin, err := FindHAProxy()
	if err != nil {
		t.Skip("SKIP: haproxy is not installed; apt-get install haproxy")
	}
	return bin
}

// The example configuration parses, and has the directives the README and
// the generated configuration rely on.
func TestHAProxyExampleParses(t *testing.T) {
	bin := needHAProxy(t)
	out, err := exec.Command(bin, "-c", "-f", "../haproxy.cfg.example").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f haproxy.cfg.example: %v\n%s", err, out)
	}
	b, err := os.ReadFile("../haproxy.cfg.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"listen primary", "bind 127.0.0.1:5000", "option httpchk GET /primary",
		"listen replicas", "bind 127.0.0.1:5001", "option httpchk GET /replica", "balance roundrobin",
		"http-check expect status 200", "on-marked-down shutdown-sessions", "check port 8008",
		"stats enable", "mode tcp",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("haproxy.cfg.example lacks %q", want)
		}
	}
}

// fakeMember is a stand-in for one pgwarden member: a TCP "PostgreSQL"
// that writes its name to every connection and keeps it open, and a REST
// API whose /primary and /replica codes the test sets.
type fakeMember struct {
	name    string
	pg      net.Listener
	api     *http.Server
	apiPort int
	primary atomic.Int32
	replica atomic.Int32
	mu      sync.Mutex
	conns   []net.Conn
}

func newFakeMember(t *testing.T, name string, primary bool) *fakeMember {
	t.Helper()
	m := &fakeMember{name: name}
	m.setPrimary(primary)
	var err error
	if m.pg, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := m.pg.Accept()
			if err != nil {
				return
			}
			m.mu.Lock()
			m.conns = append(m.conns, c)
			m.mu.Unlock()
			fmt.Fprintf(c, "%s\n", m.name)
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.apiPort = l.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.HandleFunc("/primary", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(m.primary.Load())) })
	mux.HandleFunc("/replica", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(m.replica.Load())) })
	m.api = &http.Server{Handler: mux}
	go m.api.Serve(l)
	t.Cleanup(func() {
		m.api.Close()
		m.pg.Close()
		m.mu.Lock()
		for _, c := range m.conns {
			c.Close()
		}
		m.mu.Unlock()
	})
	return m
}

func (m *fakeMember) setPrimary(p bool) {
	if p {
		m.primary.Store(200)
		m.replica.Store(503)
	} else {
		m.primary.Store(503)
		m.replica.Store(200)
	}
}

func (m *fakeMember) backend() HAProxyBackend {
	return HAProxyBackend{Name: m.name, PGPort: m.pg.Addr().(*net.TCPAddr).Port, CheckPort: m.apiPort}
}

// dialName connects to HAProxy's port and reads the name the backend
// writes; it returns the open connection too.
func dialName(t *testing.T, port int) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		t.Fatalf("reading through port %d: %v", port, err)
	}
	c.SetReadDeadline(time.Time{})
	return strings.TrimSpace(line), c
}

// StartHAProxy's configuration routes writes to the member answering 200
// on /primary and reads round-robin to those answering 200 on /replica;
// when the primary's check fails, its open sessions are shut down and new
// writes reach the new primary. Stop ends exactly that process.
func TestHAProxyRoutesByHealthCheck(t *testing.T) {
	needHAProxy(t)
	a := newFakeMember(t, "node1", true)
	b := newFakeMember(t, "node2", false)
	c := newFakeMember(t, "node3", false)
	h, err := StartHAProxy(HAProxyOptions{Backends: []HAProxyBackend{a.backend(), b.backend(), c.backend()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy log:\n%s", h.Log())
		}
		h.Stop()
	})
	cfg, _ := os.ReadFile(h.ConfigPath)
	if !strings.Contains(string(cfg), "inter 200ms fall 1 rise 1 on-marked-down shutdown-sessions") {
		t.Errorf("generated configuration lacks the fast checks:\n%s", cfg)
	}
	if err := h.WaitUp("primary", []string{"node1"}, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, h.Log())
	}
	if err := h.WaitUp("replicas", []string{"node2", "node3"}, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, h.Log())
	}
	for i := 0; i < 5; i++ {
		name, conn := dialName(t, h.WritePort())
		conn.Close()
		if name != "node1" {
			t.Errorf("write connection %d reached %s, want node1", i, name)
		}
	}
	seen := map[string]int{}
	for i := 0; i < 6; i++ {
		name, conn := dialName(t, h.ReadPort())
		conn.Close()
		seen[name]++
	}
	if seen["node2"] != 3 || seen["node3"] != 3 {
		t.Errorf("reads went to %v, want 3 each on node2 and node3 (roundrobin)", seen)
	}

	// A session to the old primary stays open until its check fails.
	_, held := dialName(t, h.WritePort())
	defer held.Close()
	a.setPrimary(false)
	b.setPrimary(true)
	if err := h.WaitUp("primary", []string{"node2"}, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, h.Log())
	}
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := held.Read(make([]byte, 1)); err == nil {
		t.Errorf("the session to the demoted primary was not shut down (read %d bytes)", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the session to the demoted primary is still open 5 s after it was marked down")
	}
	name, conn := dialName(t, h.WritePort())
	conn.Close()
	if name != "node2" {
		t.Errorf("write after the switch reached %s, want node2", name)
	}

	pid := h.PID()
	if pid == 0 {
		t.Fatal("haproxy not running")
	}
	h.Stop()
	if h.PID() != 0 {
		t.Error("haproxy still running after Stop")
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.WritePort()), time.Second); err == nil {
		t.Error("write port still accepts connections after Stop")
	}
}

// Options.Tags become the node's `tags:` section (used to tag a member
// noloadbalance behind HAProxy).
func TestNodeConfigTags(t *testing.T) {
	c, err := New(Options{Binary: "/bin/false", Nodes: 2, Tags: map[int]map[string]any{1: {"noloadbalance": true, "zone": "a", "nofailover": false}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if got := c.nodeConfig(c.Nodes[0]); strings.Contains(got, "tags:") {
		t.Errorf("node1 has tags:\n%s", got)
	}
	want := "\ntags:\n  nofailover: false\n  noloadbalance: true\n  zone: \"a\"\n"
	if got := c.nodeConfig(c.Nodes[1]); !strings.Contains(got, want) {
		t.Errorf("node2 config lacks %q:\n%s", want, got)
	}
}
