package launcher

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/internal/testutil"
)

// HAProxyBackend is one PostgreSQL member as HAProxy sees it: client
// connections go to 127.0.0.1:PGPort, health checks to the member's REST
// API on 127.0.0.1:CheckPort.
type HAProxyBackend struct {
	Name      string
	PGPort    int
	CheckPort int
}

// HAProxyOptions describe the HAProxy to run. The configuration has the
// shape of haproxy.cfg.example (a `primary` listen section checking
// /primary, a `replicas` one checking /replica with roundrobin, both with
// on-marked-down shutdown-sessions, and a stats page), with fast checks.
type HAProxyOptions struct {
	// Cluster gives the backends (every node, by name) and the folder for
	// HAProxy's files, unless Backends or Dir are set.
	Cluster  *Cluster
	Backends []HAProxyBackend
	// Binary is the haproxy executable; FindHAProxy when empty.
	Binary string
	// Dir holds haproxy.cfg and haproxy.log; the cluster's folder, or a
	// new temp folder removed by Stop.
	Dir string
	// WritePort, ReadPort and StatsPort are listened on 127.0.0.1; free
	// ports when 0.
	WritePort, ReadPort, StatsPort int
	// Inter is the interval between two checks of a server (default
	// 200ms); Fall failed checks in a row mark it down (default 1), Rise
	// passed checks mark it up again (default 1). A dead primary stops
	// receiving connections within about Fall × Inter (+ CheckTimeout
	// when its REST API hangs rather than refuses); a new primary gets
	// them within about Rise × Inter of answering 200.
	Inter      time.Duration
	Fall, Rise int
	// CheckTimeout bounds one check's answer (HAProxy's `timeout check`),
	// default 1s: generous, as the tests run on loaded machines.
	CheckTimeout time.Duration
	// PrimaryCheck and ReplicaCheck are the REST paths checked with GET;
	// default /primary and /replica (e.g. "/replica?lag=1MB").
	PrimaryCheck, ReplicaCheck string
}

// HAProxy is a running haproxy child process (foreground, not
// daemonized), stopped by its PID only.
type HAProxy struct {
	Opts       HAProxyOptions
	Dir        string
	ConfigPath string
	LogPath    string

	cmd      *exec.Cmd
	done     chan struct{}
	ownDir   bool
	stopOnce sync.Once
}

// ErrNoHAProxy is returned by FindHAProxy when no haproxy binary is found.
var ErrNoHAProxy = errors.New("haproxy is not installed (apt-get install haproxy)")

// FindHAProxy returns the path of the haproxy binary: from $PATH, else
// /usr/sbin/haproxy or /usr/local/sbin/haproxy (sbin is often not in a
// non-root $PATH).
func FindHAProxy() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNoHAProxy
}

func (o *HAProxyOptions) setDefaults() error {
	if o.Inter <= 0 {
		o.Inter = 200 * time.Millisecond
	}
	if o.Fall <= 0 {
		o.Fall = 1
	}
	if o.Rise <= 0 {
		o.Rise = 1
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = time.Second
	}
	if o.PrimaryCheck == "" {
		o.PrimaryCheck = "/primary"
	}
	if o.ReplicaCheck == "" {
		o.ReplicaCheck = "/replica"
	}
	if len(o.Backends) == 0 && o.Cluster != nil {
		for _, n := range o.Cluster.Nodes {
			o.Backends = append(o.Backends, HAProxyBackend{Name: n.Name, PGPort: n.PGPort, CheckPort: n.APIPort})
		}
	}
	if len(o.Backends) == 0 {
		return errors.New("haproxy: no backends (set Cluster or Backends)")
	}
	for _, p := range []*int{&o.WritePort, &o.ReadPort, &o.StatsPort} {
		if *p == 0 {
			free, err := testutil.FreePortNoT()
			if err != nil {
				return err
			}
			*p = free
		}
	}
	return nil
}

// haproxyDuration renders d in milliseconds, HAProxy's time format.
func haproxyDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// HAProxyConfig renders the configuration for o, whose defaults and ports
// must already be set (as in HAProxy.Opts after StartHAProxy).
func HAProxyConfig(o HAProxyOptions) string {
	var b strings.Builder
	b.WriteString("# Written by pgwarden's launcher; see haproxy.cfg.example for the commented form.\n")
	b.WriteString("global\n    maxconn 200\n\n")
	fmt.Fprintf(&b, "defaults\n    mode tcp\n    option log-health-checks\n    retries 2\n")
	fmt.Fprintf(&b, "    timeout connect 2s\n    timeout client 30m\n    timeout server 30m\n    timeout check %s\n\n", haproxyDuration(o.CheckTimeout))
	fmt.Fprintf(&b, "listen stats\n    mode http\n    bind 127.0.0.1:%d\n    stats enable\n    stats uri /\n    stats refresh 5s\n\n", o.StatsPort)
	section := func(name string, port int, path string, extra string) {
		fmt.Fprintf(&b, "listen %s\n    bind 127.0.0.1:%d\n%s    option httpchk GET %s\n    http-check expect status 200\n", name, port, extra, path)
		fmt.Fprintf(&b, "    default-server inter %s fall %d rise %d on-marked-down shutdown-sessions\n", haproxyDuration(o.Inter), o.Fall, o.Rise)
		for _, s := range o.Backends {
			fmt.Fprintf(&b, "    server %s 127.0.0.1:%d maxconn 100 check port %d\n", s.Name, s.PGPort, s.CheckPort)
		}
		b.WriteString("\n")
	}
	section("primary", o.WritePort, o.PrimaryCheck, "    retries 0\n")
	section("replicas", o.ReadPort, o.ReplicaCheck, "    balance roundrobin\n")
	return b.String()
}

// StartHAProxy writes the configuration, checks it with `haproxy -c`,
// starts haproxy in the foreground (-db) as a child process and waits
// until its stats page answers (every listener is bound by then).
func StartHAProxy(o HAProxyOptions) (*HAProxy, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if o.Binary == "" {
		bin, err := FindHAProxy()
		if err != nil {
			return nil, err
		}
		o.Binary = bin
	}
	h := &HAProxy{Opts: o, Dir: o.Dir}
	if h.Dir == "" && o.Cluster != nil {
		h.Dir = o.Cluster.Dir
	}
	if h.Dir == "" {
		d, err := os.MkdirTemp("", "pgwarden-haproxy-")
		if err != nil {
			return nil, err
		}
		h.Dir, h.ownDir = d, true
	}
	h.ConfigPath = filepath.Join(h.Dir, "haproxy.cfg")
	h.LogPath = filepath.Join(h.Dir, "haproxy.log")
	if err := os.WriteFile(h.ConfigPath, []byte(HAProxyConfig(o)), 0o644); err != nil {
		return nil, h.cleanupAfter(err)
	}
	if out, err := exec.Command(o.Binary, "-c", "-f", h.ConfigPath).CombinedOutput(); err != nil {
		return nil, h.cleanupAfter(fmt.Errorf("haproxy -c -f %s: %v\n%s", h.ConfigPath, err, out))
	}
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, h.cleanupAfter(err)
	}
	// -db: stay in the foreground, one process, so that the PID we hold
	// is the one that serves (no master/worker, no daemon fork).
	cmd := exec.Command(o.Binary, "-db", "-f", h.ConfigPath)
	cmd.Dir = h.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, h.cleanupAfter(fmt.Errorf("starting haproxy: %w", err))
	}
	h.cmd, h.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(h.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-h.done:
			err := fmt.Errorf("haproxy exited at start: %v\n%s", cmd.ProcessState, h.logTail())
			return nil, h.cleanupAfter(err)
		default:
		}
		if _, err := h.Servers(); err == nil {
			return h, nil
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("haproxy's stats page did not answer within 15s\n%s", h.logTail())
			h.Stop()
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *HAProxy) cleanupAfter(err error) error {
	if h.ownDir {
		os.RemoveAll(h.Dir)
	}
	return err
}

func (h *HAProxy) logTail() string {
	b, _ := os.ReadFile(h.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// PID is haproxy's process id, 0 once it has exited.
func (h *HAProxy) PID() int {
	select {
	case <-h.done:
		return 0
	default:
		return h.cmd.Process.Pid
	}
}

// WritePort is the port of the `primary` section (writes).
func (h *HAProxy) WritePort() int { return h.Opts.WritePort }

// ReadPort is the port of the `replicas` section (reads).
func (h *HAProxy) ReadPort() int { return h.Opts.ReadPort }

// StatsURL is the stats page.
func (h *HAProxy) StatsURL() string { return fmt.Sprintf("http://127.0.0.1:%d/", h.Opts.StatsPort) }

// Log returns what haproxy wrote (health check changes, errors).
func (h *HAProxy) Log() string {
	b, _ := os.ReadFile(h.LogPath)
	return string(b)
}

// Stop stops haproxy by its PID (SIGTERM, then SIGKILL after 5 s) and
// waits for it; it removes the folder when StartHAProxy made it. Safe to
// call more than once.
func (h *HAProxy) Stop() {
	h.stopOnce.Do(func() {
		if pid := h.PID(); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			select {
			case <-h.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(pid, syscall.SIGKILL)
				<-h.done
			}
		}
		if h.ownDir {
			os.RemoveAll(h.Dir)
		}
	})
}

// HAProxyServer is one server line of the stats page.
type HAProxyServer struct {
	Proxy       string // primary or replicas
	Name        string // node name
	Status      string // UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (going up), MAINT...
	CheckStatus string // INI before the first check, L7OK, L7STS (wrong status), L4CON...
}

// Up reports whether HAProxy sends connections to the server.
func (s HAProxyServer) Up() bool { return strings.HasPrefix(s.Status, "UP") }

// Servers reads the stats page (CSV) and returns every server line.
func (h *HAProxy) Servers() ([]HAProxyServer, error) {
	resp, err := httpClient.Get(h.StatsURL() + ";csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stats page: %s", resp.Status)
	}
	return parseHAProxyCSV(body)
}

func parseHAProxyCSV(body []byte) ([]HAProxyServer, error) {
	body = bytes.TrimPrefix(body, []byte("# "))
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("stats page: empty")
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	for _, name := range []string{"pxname", "svname", "status", "check_status"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("stats page: no %s column", name)
		}
	}
	field := func(rec []string, name string) string {
		if i := col[name]; i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var out []HAProxyServer
	for _, rec := range recs[1:] {
		sv := field(rec, "svname")
		if sv == "FRONTEND" || sv == "BACKEND" || sv == "" {
			continue
		}
		out = append(out, HAProxyServer{Proxy: field(rec, "pxname"), Name: sv,
			Status: field(rec, "status"), CheckStatus: field(rec, "check_status")})
	}
	return out, nil
}

// UpServers returns the sorted names of the servers of proxy (primary or
// replicas) that are up and have been checked at least once.
func (h *HAProxy) UpServers(proxy string) ([]string, error) {
	all, err := h.Servers()
	if err != nil {
		return nil, err
	}
	var up []string
	for _, s := range all {
		if s.Proxy == proxy && s.Up() && s.CheckStatus != "INI" && s.CheckStatus != "" {
			up = append(up, s.Name)
		}
	}
	sort.Strings(up)
	return up, nil
}

// WaitUp waits until exactly the named servers of proxy are up (in any
// order) and every server of it has been checked.
func (h *HAProxy) WaitUp(proxy string, names []string, timeout time.Duration) error {
	want := append([]string(nil), names...)
	sort.Strings(want)
	deadline := time.Now().Add(timeout)
	var last string
	for {
		all, err := h.Servers()
		if err == nil {
			var up []string
			checked := true
			for _, s := range all {
				if s.Proxy != proxy {
					continue
				}
				if s.CheckStatus == "INI" || s.CheckStatus == "" {
					checked = false
				}
				if s.Up() {
					up = append(up, s.Name)
				}
			}
			sort.Strings(up)
			if checked && slices.Equal(up, want) {
				return nil
			}
			last = fmt.Sprintf("up: %v, states: %+v", up, all)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy %s: want exactly %v up within %s; %s", proxy, want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
