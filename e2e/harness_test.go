package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgwarden/pgwarden/launcher"
)

var binary string

func TestMain(m *testing.M) {
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/postgres"); err != nil {
		fmt.Println("SKIP e2e: PostgreSQL 15 is not installed in /usr/lib/postgresql/15/bin")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "pgwarden-e2e-bin-")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pgwarden")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	for _, prog := range []string{"pgwarden", "pgwardenctl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, prog), "./cmd/"+prog)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Println("building", prog+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newCluster prepares a 3-node cluster with a short ttl, started by the
// caller; it is stopped (every process it started, by PID) when the test
// ends, even on failure, after printing the daemons' logs of a failed test.
func newCluster(t *testing.T, mod func(*launcher.Options)) *launcher.Cluster {
	t.Helper()
	opts := launcher.Options{Binary: binary, Scope: "e2e", TTL: 5, LoopWait: 1, RetryTimeout: 2}
	if mod != nil {
		mod(&opts)
	}
	c, err := launcher.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				b, _ := os.ReadFile(n.LogPath)
				t.Logf("==== log of %s ====\n%s", n.Name, tail(string(b), 80))
			}
		}
		c.Stop()
	})
	return c
}

// waitClusterHealthy waits until c has a primary and streaming replicas
// and logs how long it took since start.
func waitClusterHealthy(t *testing.T, c *launcher.Cluster, start time.Time) int {
	t.Helper()
	p, err := c.WaitHealthy(2 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster healthy after %s, primary %s\n%s", time.Since(start).Round(time.Millisecond), c.Nodes[p].Name, c.Table())
	return p
}

// startCluster runs a 3-node cluster (see newCluster) and waits until it is
// healthy.
func startCluster(t *testing.T, mod func(*launcher.Options)) (*launcher.Cluster, int) {
	t.Helper()
	c := newCluster(t, mod)
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c, waitClusterHealthy(t, c, start)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func dsn(c *launcher.Cluster, i int) string {
	return fmt.Sprintf("postgres://postgres:postgres-secret@127.0.0.1:%d/postgres?connect_timeout=2&sslmode=disable", c.Nodes[i].PGPort)
}

func connect(ctx context.Context, c *launcher.Cluster, i int) (*pgx.Conn, error) {
	return pgx.Connect(ctx, dsn(c, i))
}

func exec1(t *testing.T, c *launcher.Cluster, i int, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connect(ctx, c, i)
	if err != nil {
		t.Fatalf("connecting to %s: %v", c.Nodes[i].Name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("on %s: %s: %v", c.Nodes[i].Name, sql, err)
	}
}

// waitRow waits until node i sees a row with id in table t.
func waitRow(t *testing.T, c *launcher.Cluster, i int, table string, id int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, err := connect(ctx, c, i)
		if err == nil {
			var n int
			err = conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id = $1", id).Scan(&n)
			conn.Close(ctx)
			if err == nil && n == 1 {
				cancel()
				return
			}
		}
		cancel()
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never showed row %d of %s: %v", c.Nodes[i].Name, id, table, last)
}

// waitNewPrimary waits until a node other than old answers 200 on
// /primary and accepts a write; it returns the index and when.
func waitNewPrimary(t *testing.T, c *launcher.Cluster, old int, timeout time.Duration) (int, time.Time) {
	t.Helper()
	return waitWritable(t, c, old, timeout, "CREATE TABLE IF NOT EXISTS probe(id int primary key)")
}

// waitWritable waits until a running node other than exclude (-1: none)
// answers 200 on /primary and runs the write sql; it returns the node and
// when.
func waitWritable(t *testing.T, c *launcher.Cluster, exclude int, timeout time.Duration, sql string, args ...any) (int, time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for i := range c.Nodes {
			if i == exclude || c.DaemonPID(i) == 0 {
				continue
			}
			if c.HealthCode(context.Background(), i, "/primary", 500*time.Millisecond) != 200 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			conn, err := connect(ctx, c, i)
			if err == nil {
				_, err = conn.Exec(ctx, sql, args...)
				conn.Close(context.Background())
			}
			cancel()
			if err == nil {
				return i, time.Now()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no writable primary within %s\n%s", timeout, c.Table())
	return -1, time.Time{}
}

// primaryCode is one answer of one node on /primary.
type primaryCode struct {
	node int
	at   time.Time // when the request was sent
	code int
}

// primaryWatch polls /primary on every node every 100 ms, keeps every
// answer, and records any round in which two nodes answered 200 at once.
type primaryWatch struct {
	c       *launcher.Cluster
	mu      sync.Mutex
	current int // index answering 200 in the last round, -1 none
	doubles []string
	rounds  int
	codes   []primaryCode
	stop    chan struct{}
	done    chan struct{}
}

func watchPrimaries(c *launcher.Cluster) *primaryWatch {
	w := &primaryWatch{c: c, current: -1, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *primaryWatch) run() {
	defer close(w.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		codes := make([]int, len(w.c.Nodes))
		sent := time.Now()
		var wg sync.WaitGroup
		for i := range w.c.Nodes {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				codes[i] = w.c.HealthCode(context.Background(), i, "/primary", 400*time.Millisecond)
			}(i)
		}
		wg.Wait()
		cur, n := -1, 0
		for i, code := range codes {
			if code == 200 {
				cur = i
				n++
			}
		}
		w.mu.Lock()
		w.rounds++
		for i, code := range codes {
			w.codes = append(w.codes, primaryCode{node: i, at: sent, code: code})
		}
		if n > 1 {
			w.doubles = append(w.doubles, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), codes))
			cur = -1
		}
		w.current = cur
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

func (w *primaryWatch) Current() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

func (w *primaryWatch) Stop() (doubles []string, rounds int) {
	close(w.stop)
	<-w.done
	return w.doubles, w.rounds
}

// Codes returns every answer; call it after Stop.
func (w *primaryWatch) Codes() []primaryCode { return w.codes }

// writer inserts increasing ids into table acked on whichever node the
// watch says is primary, and remembers every id whose insert was
// acknowledged.
type writer struct {
	c     *launcher.Cluster
	w     *primaryWatch
	mu    sync.Mutex
	acked []int
	fails int
	stop  chan struct{}
	done  chan struct{}
}

func startWriter(c *launcher.Cluster, w *primaryWatch) *writer {
	wr := &writer{c: c, w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go wr.run()
	return wr
}

func (wr *writer) run() {
	defer close(wr.done)
	var conn *pgx.Conn
	target := -1
	id := 0
	for {
		select {
		case <-wr.stop:
			if conn != nil {
				conn.Close(context.Background())
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		cur := wr.w.Current()
		if cur != target && conn != nil {
			conn.Close(context.Background())
			conn = nil
		}
		target = cur
		if cur < 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if conn == nil {
			var err error
			conn, err = connect(ctx, wr.c, cur)
			if err != nil {
				cancel()
				conn = nil
				continue
			}
		}
		id++
		_, err := conn.Exec(ctx, "INSERT INTO acked(id) VALUES ($1)", id)
		cancel()
		wr.mu.Lock()
		if err == nil {
			wr.acked = append(wr.acked, id)
		} else {
			wr.fails++
		}
		wr.mu.Unlock()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
		}
	}
}

func (wr *writer) Stop() (acked []int, fails int) {
	close(wr.stop)
	<-wr.done
	return wr.acked, wr.fails
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

// writeAttempt is one INSERT of the write probe.
type writeAttempt struct {
	id         int
	start, end time.Time
	err        error
}

// writeProbe inserts an increasing id into a table on one node every
// 50 ms, each time over a new connection with short timeouts.
type writeProbe struct {
	mu       sync.Mutex
	attempts []writeAttempt
	quit     chan struct{}
	done     chan struct{}
}

func startWriteProbe(c *launcher.Cluster, node int, table string) *writeProbe {
	w := &writeProbe{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for id := 1; ; id++ {
			a := writeAttempt{id: id, start: time.Now()}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := connect(ctx, c, node)
			if err == nil {
				_, err = conn.Exec(ctx, "INSERT INTO "+table+"(id) VALUES ($1)", id)
				conn.Close(context.Background())
			}
			cancel()
			a.end, a.err = time.Now(), err
			w.mu.Lock()
			w.attempts = append(w.attempts, a)
			w.mu.Unlock()
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *writeProbe) okCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.attempts {
		if a.err == nil {
			n++
		}
	}
	return n
}

func (w *writeProbe) stop() []writeAttempt {
	close(w.quit)
	<-w.done
	return w.attempts
}

// lastOK returns when the last acknowledged write was acknowledged (zero
// when none was); call it after stop.
func (w *writeProbe) lastOK() time.Time {
	var last time.Time
	for _, a := range w.attempts {
		if a.err == nil {
			last = a.end
		}
	}
	return last
}

// etcdClient connects to the cluster's etcd; closed when the test ends.
func etcdClient(t *testing.T, c *launcher.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.EtcdURL()}, DialTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
