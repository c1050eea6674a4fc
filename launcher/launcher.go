// Package launcher runs a local pgwarden cluster on loopback: an embedded
// etcd server and N pgwarden daemons (the built binary, as child
// processes), each with its own PostgreSQL data directory under one
// world-traversable folder. `make demo` and the e2e tests both use it.
//
// It stops exactly what it started, by PID: the daemons it spawned, and
// the postmasters recorded in the data directories it created.
package launcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/citus"
	"github.com/pgwarden/pgwarden/internal/etcdserver"
	"github.com/pgwarden/pgwarden/internal/proc"
	"github.com/pgwarden/pgwarden/internal/testutil"
)

// Options describe the cluster to run.
type Options struct {
	Binary       string // path of the built pgwarden binary
	Dir          string // base folder (world-traversable); made under os.TempDir() when empty
	Scope        string // default "demo"
	Nodes        int    // default 3
	TTL          int    // seconds, default 5
	LoopWait     int    // seconds, default 1
	RetryTimeout int    // seconds, default 2
	BinDir       string // PostgreSQL binaries; default /usr/lib/postgresql/15/bin
	// Parameters are extra bootstrap.dcs.postgresql.parameters.
	Parameters map[string]string
	// LogTo, when set, also receives every daemon's log lines, prefixed
	// with the node name.
	LogTo io.Writer
	// ExtraConfig is appended to each node's YAML (for tags, etc.), keyed
	// by node index.
	ExtraConfig map[int]string
	// APIUser and APIPassword, when set, protect the unsafe REST endpoints
	// (restapi.authentication).
	APIUser, APIPassword string
	// Tags are written as each node's `tags:` section, keyed by node
	// index (e.g. {2: {"noloadbalance": true}}). Do not also put a
	// `tags:` section in that node's ExtraConfig.
	Tags map[int]map[string]any
	// CitusGroups, when set, makes a Citus cluster: the Citus group of
	// each node (Nodes defaults to its length). Nodes are named coord1,
	// coord2, ... in group 0 and work<g>-1, ... in worker groups.
	CitusGroups []int
	// CitusDatabase is citus.database (default "citus").
	CitusDatabase string
	// CitusStandinSQL is citus.standin_sql: tests without Citus.
	CitusStandinSQL string
	// Synchronous turns on synchronous_mode in bootstrap.dcs.
	Synchronous bool
}

// Node is one member: a pgwarden daemon and its PostgreSQL.
type Node struct {
	Name       string
	Index      int
	ConfigPath string
	DataDir    string
	LogPath    string
	PGPort     int
	APIPort    int
	Group      int // Citus group; -1 outside a Citus cluster

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a running local cluster.
type Cluster struct {
	Opts  Options
	Dir   string
	Etcd  *etcdserver.Server
	Nodes []*Node

	// EtcdClientURL and EtcdPeerURL are the embedded etcd's URLs, kept so
	// that RestartEtcd brings it back where the daemons look for it.
	EtcdClientURL string
	EtcdPeerURL   string

	ownDir bool
	logMu  sync.Mutex
}

// New allocates ports and writes every node's configuration; nothing is
// started yet.
func New(o Options) (*Cluster, error) {
	if o.Scope == "" {
		o.Scope = "demo"
	}
	if o.Nodes == 0 {
		o.Nodes = 3
		if len(o.CitusGroups) > 0 {
			o.Nodes = len(o.CitusGroups)
		}
	}
	if len(o.CitusGroups) > 0 && len(o.CitusGroups) != o.Nodes {
		return nil, fmt.Errorf("launcher: %d citus groups for %d nodes", len(o.CitusGroups), o.Nodes)
	}
	if len(o.CitusGroups) > 0 && o.CitusDatabase == "" {
		o.CitusDatabase = "citus"
	}
	if o.TTL == 0 {
		o.TTL = 5
	}
	if o.LoopWait == 0 {
		o.LoopWait = 1
	}
	if o.RetryTimeout == 0 {
		o.RetryTimeout = 2
	}
	if o.BinDir == "" {
		o.BinDir = "/usr/lib/postgresql/15/bin"
	}
	c := &Cluster{Opts: o, Dir: o.Dir}
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "pgwarden-"+o.Scope+"-")
		if err != nil {
			return nil, err
		}
		c.Dir, c.ownDir = d, true
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return nil, err
	}
	for i := 0; i < o.Nodes; i++ {
		pgPort, err := testutil.FreePortNoT()
		if err != nil {
			return nil, err
		}
		apiPort, err := testutil.FreePortNoT()
		if err != nil {
			return nil, err
		}
		n := &Node{Name: fmt.Sprintf("node%d", i+1), Index: i, PGPort: pgPort, APIPort: apiPort, Group: -1}
		if len(o.CitusGroups) > 0 {
			n.Group = o.CitusGroups[i]
			k := 1
			for _, g := range o.CitusGroups[:i] {
				if g == n.Group {
					k++
				}
			}
			if n.Group == 0 {
				n.Name = fmt.Sprintf("coord%d", k)
			} else {
				n.Name = fmt.Sprintf("work%d-%d", n.Group, k)
			}
		}
		n.DataDir = filepath.Join(c.Dir, n.Name, "data")
		n.ConfigPath = filepath.Join(c.Dir, n.Name+".yml")
		n.LogPath = filepath.Join(c.Dir, n.Name+".log")
		if err := os.MkdirAll(filepath.Dir(n.DataDir), 0o755); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// EtcdURL is the client URL of the embedded etcd.
func (c *Cluster) EtcdURL() string {
	if c.Etcd == nil {
		return ""
	}
	return c.Etcd.ClientURL()
}

// StartEtcd starts the embedded etcd and writes the node configurations.
func (c *Cluster) StartEtcd() error {
	cp, err := testutil.FreePortNoT()
	if err != nil {
		return err
	}
	pp, err := testutil.FreePortNoT()
	if err != nil {
		return err
	}
	c.EtcdClientURL = fmt.Sprintf("http://127.0.0.1:%d", cp)
	c.EtcdPeerURL = fmt.Sprintf("http://127.0.0.1:%d", pp)
	srv, err := etcdserver.Start(c.etcdDir(), c.EtcdClientURL, c.EtcdPeerURL)
	if err != nil {
		return fmt.Errorf("starting embedded etcd: %w", err)
	}
	c.Etcd = srv
	for _, n := range c.Nodes {
		if err := os.WriteFile(n.ConfigPath, []byte(c.nodeConfig(n)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) etcdDir() string { return filepath.Join(c.Dir, "etcd") }

// StopEtcd stops the embedded etcd, keeping its data directory, and waits
// until it has exited. etcd refuses new requests from the moment it is
// called, but it may take a few seconds to return: etcd waits (up to its
// request timeout) for open watch streams before closing them. The
// daemons are left running. It does nothing when etcd is not running.
func (c *Cluster) StopEtcd() {
	if c.Etcd == nil {
		return
	}
	c.Etcd.Stop()
	c.Etcd = nil
}

// RestartEtcd starts the embedded etcd again after StopEtcd, on the same
// data directory and the same client and peer URLs, so that the daemons'
// configured endpoint reaches it again and the cluster's keys and leases
// are still there (an unexpired lease gets its full TTL back). The ports
// may be briefly unavailable just after the stop; it retries for up to
// 10 seconds.
func (c *Cluster) RestartEtcd() error {
	if c.Etcd != nil {
		return errors.New("etcd is already running")
	}
	if c.EtcdClientURL == "" || c.EtcdPeerURL == "" {
		return errors.New("etcd was never started: nothing to restart")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		srv, err := etcdserver.Start(c.etcdDir(), c.EtcdClientURL, c.EtcdPeerURL)
		if err == nil {
			c.Etcd = srv
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restarting embedded etcd: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) nodeConfig(n *Node) string {
	o := c.Opts
	var b strings.Builder
	fmt.Fprintf(&b, "scope: %s\nnamespace: /service/\nname: %s\n\n", o.Scope, n.Name)
	fmt.Fprintf(&b, "restapi:\n  listen: 127.0.0.1:%d\n  connect_address: 127.0.0.1:%d\n", n.APIPort, n.APIPort)
	if o.APIUser != "" {
		fmt.Fprintf(&b, "  authentication:\n    username: %s\n    password: %s\n", o.APIUser, o.APIPassword)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "etcd3:\n  hosts: %s\n\n", strings.TrimPrefix(c.EtcdURL(), "http://"))
	fmt.Fprintf(&b, "bootstrap:\n  dcs:\n    ttl: %d\n    loop_wait: %d\n    retry_timeout: %d\n    maximum_lag_on_failover: 1048576\n",
		o.TTL, o.LoopWait, o.RetryTimeout)
	if o.Synchronous {
		b.WriteString("    synchronous_mode: true\n")
	}
	fmt.Fprintf(&b, "    postgresql:\n      parameters:\n        shared_buffers: 16MB\n        max_connections: 40\n        wal_keep_size: 64MB\n")
	for k, v := range o.Parameters {
		fmt.Fprintf(&b, "        %s: %q\n", k, v)
	}
	fmt.Fprintf(&b, "  initdb:\n    - encoding: UTF8\n    - data-checksums\n\n")
	fmt.Fprintf(&b, "postgresql:\n  listen: 127.0.0.1:%d\n  connect_address: 127.0.0.1:%d\n  data_dir: %s\n  bin_dir: %s\n",
		n.PGPort, n.PGPort, n.DataDir, o.BinDir)
	fmt.Fprintf(&b, "  authentication:\n    superuser:\n      username: postgres\n      password: postgres-secret\n    replication:\n      username: replicator\n      password: replicator-secret\n")
	if tags := o.Tags[n.Index]; len(tags) > 0 {
		b.WriteString("\ntags:\n")
		keys := make([]string, 0, len(tags))
		for k := range tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch v := tags[k].(type) {
			case string:
				fmt.Fprintf(&b, "  %s: %q\n", k, v)
			default:
				fmt.Fprintf(&b, "  %s: %v\n", k, v)
			}
		}
	}
	if n.Group >= 0 {
		fmt.Fprintf(&b, "\ncitus:\n  group: %d\n  database: %s\n", n.Group, o.CitusDatabase)
		if o.CitusStandinSQL != "" {
			fmt.Fprintf(&b, "  standin_sql: %s\n", o.CitusStandinSQL)
		}
	}
	if extra, ok := o.ExtraConfig[n.Index]; ok {
		b.WriteString("\n" + extra + "\n")
	}
	return b.String()
}

// StartNode starts node i's daemon.
func (c *Cluster) StartNode(i int) error {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return fmt.Errorf("%s is already running", n.Name)
		}
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.Opts.Binary, n.ConfigPath)
	var out io.Writer = logf
	if c.Opts.LogTo != nil {
		out = io.MultiWriter(logf, &prefixWriter{prefix: n.Name + " | ", w: c.Opts.LogTo, mu: &c.logMu})
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", n.Name, err)
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(cmd, n.done)
	return nil
}

// Start starts etcd and every node.
func (c *Cluster) Start() error {
	if err := c.StartEtcd(); err != nil {
		return err
	}
	for i := range c.Nodes {
		if err := c.StartNode(i); err != nil {
			return err
		}
	}
	return nil
}

// DaemonPID returns the PID of node i's daemon, 0 when not running.
func (c *Cluster) DaemonPID(i int) int {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	select {
	case <-n.done: // exited (killed, or stopped by itself)
		return 0
	default:
	}
	return n.cmd.Process.Pid
}

// PostmasterPID returns the PID in node i's postmaster.pid when that
// process is alive, else 0.
func (c *Cluster) PostmasterPID(i int) int {
	pid := proc.PostmasterPID(c.Nodes[i].DataDir)
	if !proc.Alive(pid) {
		return 0
	}
	return pid
}

// Signal sends sig to node i's daemon.
func (c *Cluster) Signal(i int, sig syscall.Signal) error {
	pid := c.DaemonPID(i)
	if pid == 0 {
		return fmt.Errorf("%s is not running", c.Nodes[i].Name)
	}
	return syscall.Kill(pid, sig)
}

// WaitExit waits until node i's daemon has exited.
func (c *Cluster) WaitExit(i int, timeout time.Duration) error {
	n := c.Nodes[i]
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		n.mu.Lock()
		n.cmd = nil
		n.mu.Unlock()
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %s", n.Name, timeout)
	}
}

// KillNode kills node i's daemon with SIGKILL and, when withPostgres,
// its postmaster too (SIGKILL), and waits for the daemon to exit.
func (c *Cluster) KillNode(i int, withPostgres bool) error {
	pm := c.PostmasterPID(i)
	if err := c.Signal(i, syscall.SIGKILL); err != nil {
		return err
	}
	if withPostgres && pm != 0 {
		_ = syscall.Kill(pm, syscall.SIGKILL)
	}
	return c.WaitExit(i, 10*time.Second)
}

// StopNode stops node i's daemon gracefully (SIGTERM), killing it after
// timeout.
func (c *Cluster) StopNode(i int, timeout time.Duration) error {
	if c.DaemonPID(i) == 0 {
		return nil
	}
	_ = c.Signal(i, syscall.SIGCONT)
	if err := c.Signal(i, syscall.SIGTERM); err != nil {
		return err
	}
	if err := c.WaitExit(i, timeout); err != nil {
		_ = c.Signal(i, syscall.SIGKILL)
		_ = c.WaitExit(i, 5*time.Second)
		return err
	}
	return nil
}

// Stop stops every daemon, then any postmaster still running in our data
// directories, then etcd, and removes the folder if the launcher made it.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_ = c.StopNode(i, 60*time.Second)
		}(i)
	}
	wg.Wait()
	for i := range c.Nodes {
		c.killPostmaster(i)
	}
	if c.Etcd != nil {
		c.Etcd.Stop()
		c.Etcd = nil
	}
	if c.ownDir {
		os.RemoveAll(c.Dir)
	}
}

// killPostmaster stops the postmaster recorded in node i's data
// directories (moved-aside copies included) by PID: SIGQUIT (immediate
// shutdown), then SIGKILL.
func (c *Cluster) killPostmaster(i int) {
	dirs, _ := filepath.Glob(c.Nodes[i].DataDir + "*")
	for _, d := range dirs {
		pid := proc.PostmasterPID(d)
		if !proc.Alive(pid) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && proc.Alive(pid) {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// MemberStatus is the part of GET /patroni the launcher reads.
type MemberStatus struct {
	State            string `json:"state"`
	Role             string `json:"role"`
	Timeline         int    `json:"timeline"`
	ReplicationState string `json:"replication_state"`
	XLog             struct {
		Location         int64 `json:"location"`
		ReceivedLocation int64 `json:"received_location"`
		ReplayedLocation int64 `json:"replayed_location"`
	} `json:"xlog"`
	Replication []struct {
		ApplicationName string `json:"application_name"`
		State           string `json:"state"`
	} `json:"replication"`
}

var httpClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// APIURL is node i's REST base URL.
func (c *Cluster) APIURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", c.Nodes[i].APIPort)
}

// Status asks node i for GET /patroni.
func (c *Cluster) Status(i int) (*MemberStatus, error) {
	resp, err := httpClient.Get(c.APIURL(i) + "/patroni")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s MemberStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// HealthCode returns the status code of GET path on node i (0 when the
// node does not answer within timeout).
func (c *Cluster) HealthCode(ctx context.Context, i int, path string, timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.APIURL(i)+path, nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Primary returns the index of the one node answering 200 on /primary,
// or -1 (none, or more than one). Outside a Citus cluster only.
func (c *Cluster) Primary() int { return c.GroupPrimary(-1) }

// GroupNodes returns the indexes of the nodes of Citus group g (every
// node outside a Citus cluster, where g is -1).
func (c *Cluster) GroupNodes(g int) []int {
	var out []int
	for i, n := range c.Nodes {
		if n.Group == g {
			out = append(out, i)
		}
	}
	return out
}

// Groups returns the Citus groups, sorted ([-1] outside a Citus cluster).
func (c *Cluster) Groups() []int {
	seen := map[int]bool{}
	var out []int
	for _, n := range c.Nodes {
		if !seen[n.Group] {
			seen[n.Group] = true
			out = append(out, n.Group)
		}
	}
	sort.Ints(out)
	return out
}

// GroupPrimary is Primary within Citus group g.
func (c *Cluster) GroupPrimary(g int) int {
	found := -1
	for _, i := range c.GroupNodes(g) {
		if c.DaemonPID(i) == 0 {
			continue
		}
		if c.HealthCode(context.Background(), i, "/primary", time.Second) == 200 {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// WaitGroupsHealthy waits until every Citus group with a running node
// has one primary that every other running node of the group streams
// from; it returns each such group's primary index.
func (c *Cluster) WaitGroupsHealthy(timeout time.Duration) (map[int]int, error) {
	deadline := time.Now().Add(timeout)
	out := map[int]int{}
	for _, g := range c.Groups() {
		running := false
		for _, i := range c.GroupNodes(g) {
			running = running || c.DaemonPID(i) != 0
		}
		if !running {
			continue
		}
		p, err := c.waitHealthy(g, time.Until(deadline))
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", g, err)
		}
		out[g] = p
	}
	return out, nil
}

// WaitHealthy waits until one node is primary and every other running
// node streams from it; it returns the primary's index.
func (c *Cluster) WaitHealthy(timeout time.Duration) (int, error) {
	return c.waitHealthy(-1, timeout)
}

func (c *Cluster) waitHealthy(g int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		p := c.GroupPrimary(g)
		if p >= 0 {
			ok := true
			for _, i := range c.GroupNodes(g) {
				if i == p || c.DaemonPID(i) == 0 {
					continue
				}
				s, err := c.Status(i)
				if err != nil || s.ReplicationState != "streaming" {
					ok = false
					last = fmt.Sprintf("%s not streaming yet", c.Nodes[i].Name)
					break
				}
			}
			if ok {
				return p, nil
			}
		} else {
			last = "no single primary"
		}
		time.Sleep(200 * time.Millisecond)
	}
	return -1, fmt.Errorf("cluster not healthy after %s: %s", timeout, last)
}

// Table renders the cluster as a table like `patronictl list`.
func (c *Cluster) Table() string {
	var b bytes.Buffer
	citus := len(c.Opts.CitusGroups) > 0
	if citus {
		b.WriteString("Group ")
	}
	fmt.Fprintf(&b, "%-8s %-16s %-8s %-10s %-3s %-12s %s\n", "Member", "Host", "Role", "State", "TL", "Lag in MB", "Daemon PID / Postmaster PID")
	leaderLSN := map[int]int64{}
	sts := make([]*MemberStatus, len(c.Nodes))
	for i, n := range c.Nodes {
		if c.DaemonPID(i) == 0 {
			continue
		}
		if s, err := c.Status(i); err == nil {
			sts[i] = s
			if s.Role == "primary" {
				leaderLSN[n.Group] = s.XLog.Location
			}
		}
	}
	for i, n := range c.Nodes {
		s := sts[i]
		role, state, tl, lag := "-", "down", "", ""
		if s != nil {
			role, state, tl = s.Role, s.State, strconv.Itoa(s.Timeline)
			if s.Role == "primary" {
				role = "Leader"
			} else if s.Role == "replica" {
				role = "Replica"
				if s.ReplicationState != "" {
					state = s.ReplicationState
				}
				pos := max(s.XLog.ReceivedLocation, s.XLog.ReplayedLocation)
				if l := leaderLSN[n.Group]; l > 0 {
					lag = strconv.FormatInt(max(0, l-pos)/(1<<20), 10)
				}
			}
		}
		if citus {
			fmt.Fprintf(&b, "%5d ", n.Group)
		}
		fmt.Fprintf(&b, "%-8s %-16s %-8s %-10s %-3s %-12s %d / %d\n", n.Name, fmt.Sprintf("127.0.0.1:%d", n.PGPort),
			role, state, tl, lag, c.DaemonPID(i), c.PostmasterPID(i))
	}
	return b.String()
}

// CitusAvailable reports whether the Citus extension is installed for the
// PostgreSQL in binDir (default /usr/lib/postgresql/15/bin), and if not, why.
func CitusAvailable(binDir string) (bool, string) {
	if binDir == "" {
		binDir = "/usr/lib/postgresql/15/bin"
	}
	if err := citus.Installed(binDir); err != nil {
		return false, err.Error()
	}
	return true, ""
}

type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     *sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
